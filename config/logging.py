"""JSON log lines: one object per record, stamped with the current request id."""

import json
import logging
from datetime import UTC, datetime

from config.redaction import redact_path
from config.request_id import request_id_get

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
}
# Extras that must not be rendered: Django attaches the HttpRequest, whose repr holds the query.
_DROPPED_EXTRAS = frozenset({"request"})


class RequestIdFilter(logging.Filter):
    """Stamp `request_id` on every record (None outside a request); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id_of(record)
        return True


def _request_id_of(record: logging.LogRecord) -> str | None:
    """The record's own id, else the current request's, else that of the request it carries.

    Django logs 4xx/5xx responses (`django.request`) after the middleware chain has returned, so
    the contextvar is already reset then; the request it attaches still knows its id.
    """
    return (
        getattr(record, "request_id", None)
        or request_id_get()
        or getattr(getattr(record, "request", None), "request_id", None)
        or None
    )


def _message_of(record: logging.LogRecord) -> str:
    message = record.getMessage()
    # Django's own 5xx records quote the request's path ("Internal Server Error: /…").
    return redact_path(message) if record.name == "django.request" else message


class JsonFormatter(logging.Formatter):
    """`{"timestamp", "level", "logger", "message", "request_id", …extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message_of(record),
            "request_id": _request_id_of(record),
        }
        for key, value in record.__dict__.items():
            if (
                key in _RECORD_ATTRIBUTES
                or key in _DROPPED_EXTRAS
                or key in payload
                or key.startswith("_")
            ):
                continue
            payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)
