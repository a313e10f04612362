"""drf-spectacular extensions describing our authentication classes in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class AgentJWTScheme(OpenApiAuthenticationExtension):
    target_class = "identity.api.authentication.AgentJWTAuthentication"
    name = "agentJWT"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object("Authorization", "Bearer", "JWT")


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "identity.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An org API key, `csk_…`, with the scope the route names.",
        }
