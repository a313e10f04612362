"""Theme colours are stored lower-case (docs/api.md); the model's default was written upper-case,
so orgs created before this migration with the default theme hold `#18BDF7`."""

from django.db import migrations


def primary_colors_lower(apps, schema_editor):
    Organization = apps.get_model("identity", "Organization")
    for org in Organization.objects.only("pk", "theme").iterator():
        color = org.theme.get("primaryColor") if isinstance(org.theme, dict) else None
        if isinstance(color, str) and color != color.lower():
            org.theme = {**org.theme, "primaryColor": color.lower()}
            org.save(update_fields=["theme"])


class Migration(migrations.Migration):
    dependencies = [("identity", "0004_auditevent_membership_actions")]

    operations = [migrations.RunPython(primary_colors_lower, migrations.RunPython.noop)]
