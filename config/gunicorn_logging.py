"""gunicorn's own error log, with credentials cut out of what it quotes.

gunicorn logs a request it cannot parse with the offending line quoted ("Invalid request from
ip=…: Invalid HTTP Header: 'Authorization Bearer csk_…'"), and a request that crashed a worker
with its URI. Those lines never reach Django's logging, which holds no header or token
(docs/api.md); here the same rule is kept for them.
"""

import logging

from gunicorn.glogging import Logger

from config.redaction import redact


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
