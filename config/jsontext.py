"""What SPEC §5 refuses inside JSON text, wherever the JSON came from: a request body, or the
claims of a token a customer signed. No Django here, so token code can use it too."""

MAX_JSON_DEPTH = 32


def json_text_check(value: object, depth: int = 0) -> None:
    """Raise ValueError, with a reason fit for a client, for NUL characters or lone surrogates in
    any string or key of `value`, or for nesting deeper than MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, str):
        _text_check(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_check(key)
            json_text_check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            json_text_check(item, depth + 1)


def _text_check(value: str) -> None:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("lone surrogates are not allowed") from exc
