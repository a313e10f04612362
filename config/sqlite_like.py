"""SQLite's LIKE made to ignore case beyond ASCII, as PostgreSQL's does.

SQLite's own LIKE folds only ASCII letters, so on the embedded database (`make run`, `make test`)
an agent searching `émile` or `жанна` found nothing, where PostgreSQL's `UPPER(…) LIKE UPPER(…)`
finds `Émile` and `Жанна` (`contacts.selectors.contacts_for_org`, the admin's searches). SQLite
lets an application replace `like()`, which its LIKE operator calls: this one matches with
Python's Unicode case-insensitive regular expressions. Django's SQLite lookups (`icontains`,
`iexact`, `istartswith`, …) are LIKE with `ESCAPE '\\'`, so they now find on SQLite what they
find on PostgreSQL. Their case-sensitive twins are LIKE too, and on SQLite have always ignored
ASCII case (as Django documents); they now ignore all case there, so a test of a case-sensitive
match passes on PostgreSQL only, as before for ASCII. SQLite is the newcomer's database; its
LIKE index optimisation, which this turns off, does not matter there.
"""

import functools
import re

from django.db.backends.signals import connection_created
from django.dispatch import receiver


@functools.lru_cache(maxsize=512)
def _like_pattern(pattern: str, escape: str | None) -> re.Pattern:
    parts, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == escape:
            if i + 1 == len(pattern):
                return _NOTHING  # SQLite: an escape with nothing after it matches nothing
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


_NOTHING = re.compile(r"(?!)")


def _text(value) -> str:
    """A value as SQLite's LIKE reads it: text as it is, blobs as UTF-8, numbers as SQL text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def like(pattern, value, *escape):
    """SQLite's `value LIKE pattern [ESCAPE escape]`: NULL in, NULL out; the escape is one
    character, else SQLite's own error."""
    if pattern is None or value is None or (escape and escape[0] is None):
        return None
    if escape and len(escape[0]) != 1:
        raise ValueError("ESCAPE expression must be a single character")
    return (
        _like_pattern(_text(pattern), escape[0] if escape else None).fullmatch(_text(value))
        is not None
    )


@receiver(connection_created)
def like_install(sender, connection, **kwargs):
    """On every new SQLite connection (Django's own backend, which pytest-django and the
    tooling recognise by name; identity's AppConfig imports this module)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("like", 2, like, deterministic=True)
        connection.connection.create_function("like", 3, like, deterministic=True)
