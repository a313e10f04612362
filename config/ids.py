"""Ids that arrive from outside (URLs, token claims): a malformed one is no id, not an error."""

import uuid


def uuid_or_none(value) -> uuid.UUID | None:
    """`value` as a UUID (a UUID, or anything whose `str()` is one in a form `uuid.UUID`
    reads); None otherwise, so that the caller answers as it would for an unknown id."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
