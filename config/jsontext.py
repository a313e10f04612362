"""What SPEC §5 refuses inside JSON, wherever the JSON came from: a request body, an admin form,
or the claims of a token a customer signed. No Django here, so token code can use it too."""

import math

MAX_JSON_DEPTH = 32


def json_value_check(value: object, depth: int = 0) -> None:
    """Raise ValueError, with a reason fit for a client, for what no JSON column can hold: NUL
    characters or lone surrogates in a string or key, a number too large for a float (Python reads
    `1e400` as infinity, which JSON cannot write back), or nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, str):
        _text_check(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite (at most about 1.8e308)")
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_check(key)
            json_value_check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            json_value_check(item, depth + 1)


def as_sentence(reason: str) -> str:
    """A ValueError's reason from here, as a field error's sentence."""
    return f"{reason[:1].upper()}{reason[1:]}."


def _text_check(value: str) -> None:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("lone surrogates are not allowed") from exc
