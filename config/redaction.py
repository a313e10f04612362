"""Credentials cut out of text bound for a log: gunicorn's error log (config.gunicorn_logging) and
the paths in our own records (config.request_id, config.logging).

Logs never hold a header, a body or a query string (docs/api.md, "Logs"), but a careless client
can put a key or a token anywhere in a URL, the path included.
"""

import re

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


# What a credential needs to be found at all: a cheap search first, so the common path skips the
# full expression (about 4 µs on a typical path).
_MAYBE_CREDENTIAL = re.compile(r"csk_|eyJ|[=\s]")


def redact_path(path: str) -> str:
    """A request path fit for a log record: as it is, unless something credential-shaped is in
    it."""
    return redact(path) if _MAYBE_CREDENTIAL.search(path) else path
