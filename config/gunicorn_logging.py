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


class RedactingFilter(logging.Filter):
    """Replace a record's message with its redacted text, arguments already filled in."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError, KeyError):
            # A message that does not fit its arguments: kept with them beside it, never lost.
            text = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(text), ()
        return True


class RedactingLogger(Logger):
    """gunicorn's Logger; every error-log line (not the access log) is redacted first."""

    def setup(self, cfg):
        super().setup(cfg)
        if not any(isinstance(f, RedactingFilter) for f in self.error_log.filters):
            self.error_log.addFilter(RedactingFilter())
