"""A request id for every request, and the one access log record each request gets.

The id comes from the caller's `X-Request-ID` when it is a sane token, so a load balancer's or a
customer's id ties their logs to ours; otherwise a fresh uuid4. It lives in a contextvar for the
request's duration (config.logging stamps it on every record) and goes back as `X-Request-ID`.
"""

import logging
import re
import time
import uuid
from contextvars import ContextVar

from django.utils.functional import LazyObject, empty

from config.http import client_ip
from config.redaction import redact_path

REQUEST_ID_HEADER = "X-Request-ID"
# Anything else (long, spaces, quotes, newlines) could forge or break log lines: replaced.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
access_logger = logging.getLogger("chatshield.request")


def request_id_get() -> str:
    """The current request's id; "" outside a request."""
    return request_id_var.get()


def request_id_for(incoming: str | None) -> str:
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE: sets the id, answers it on every response, logs the request once.

    The access record holds the method, the path without its query string (where careless
    clients put keys) and with anything credential-shaped in it cut out, the status, the
    duration, the client IP and the org when known. Never headers or bodies.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        reset = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = request_id
            self._log(request, response, duration=time.perf_counter() - started)
            return response
        finally:
            request_id_var.reset(reset)

    def _log(self, request, response, *, duration: float) -> None:
        status = response.status_code
        duration_ms = round(duration * 1000, 1)
        path = redact_path(request.path)
        access_logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s %s %sms",
            request.method,
            path,
            status,
            duration_ms,
            extra={
                "method": request.method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client_ip": client_ip(request),
                "org_id": _org_id(request),
            },
        )


def _org_id(request) -> str | None:
    """The org the request acted on: its principal's, or the URL's once an org-scoped view's
    permission step granted access to it (identity.api.access), whatever the action answered."""
    user = request.__dict__.get("user")
    # An unevaluated lazy user means nothing authenticated; evaluating it would cost a query.
    if isinstance(user, LazyObject) and user._wrapped is empty:
        user = None
    org = getattr(user, "org", None)
    if org is not None:
        return str(org.pk)
    return getattr(request, "org_access_granted", None)
