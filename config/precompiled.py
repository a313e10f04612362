"""Fixed SELECTs compiled once, for the few lookups every widget request makes.

Building, compiling and hydrating an ORM query costs about 1 ms of Python CPU here, 5-10x what
PostgreSQL spends on a primary-key join (docs/PERFORMANCE.md). For a query whose shape never
changes, `ModelRow` writes the column list once per database vendor, binds the parameters through
the model fields (so UUIDs and datetimes are adapted as the ORM would) and turns the row back into
model instances with the same converters the ORM's compiler applies (JSON, UUIDs and datetimes on
SQLite). The SQL stays plain and portable: double-quoted identifiers, `%s` placeholders.
"""

from collections.abc import Sequence

from django.db import connections
from django.db.models import Field, Model


class ModelRow:
    """One row holding the concrete columns of several models, each under its own table alias.

    `sql` has a `{columns}` placeholder for the select list; `models` pairs each model with the
    alias the SQL gives its table; `params` are the fields that adapt each positional value.
    """

    def __init__(
        self, sql: str, *, models: Sequence[tuple[type[Model], str]], params: Sequence[Field]
    ):
        self.sql = sql
        self.models = tuple(models)
        self.params = tuple(params)
        self._compiled: dict[str, tuple[str, list]] = {}

    def _compile(self, connection) -> tuple[str, list]:
        quote = connection.ops.quote_name
        columns: list[str] = []
        layout = []
        for model, alias in self.models:
            fields = model._meta.concrete_fields
            readers = []
            for field in fields:
                col = field.get_col(alias)
                converters = connection.ops.get_db_converters(col) + col.get_db_converters(
                    connection
                )
                readers.append((len(columns), converters, col))
                columns.append(f"{quote(alias)}.{quote(field.column)}")
            layout.append((model, [field.attname for field in fields], readers))
        return self.sql.format(columns=", ".join(columns)), layout

    def fetch(self, *values, using: str = "default") -> list[Model] | None:
        """The row's model instances, in the order of `models`; None when no row matches."""
        connection = connections[using]
        compiled = self._compiled.get(connection.vendor)
        if compiled is None:
            compiled = self._compiled[connection.vendor] = self._compile(connection)
        sql, layout = compiled
        params = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self.params, values, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        instances = []
        for model, attnames, readers in layout:
            fields = []
            for index, converters, col in readers:
                value = row[index]
                for converter in converters:
                    value = converter(value, col, connection)
                fields.append(value)
            instances.append(model.from_db(using, attnames, fields))
        return instances
