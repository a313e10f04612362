"""DRF authentication: agents (simplejwt, `Bearer` or `JWT` prefix) and org API keys."""

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from config.exceptions import Unauthenticated
from identity.selectors import api_key_principal


class AgentJWTAuthentication(JWTAuthentication):
    """Agent access tokens only: refresh and contact tokens fail the type, audience or key."""

    www_authenticate_realm = "agents"

    def get_validated_token(self, raw_token: bytes):
        try:
            return super().get_validated_token(raw_token)
        except UnicodeDecodeError as exc:
            raise InvalidToken() from exc


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer csk_…` for server-to-server calls. Other bearer tokens pass through.

    Missing, malformed, unknown, revoked and expired keys get the same 401, with no cache lag
    after revocation: every request reads the key row.
    """

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer" or not parts[1].startswith(b"csk_"):
            return None
        try:
            raw = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise Unauthenticated() from exc
        return api_key_principal(raw=raw), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
