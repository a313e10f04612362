"""config.sqlite_like: SQLite's LIKE, folding case beyond ASCII as PostgreSQL's UPPER() does."""

import sqlite3

import pytest

from config.sqlite_like import like


def sqlites_own(value, pattern, escape=None):
    """What SQLite's built-in LIKE answers."""
    with sqlite3.connect(":memory:") as connection:
        if escape is None:
            return connection.execute("SELECT ? LIKE ?", (value, pattern)).fetchone()[0]
        sql = "SELECT ? LIKE ? ESCAPE ?"
        return connection.execute(sql, (value, pattern, escape)).fetchone()[0]


@pytest.mark.parametrize(
    ("value", "pattern", "escape"),
    [
        ("Robin Hood", "%hoo%", None),
        ("Robin Hood", "robin_hood", None),
        ("Robin Hood", "robin%wood", None),
        ("a%b", "a\\%b", "\\"),
        ("axb", "a\\%b", "\\"),
        ("a_b", "a\\_b", "\\"),
        ("ab", "ab\\", "\\"),  # an escape with nothing after it
        ("a\nb", "a%b", None),
        (None, "a", None),
        ("a", None, None),
        ("a", "a", None),
    ],
)
def test_it_answers_as_sqlites_own_on_ascii(value, pattern, escape):
    expected = sqlites_own(value, pattern, escape)

    answer = like(pattern, value, escape) if escape is not None else like(pattern, value)

    assert answer == (None if expected is None else bool(expected))


@pytest.mark.parametrize(
    ("value", "pattern"), [("Émile Zoë", "%émile zoë%"), ("Жанна", "жан%"), ("ÉMILE", "émile")]
)
def test_it_folds_case_beyond_ascii_where_sqlites_own_does_not(value, pattern):
    assert like(pattern, value) is True
    assert sqlites_own(value, pattern) == 0


def test_a_null_escape_is_null_and_a_longer_one_an_error():
    assert like("a", "a", None) is None
    with pytest.raises(ValueError, match="single character"):
        like("a", "a", "xy")
