"""The one error envelope of SPEC §5, for DRF views and Django's own error views alike."""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

# Redis down or slow, and Redis up but refusing writes: full under `noeviction` (OOM), a read-only
# replica (READONLY), unable to persist (MISCONF). Each means the counters and the replay store
# cannot be kept, so the request is refused with a 503, never a 500.
CACHE_ERRORS = (ConnectionInterrupted, RedisError)


class ApplicationError(exceptions.APIException):
    """A typed error a service raises: a snake_case code, a message and an HTTP status."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    default_detail = "The request is invalid."

    def __init__(self, message: str | None = None, *, code: str | None = None):
        super().__init__(detail=message or self.default_detail, code=code or self.default_code)


class Unauthenticated(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "not_authenticated"
    default_detail = "Authentication credentials were not provided or are not valid."


class Forbidden(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"
    default_detail = "You do not have permission to perform this action."


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with an existing identity."


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is larger than 1 MiB."


class ServiceUnavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "service_unavailable"
    default_detail = "The service is temporarily unavailable."


# Every 401 looks the same, so a caller cannot tell unknown from expired from revoked.
UNAUTHENTICATED_CODE = Unauthenticated.default_code
UNAUTHENTICATED_MESSAGE = Unauthenticated.default_detail

_CODES = {
    status.HTTP_400_BAD_REQUEST: "invalid",
    status.HTTP_401_UNAUTHORIZED: UNAUTHENTICATED_CODE,
    status.HTTP_403_FORBIDDEN: "permission_denied",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "payload_too_large",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "unsupported_media_type",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


def error_body(*, code: str, message: str, fields: dict | None = None, path: str = "") -> dict:
    error = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    body = {"error": error}
    if path.startswith("/v3/"):
        body["success"] = False
    return body


def _flatten_fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"a.b": ["message", ...]}."""
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            fields.update(_flatten_fields(value, name))
    elif (
        isinstance(detail, list) and detail and all(not isinstance(d, dict | list) for d in detail)
    ):
        fields[prefix or "non_field_errors"] = [str(d) for d in detail]
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if value:
                fields.update(_flatten_fields(value, f"{prefix}.{index}" if prefix else str(index)))
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: render every error as the SPEC §5 envelope."""
    request = context.get("request")
    path = request.path if request is not None else ""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = Forbidden()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif _is_unavailable(exc):
        exc = ServiceUnavailable()
    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if exc.status_code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = getattr(exc, "auth_header", None) or 'Bearer realm="api"'
    if getattr(exc, "wait", None) is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait)))

    status_code = exc.status_code
    if status_code == status.HTTP_401_UNAUTHORIZED:
        body = error_body(code=UNAUTHENTICATED_CODE, message=UNAUTHENTICATED_MESSAGE, path=path)
    elif isinstance(exc, exceptions.ValidationError):
        body = error_body(
            code="invalid",
            message="The request is invalid.",
            fields=_flatten_fields(exc.detail),
            path=path,
        )
    else:
        code = exc.get_codes()
        if not isinstance(code, str) or code == "error":
            code = _CODES.get(status_code, "error")
        body = error_body(code=code, message=str(exc.detail), path=path)
    return Response(body, status=status_code, headers=headers)


def _is_unavailable(exc: Exception) -> bool:
    """Whether `exc` is a database or cache failure, which is answered 503 (and logged here)."""
    if isinstance(exc, OperationalError | InterfaceError):
        # The database is down or the connection dropped: a retryable 503, never a stack trace.
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return True
    if isinstance(exc, CACHE_ERRORS):
        # Redis is down or refuses writes: throttles, lockouts and replay checks cannot be
        # enforced, so refuse.
        logger.warning("cache unavailable: %s: %s", type(exc).__name__, exc)
        return True
    return False


def service_unavailable(request, exc: Exception) -> JsonResponse | None:
    """The 503 for a database or cache failure outside DRF's views (the admin's and the
    console's forms, the widget's CORS check), as DRF's views answer it; None for any other
    exception."""
    if not _is_unavailable(exc):
        return None
    unavailable = ServiceUnavailable()
    return json_error(request, 503, unavailable.default_code, str(unavailable.detail))


def json_error(request, status_code: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        error_body(code=code, message=message, path=request.path),
        status=status_code,
        json_dumps_params={"separators": (",", ":")},  # as DRF's renderer writes every other error
    )


def bad_request(request, exception=None):
    return json_error(request, 400, "invalid", "The request is invalid.")


def permission_denied(request, exception=None):
    return json_error(request, 403, "permission_denied", Forbidden.default_detail)


def page_not_found(request, exception=None):
    return json_error(request, 404, "not_found", NotFound.default_detail)


def server_error(request):
    return json_error(request, 500, "server_error", "An unexpected error occurred.")


def csrf_failure(request, reason=""):
    return json_error(request, 403, "csrf_failed", "CSRF verification failed. Reload the page.")
