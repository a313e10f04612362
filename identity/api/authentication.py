"""DRF authentication: agents (simplejwt, `Bearer` or `JWT` prefix) and org API keys."""

import logging
import re

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from config.exceptions import Unauthenticated
from identity.selectors import api_key_principal
from identity.tokens import AGENT_TOKEN_CLAIM_ERRORS, agent_token_claims_usable

logger = logging.getLogger(__name__)

# The shape of a real key anywhere in a text, whatever parameter name carries it.
API_KEY_IN_TEXT = re.compile(r"csk_[0-9a-f]{16}_")


class AgentJWTAuthentication(JWTAuthentication):
    """Agent access tokens only: refresh and contact tokens fail the type, audience or key."""

    www_authenticate_realm = "agents"

    def get_validated_token(self, raw_token: bytes):
        try:
            token = super().get_validated_token(raw_token)
        except (UnicodeDecodeError, *AGENT_TOKEN_CLAIM_ERRORS) as exc:
            raise InvalidToken() from exc
        if not agent_token_claims_usable(token):
            raise InvalidToken()
        return token


def _query_carries_api_key(request) -> bool:
    for name, values in request.query_params.lists():
        for text in (name, *values):
            if text.strip().startswith("csk_") or API_KEY_IN_TEXT.search(text):
                return True
    return False


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer csk_…` for server-to-server calls. Other bearer tokens pass through.

    Missing, malformed, unknown, revoked and expired keys get the same 401, with no cache lag
    after revocation: every request reads the key row. A key in the query string never
    authenticates: the request is refused with 401 whatever else it carries, so the integrator
    notices before the key spreads through access logs, proxies and browser history.
    """

    def authenticate(self, request):
        if _query_carries_api_key(request):
            logger.warning(
                "refused a request with an API key in its query string: %s", request.path
            )
            raise Unauthenticated()
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
