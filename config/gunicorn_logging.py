"""gunicorn's own error log, with credentials cut out of what it quotes.

gunicorn logs a request it cannot parse with the offending line quoted ("Invalid request from
ip=…: Invalid HTTP Header: 'Authorization Bearer csk_…'"), and a request that crashed a worker
with its URI. Those lines never reach Django's logging, which holds no header or token
(docs/api.md); here the same rule is kept for them.
"""

import logging
import re

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# An API key, a JWT (a contact, agent or customer-signed token), and whatever follows an
# authorization scheme or a query-string credential.
_CREDENTIALS = re.compile(
    r"csk_[A-Za-z0-9_\-]+"
    r"|eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)?"
    r"|(?i:(?:bearer|jwt|basic)\s+)[^\s'\"]+"
    r"|(?i:(?:token|key|secret|password)=)[^\s&'\"]+"
)


def redact(text: str) -> str:
    """`text` with every credential-shaped part replaced by [redacted]."""
    return _CREDENTIALS.sub(_redacted, text)


def _redacted(found: re.Match) -> str:
    # The scheme or parameter name stays, so the line still says what kind of thing was cut.
    kept = re.match(r"(?i)(?:bearer|jwt|basic)\s+|(?:token|key|secret|password)=", found.group(0))
    return (kept.group(0) if kept else "") + REDACTED


class RedactingLogger(Logger):
    """gunicorn's Logger; every error-log line (not the access log) is redacted first."""

    def log(self, lvl, msg, *args, **kwargs):
        super().log(lvl, redact(_formatted(msg, args)), **kwargs)

    def critical(self, msg, *args, **kwargs):
        self.error_log.critical(redact(_formatted(msg, args)), **kwargs)

    def error(self, msg, *args, **kwargs):
        self.error_log.error(redact(_formatted(msg, args)), **kwargs)

    def warning(self, msg, *args, **kwargs):
        self.error_log.warning(redact(_formatted(msg, args)), **kwargs)

    def info(self, msg, *args, **kwargs):
        self.error_log.info(redact(_formatted(msg, args)), **kwargs)

    def debug(self, msg, *args, **kwargs):
        self.error_log.debug(redact(_formatted(msg, args)), **kwargs)

    def exception(self, msg, *args, **kwargs):
        self.error_log.exception(redact(_formatted(msg, args)), **kwargs)


def _formatted(msg, args) -> str:
    """The line as logging would write it (a lone mapping argument included); a message that
    does not fit its arguments is kept with them beside it, as the line must never be lost."""
    record = logging.LogRecord("gunicorn.error", logging.INFO, "", 0, msg, args, None)
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):
        return f"{msg} {args!r}"
