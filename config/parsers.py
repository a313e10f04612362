"""A strict JSON parser: SPEC §5 rejects NaN/Infinity, NUL, lone surrogates and duplicate keys."""

import json

from django.conf import settings
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser

from config.exceptions import PayloadTooLarge
from config.jsontext import MAX_JSON_DEPTH, json_value_check


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, object]]) -> dict:
    obj = {}
    for key, value in pairs:
        if key in obj:
            shown = key if len(key) <= 40 else f"{key[:40]}…"  # never the whole of a huge key
            raise ValueError(f"duplicate key {shown!r}")
        obj[key] = value
    return obj


def json_loads_strict(raw: bytes | str) -> object:
    """Parse JSON the SPEC way or raise ValueError with a reason fit for a client."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_object)
    except RecursionError as exc:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError("the body is not UTF-8") from exc
    except ValueError as exc:
        if "int_max_str_digits" in str(exc):  # Python's own advice, not the client's business
            raise ValueError("a number has too many digits") from exc
        raise
    json_value_check(value)
    return value


# JSON's own encodings (RFC 8259 §8.1), which json.loads tells apart by the body's first bytes.
JSON_CHARSETS = frozenset(
    {
        "utf-8",
        "utf8",
        "us-ascii",
        "utf-16",
        "utf-16le",
        "utf-16be",
        "utf-32",
        "utf-32le",
        "utf-32be",
    }
)


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        coding = request.META.get("HTTP_CONTENT_ENCODING", "") if request is not None else ""
        if coding.strip().lower() not in ("", "identity"):
            # A compressed body would otherwise be read as text and refused as "not UTF-8".
            raise UnsupportedMediaType(
                media_type, detail="Content-Encoding is not supported: send the JSON as it is."
            )
        params = parse_header_parameters(media_type)[1] if media_type and ";" in media_type else {}
        if params.get("charset", "utf-8").strip().lower() not in JSON_CHARSETS:
            raise UnsupportedMediaType(media_type, detail="JSON must be sent as UTF-8, -16 or -32.")
        limit = settings.MAX_REQUEST_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            return json_loads_strict(raw)
        except ValueError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
