"""Static files in production: whitenoise serves what collectstatic wrote, compressed."""

import json

from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from whitenoise.middleware import WhiteNoiseMiddleware

from tests.test_settings_and_seed import VALID_SECRET_KEY, run_settings


def served(path: str) -> HttpResponse:
    """What a freshly started server's whitenoise answers for `path` (gzip accepted)."""
    middleware = WhiteNoiseMiddleware(lambda request: HttpResponse(status=404))
    return middleware(RequestFactory().get(path, HTTP_ACCEPT_ENCODING="gzip"))


def test_the_collected_widget_script_is_served_gzipped(settings, tmp_path):
    # given: a release, collected as the Dockerfile does, and production's default
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", verbosity=0)
    settings.WHITENOISE_USE_FINDERS = False

    # when: a customer's page loads the widget
    response = served("/static/widget/chatshield.js")

    # then: the pre-compressed variant, a quarter of the script's size
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert int(response["Content-Length"]) < (tmp_path / "widget/chatshield.js").stat().st_size / 2


def test_production_serves_the_collected_files_and_development_the_source_folders():
    code = (
        "import django, json; from django.conf import settings; django.setup();"
        " print(json.dumps(settings.WHITENOISE_USE_FINDERS))"
    )

    production = run_settings({"DJANGO_SECRET_KEY": VALID_SECRET_KEY}, code)
    development = run_settings({"DJANGO_DEBUG": "true"}, code)

    assert json.loads(production.stdout) is False, production.stderr
    assert json.loads(development.stdout) is True, development.stderr
