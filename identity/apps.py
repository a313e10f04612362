from django.apps import AppConfig


class IdentityConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "identity"

    def ready(self):
        from config import (
            checks,  # noqa: F401 - registers the deploy checks
            sqlite_like,  # noqa: F401 - SQLite's LIKE folds case beyond ASCII
        )
        from identity import schema  # noqa: F401 - registers the OpenAPI auth extensions
