"""DRF authentication for widget routes: `X-Widget-Token`, plus a contact token where needed."""

from rest_framework.authentication import BaseAuthentication, get_authorization_header

from config.exceptions import Unauthenticated
from contacts.selectors import contact_principal, widget_principal

BEARER_PREFIXES = (b"bearer", b"jwt")


def _widget_token(request) -> str:
    token = request.META.get("HTTP_X_WIDGET_TOKEN", "")
    if not token:
        raise Unauthenticated()
    return token


def bearer_token(request) -> str | None:
    """The raw `Authorization: Bearer|JWT <token>` value, or None when the header is absent."""
    parts = get_authorization_header(request).split()
    if not parts:
        return None
    if len(parts) != 2 or parts[0].lower() not in BEARER_PREFIXES:
        raise Unauthenticated()
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise Unauthenticated() from exc


def optional_bearer_token(request) -> str | None:
    """The bearer token when the header is well formed; None otherwise (reuse is best effort)."""
    try:
        return bearer_token(request)
    except Unauthenticated:
        return None


class WidgetTokenAuthentication(BaseAuthentication):
    """The widget token alone: `request.user` becomes a WidgetPrincipal for the org."""

    def authenticate(self, request):
        return widget_principal(widget_token=_widget_token(request)), None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="widget"'


class ContactTokenAuthentication(WidgetTokenAuthentication):
    """Widget token plus a contact token of that org: `request.user` becomes a ContactPrincipal."""

    def authenticate(self, request):
        widget, _ = super().authenticate(request)
        token = bearer_token(request)
        if token is None:
            raise Unauthenticated()
        return contact_principal(org=widget.org, token=token), None
