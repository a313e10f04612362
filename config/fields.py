"""Strict serializer fields for SPEC §5: no type coercion, bounded JSON objects."""

import json
from datetime import UTC

from django.core.validators import EmailValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.emails import email_normalize, email_validate

MAX_CUSTOM_DATA_BYTES = 16 * 1024
MAX_CUSTOM_DATA_DEPTH = 5


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and containers instead of stringifying them."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class StrictEmailField(StrictCharField, serializers.EmailField):
    """An email address, normalized (`config.emails.email_normalize`) and then validated, its
    length too: normalization can lengthen an address (`İ` lower-cases to two characters)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # config.emails' validation instead of Django's alone (which it includes).
        self.validators = [v for v in self.validators if not isinstance(v, EmailValidator)]
        self.validators.append(email_validate)

    def to_internal_value(self, data):
        return email_normalize(super().to_internal_value(data))


class IdentifierField(StrictCharField):
    """An opaque identity key (a customer's `user_id`): kept exactly as sent. Surrounding
    whitespace is refused, not trimmed: trimming would make `acct-1` and `acct-1\u3000` one
    customer, and the custom-token path (`identity.tokens`) refuses such an `_id` too."""

    default_error_messages = {"padded": "Must not start or end with whitespace."}

    def __init__(self, **kwargs):
        super().__init__(trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value != value.strip():
            self.fail("padded")
        return value


class StrictURLField(StrictCharField, serializers.URLField):
    """An http(s) URL given as a string."""


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"not_a_boolean": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_a_boolean")
        return data


class UtcDateTimeField(serializers.DateTimeField):
    """A timestamp written in UTC (`…Z`), whatever time zone is active.

    DRF's field looks up the active time zone for every value it writes (about 4 us, a dozen
    times on a history page); the API's timestamps are UTC, so this one never asks.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)


def json_depth(value, depth: int = 0) -> int:
    """Nesting depth of containers: {} is 1, {"a": {}} is 2, a scalar is 0."""
    if isinstance(value, dict):
        return max((json_depth(v, depth + 1) for v in value.values()), default=depth + 1)
    if isinstance(value, list):
        return max((json_depth(v, depth + 1) for v in value), default=depth + 1)
    return depth


def json_size(value) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def entry_shown(entry) -> str:
    """A client's value quoted in an error message, cut short: never the whole of a long one."""
    if isinstance(entry, str):
        return repr(entry if len(entry) <= 100 else f"{entry[:100]}…")
    shown = json.dumps(entry)
    return shown if len(shown) <= 40 else f"{shown[:40]}…"


def unknown_keys_refuse(data: dict, *, known) -> None:
    """Raise a ValidationError naming the first key of `data` not in `known` (cut short) and how
    many more there are, for an object whose keys are a fixed set."""
    unknown = [key for key in data if key not in known]
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        *others, last = known
        listed = f"{', '.join(others)} and {last}" if others else last
        raise serializers.ValidationError(
            f"Unknown key {entry_shown(unknown[0])}{more}; the known keys are {listed}."
        )


def check_custom_data(value) -> list[str]:
    """The SPEC §5 limits for custom data; returns the problems, empty when it fits."""
    problems = []
    if json_size(value) > MAX_CUSTOM_DATA_BYTES:
        problems.append(f"Must be at most {MAX_CUSTOM_DATA_BYTES} bytes as JSON.")
    if json_depth(value) > MAX_CUSTOM_DATA_DEPTH:
        problems.append(f"Must be nested at most {MAX_CUSTOM_DATA_DEPTH} levels deep.")
    return problems


@extend_schema_field(OpenApiTypes.OBJECT)
class CustomDataField(serializers.Field):
    """A JSON object of custom data: at most 16 KiB as JSON and 5 levels deep."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_an_object")
        problems = check_custom_data(data)
        if problems:
            raise serializers.ValidationError(problems)
        return data

    def to_representation(self, value):
        return value
