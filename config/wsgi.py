"""WSGI entry point for gunicorn."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from config.chunked import ChunkedBodyApplication

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = ChunkedBodyApplication(get_wsgi_application(), limit=settings.MAX_REQUEST_BODY_BYTES)
