"""Keyset pagination with opaque cursors: one query per page, stable while rows are added."""

import base64
import binascii
import json
from collections.abc import Callable
from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from config.exceptions import ApplicationError

MAX_CURSOR_LENGTH = 256


class InvalidCursor(ApplicationError):
    default_code = "invalid_cursor"
    default_detail = "The cursor is not valid."


def keyset_page(
    queryset: QuerySet, *, ordering_field: str, position: tuple | None, limit: int
) -> QuerySet:
    """`limit` rows newest first by (`ordering_field`, pk), after `position` when one is given.

    Ties on `ordering_field` are broken by the pk, so no row is skipped or repeated between pages.
    """
    rows = queryset.order_by(f"-{ordering_field}", "-pk")
    if position:
        value, pk = position
        rows = rows.filter(
            Q(**{f"{ordering_field}__lt": value}) | Q(**{ordering_field: value, "pk__lt": pk})
        )
    return rows[:limit]


class KeysetPagination(BasePagination):
    """Pages of `page_size` rows, newest first by (`ordering_field`, pk), both descending.

    The cursor is the last row's (`ordering_field`, pk) as base64url JSON. Clients treat it as
    opaque; a cursor that does not decode is a 400, never a 500.
    """

    page_size = 20
    ordering_field = "created_at"
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        return self.paginate_fetch(
            lambda position, limit: list(
                keyset_page(
                    queryset, ordering_field=self.ordering_field, position=position, limit=limit
                )
            ),
            request,
            queryset.model,
        )

    def paginate_fetch(self, fetch: Callable[[tuple | None, int], list], request, model) -> list:
        """A page from `fetch(position, limit)`, a selector that runs `keyset_page` itself."""
        position = self.cursor_decode(request.query_params.get(self.cursor_query_param), model)
        page = fetch(position, self.page_size + 1)
        has_next = len(page) > self.page_size
        page = page[: self.page_size]
        self.next_cursor = self.cursor_encode(page[-1]) if has_next else None
        return page

    def get_paginated_response(self, data) -> Response:
        return Response({"results": data, "next": self.next_cursor})

    def cursor_encode(self, row) -> str:
        value = getattr(row, self.ordering_field).isoformat()
        raw = json.dumps([value, str(row.pk)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def cursor_decode(self, cursor: str | None, model) -> tuple[datetime, object] | None:
        if not cursor:
            return None
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidCursor()
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            value, pk = json.loads(raw)
            position = datetime.fromisoformat(value)
            pk = model._meta.pk.to_python(pk)
        except (
            binascii.Error,
            UnicodeDecodeError,
            ValueError,
            TypeError,
            DjangoValidationError,
        ) as exc:
            raise InvalidCursor() from exc
        if position.tzinfo is None or pk is None:
            raise InvalidCursor()
        try:
            # In UTC, as the database compares it: an instant at the calendar's edge in a far
            # zone (0001-01-01T00:00+14:00) is not a date there, and would fail in the query.
            position = position.astimezone(UTC)
        except OverflowError as exc:
            raise InvalidCursor() from exc
        return position, pk

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {
                    "type": "string",
                    "nullable": True,
                    "description": "Opaque cursor of the next page; null on the last page.",
                },
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next` cursor of the previous page.",
                "schema": {"type": "string"},
            }
        ]
