"""drf-spectacular extensions describing the widget's authentication in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

WIDGET_TOKEN_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "X-Widget-Token",
    "description": "The org's public widget token, wgt_…: it identifies, never authenticates.",
}


class WidgetTokenScheme(OpenApiAuthenticationExtension):
    target_class = "contacts.api.authentication.WidgetTokenAuthentication"
    name = "widgetToken"

    def get_security_definition(self, auto_schema):
        return WIDGET_TOKEN_SCHEME


class ContactTokenScheme(OpenApiAuthenticationExtension):
    """The contact token; the X-Widget-Token header is documented as a parameter of each route."""

    target_class = "contacts.api.authentication.ContactTokenAuthentication"
    name = "contactToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object("Authorization", "Bearer", "JWT")
