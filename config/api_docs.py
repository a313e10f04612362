"""The OpenAPI schema and its Swagger page (SPEC §3.4): JSON errors, and no `?version=`."""

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from config.api import StrictViewMixin


class JsonErrorsMixin:
    """Errors in the one JSON envelope (SPEC §5), whatever the page itself is served as.

    The schema is YAML or JSON by content negotiation and the docs page an HTML template; each
    rendered a 405 or a 406 its own way (the envelope as YAML, a bare text page).
    """

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response) and response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaView(JsonErrorsMixin, StrictViewMixin, SpectacularAPIView):
    """The schema of the API, which has one version (`SPECTACULAR_SETTINGS["VERSION"]`).

    drf-spectacular takes a `?version=` from anyone and writes it, as sent, into the schema's
    title and into the `Content-Disposition` header's file name: a control character there was a
    500, and a quote let a caller add parameters to the header. It is not read here.
    """

    def _get_version_parameter(self, request):
        return None


class SchemaDocsView(JsonErrorsMixin, StrictViewMixin, SpectacularSwaggerSplitView):
    """Swagger UI over `SchemaView`, served from the sidecar's static files."""
