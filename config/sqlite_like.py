"""SQLite's LIKE made to ignore case beyond ASCII, as PostgreSQL's does.

SQLite's own LIKE folds only ASCII letters, so on the embedded database (`make run`, `make test`)
an agent searching `émile` or `жанна` found nothing, where PostgreSQL's `UPPER(…) LIKE UPPER(…)`
finds `Émile` and `Жанна` (`contacts.selectors.contacts_for_org`, the admin's searches). SQLite
lets an application replace `like()`, which its LIKE operator calls: this one matches with
Python's Unicode case-insensitive regular expressions. Django's SQLite lookups (`icontains`,
`iexact`, `istartswith`, … and their case-sensitive twins, which on SQLite have always ignored
ASCII case, as Django documents) are all LIKE with `ESCAPE '\\'`, so the case-insensitive ones now
find on SQLite what they find on PostgreSQL. SQLite is the newcomer's database; its LIKE index
optimisation, which this turns off, does not matter there.
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
        if char == escape and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def like(pattern, value, escape=None):
    """SQLite's `value LIKE pattern [ESCAPE escape]`: NULL in, NULL out."""
    if pattern is None or value is None:
        return None
    return _like_pattern(str(pattern), escape).fullmatch(str(value)) is not None


@receiver(connection_created)
def like_install(sender, connection, **kwargs):
    """On every new SQLite connection (Django's own backend, which pytest-django and the
    tooling recognise by name; identity's AppConfig imports this module)."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("like", 2, like, deterministic=True)
        connection.connection.create_function("like", 3, like, deterministic=True)
