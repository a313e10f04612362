"""CORS for widget routes only, from each org's allowed origins (SPEC §3)."""

from django.http import HttpResponse
from django.utils.cache import patch_vary_headers

from config.exceptions import json_error, service_unavailable
from identity.selectors import organization_for_widget_token

ALLOWED_HEADERS = "Authorization, Content-Type, X-Widget-Token"
ALLOWED_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
# Server-to-server: a browser has no business calling it, so it gets no CORS headers at all.
NOT_FOR_BROWSERS = ("/widget/authenticate-user",)
# Tiledesk's visitor sign-ins, which its browser clients call from the customer's pages: the
# preflight is answered here, the response's CORS by the view, which knows the org
# (contacts.api.v3).
TILEDESK_BROWSER_ROUTES = ("/v3/auth/signinAnonymously", "/v3/auth/signinWithCustomToken")


def _origin_allowed(org, origin: str) -> bool:
    allowed = org.allowed_origins or []
    return not allowed or origin in allowed


def cors_preflight(origin: str, *, methods: str = ALLOWED_METHODS) -> HttpResponse:
    """The 204 answer to a browser's preflight from `origin`."""
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = methods
    response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    patch_vary_headers(response, ["Origin"])
    return WidgetCorsMiddleware._allow(response, origin)


def cors_for_org(request, response, org):
    """Let the page at the request's Origin read `response`, unless `org` (when known) does not
    allow that origin. Every response says `Vary: Origin`."""
    patch_vary_headers(response, ["Origin"])
    origin = request.META.get("HTTP_ORIGIN")
    if origin and (org is None or _origin_allowed(org, origin)):
        WidgetCorsMiddleware._allow(response, origin)
    return response


class WidgetCorsMiddleware:
    """Answer preflights on /widget/… and let a browser read a response only from allowed origins.

    A preflight carries no widget token, so it is answered for any origin; the real request then
    has its Origin checked against the org the widget token names: a disallowed origin is refused
    with 403 before the view runs (nothing is written). The page may read that refusal, and the
    401 for an unknown widget token, so that the widget can say what is wrong; neither holds
    anything of an org.

    Every response here says `Vary: Origin`, added to any Vary it already has: with or without an
    Origin, allowed or refused, the same URL answers differently per Origin, and a shared cache
    must not hand one origin's answer to another.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path in TILEDESK_BROWSER_ROUTES:
            origin = request.META.get("HTTP_ORIGIN")
            if request.method == "OPTIONS" and origin:
                return cors_preflight(origin, methods="POST, OPTIONS")
            return self.get_response(request)
        if not request.path.startswith("/widget/") or request.path in NOT_FOR_BROWSERS:
            return self.get_response(request)
        response = self._answer(request)
        patch_vary_headers(response, ["Origin"])
        return response

    def _answer(self, request):
        origin = request.META.get("HTTP_ORIGIN")
        if request.method == "OPTIONS" and origin:
            return cors_preflight(origin)
        if not origin:
            return self.get_response(request)
        try:
            org = organization_for_widget_token(
                widget_token=request.META.get("HTTP_X_WIDGET_TOKEN", "")
            )
        except Exception as exc:
            # Outside any view, so neither DRF's handler nor ServiceUnavailableMiddleware sees it.
            unavailable = service_unavailable(request, exc)
            if unavailable is None:
                raise
            return unavailable
        if org is not None and not _origin_allowed(org, origin):
            refused = json_error(
                request, 403, "origin_not_allowed", "This origin may not use this widget."
            )
            # The page may read why: the widget says so and stops, instead of taking an
            # unreadable answer for a network failure and trying again forever.
            return self._allow(refused, origin)
        # Without an org (an unknown or rotated-away widget token) the view's answer is a 401
        # that tells nothing about any org: readable for the same reason.
        return self._allow(self.get_response(request), origin)

    @staticmethod
    def _allow(response, origin: str):
        response["Access-Control-Allow-Origin"] = origin
        if "Retry-After" in response:
            # Not a CORS-safelisted header: without this the widget's back-off never sees it.
            response["Access-Control-Expose-Headers"] = "Retry-After"
        return response
