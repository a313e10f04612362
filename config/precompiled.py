"""Fixed SQL compiled once, for the few lookups and writes every widget request makes.

Building, compiling and hydrating an ORM query costs about 1 ms of Python CPU here, 5-10x what
PostgreSQL spends on a primary-key join (docs/PERFORMANCE.md). For a query whose shape never
changes, `ModelRow` writes the column list once per database vendor, binds the parameters through
the model fields (so UUIDs and datetimes are adapted as the ORM would) and turns the row back into
model instances with the same converters the ORM's compiler applies (JSON, UUIDs and datetimes on
SQLite). The SQL stays plain and portable: double-quoted identifiers, `%s` placeholders.
"""

import functools
import inspect
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import NotSupportedError, connections, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import CharField, Expression, Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.db.transaction import TransactionManagementError
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

# PostgreSQL's feature_not_supported, which is what a prepared statement whose result columns
# changed type raises.
STALE_PREPARED_PLAN = "0A000"


def row_versions(connection) -> bool:
    """Whether rows carry the version (`RowVersion`) `InsertAndUpdate.run_if_unchanged` checks."""
    return connection.vendor == "postgresql"


class RowVersion(Expression):
    """The version of the queried row, as text: PostgreSQL's `xmin`, None elsewhere.

    `xmin` is the id of the transaction that wrote this version of the row, so any UPDATE of
    the row (committed by another transaction) changes it. Annotate a read with it, then write
    with `InsertAndUpdate.run_if_unchanged` to write only if nobody changed the row in between.
    """

    def __init__(self):
        super().__init__(output_field=CharField())

    def as_sql(self, compiler, connection):
        return "NULL", []

    def as_postgresql(self, compiler, connection):
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return f"{table}.xmin::text", []


def execute_prepared(connection, sql: str, params: list, *, fetch: bool | str = False):
    """Execute one fixed statement; with `fetch`, return its one row (`_ALL`: every row).

    On PostgreSQL with prepared statements on (`DATABASE_PREPARED_STATEMENTS`, Django's
    `server_side_binding`), a statement that is its own transaction is prepared once per session
    and run at libpq's level (`_libpq_run`), so PostgreSQL parses and plans it once per
    connection: only for statements whose plan does not depend on the values (lookups by key,
    INSERTs), since a prepared statement may settle on a generic plan. Everywhere else (inside a
    transaction, with query logging or an `execute_wrapper`, on SQLite) it runs on Django's
    cursor, unprepared: psycopg itself never prepares anything, so it never sends the `DEALLOCATE
    ALL` it would after a rolled-back transaction, which would take our statements with it (and
    make pgbouncer, which tracks prepared statements in transaction mode, drop the client that
    next used one).

    A migration that changes the type of a column a prepared statement returns makes PostgreSQL
    refuse that statement from then on ("cached plan must not change result type", SQLSTATE
    0A000) for as long as the connection lives: the connection, and every statement prepared on
    it, is dropped and the statement runs once more on a new one.
    """
    try:
        return _execute(connection, sql, params, fetch=fetch)
    except NotSupportedError as exc:
        stale = getattr(exc.__cause__, "sqlstate", None) == STALE_PREPARED_PLAN
        if not stale or connection.in_atomic_block:
            raise
    connection.close()
    return _execute(connection, sql, params, fetch=fetch)


# `fetch=_ALL`: every row, where `fetch=True` returns the first.
_ALL = "all"


def _execute(connection, sql: str, params: list, *, fetch: bool | str):
    cursor = statement_cursor(connection)
    if cursor is None:
        with connection.cursor() as cursor:
            return _run(cursor, sql, params, fetch=fetch)
    if _through_libpq(connection, cursor):
        return _libpq_run(connection, cursor, sql, params, fetch=fetch)
    return _run(cursor, sql, params, fetch=fetch)


def _run(cursor, sql: str, params: list, *, fetch: bool | str):
    cursor.execute(sql, params)
    if fetch == _ALL:
        return cursor.fetchall()
    return cursor.fetchone() if fetch else None


# Where `statement_cursor` keeps a connection's cursor: on Django's per-thread connection object.
_STATEMENT_CURSOR = "_precompiled_statement_cursor"


def statement_cursor(connection) -> CursorWrapper | None:
    """Django's cursor for these fixed statements, made once per database connection.

    Making a cursor (`connection.cursor()`) for each statement cost about a tenth of the
    `/widget/me` request's own work (docs/PERFORMANCE.md). Each of these statements reads its
    whole result before the next runs, so one cursor serves them all for as long as the
    connection lives. What `connection.cursor()` does every time is still done every time: the
    health check of a persistent connection, opening one where there is none, the thread check.
    A new cursor is made once the connection was closed or replaced, and whenever query logging
    was switched on or off (Django's debug cursor is what `CaptureQueriesContext` and
    `DEBUG`'s `connection.queries` read). The statements still run through Django's cursor
    wrapper, so its error mapping and `execute_wrapper` hooks apply as before.

    None where several threads share the connection (Django's live test server on an in-memory
    SQLite database): two threads may not use one cursor at once, so each statement makes its
    own there. Outside tests a connection belongs to one thread.
    """
    if connection.allow_thread_sharing:
        return None
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    cursor = getattr(connection, _STATEMENT_CURSOR, None)
    if (
        cursor is None
        or cursor.cursor.connection is not connection.connection
        or getattr(cursor.cursor, "closed", False)
        or isinstance(cursor, CursorDebugWrapper) != connection.queries_logged
    ):
        cursor = connection.cursor()
        setattr(connection, _STATEMENT_CURSOR, cursor)
    else:
        connection.validate_thread_sharing()
    return cursor


# --- the statements at libpq's level, outside transactions (PostgreSQL) ------------------------

# PostgreSQL's invalid_sql_statement_name: a prepared statement this session no longer has.
_STATEMENT_GONE = "26000"

# Where `_libpq_statements` keeps a connection's prepared statements: on Django's per-thread
# connection object, beside the statement cursor.
_LIBPQ_STATEMENTS = "_precompiled_libpq_statements"


def _through_libpq(connection, cursor: CursorWrapper) -> bool:
    """Whether a fixed statement runs at libpq's level (`_libpq_run`) rather than on `cursor`.

    Only where nothing would notice the difference: PostgreSQL preparing statements
    (`DATABASE_PREPARED_STATEMENTS`), outside any transaction (a failed statement there cannot be
    retried), no `execute_wrapper` installed and no query logging (the debug cursor): those go
    through Django's cursor wrapper, unprepared (`execute_prepared`).
    """
    return (
        connection.vendor == "postgresql"
        and connection.autocommit
        and not connection.in_atomic_block
        and not connection.execute_wrappers
        and type(cursor) is CursorWrapper
        and connection.settings_dict["OPTIONS"].get("server_side_binding", False)
    )


# Numbers the statements `_libpq_run` prepares: never the same name twice in a process, so a
# session (which belongs to one process) never meets a name it already holds.
_STATEMENT_NUMBERS = itertools.count(1)


class _LibpqStatements:
    """The statements `_libpq_run` prepared on one database session, by SQL and parameter types,
    and the psycopg transformer that adapts their values and rows, made from the statement
    cursor's adapters and kept, as that cursor keeps its own (it caches a dumper per value type
    and a loader per column type; a new one per statement cost what it saved)."""

    __slots__ = ("cursor", "names", "raw", "transformer")

    def __init__(self, raw):
        self.raw = raw
        self.names: dict[tuple[bytes, tuple], bytes] = {}
        self.cursor = self.transformer = None

    def transformer_for(self, cursor) -> Transformer:
        """The transformer for the psycopg cursor `cursor`, made from its adapters once."""
        if self.cursor is not cursor:
            self.cursor, self.transformer = cursor, Transformer(cursor)
        return self.transformer

    def name_for(self, key: tuple[bytes, tuple]) -> bytes:
        """The statement's name on this session, preparing it there the first time."""
        name = self.names.get(key)
        if name is None:
            name = f"chatshield_{next(_STATEMENT_NUMBERS)}".encode()
            query, types = key
            _libpq_checked(self.raw, self.raw.pgconn.prepare(name, query, param_types=types))
            self.names[key] = name
        return name


def _libpq_statements(connection, raw) -> _LibpqStatements:
    statements = getattr(connection, _LIBPQ_STATEMENTS, None)
    if statements is None or statements.raw is not raw:
        statements = _LibpqStatements(raw)
        setattr(connection, _LIBPQ_STATEMENTS, statements)
    return statements


# Each statement's SQL with psycopg's placeholders numbered as PostgreSQL's ($1, $2, …).
_NUMBERED: dict[str, tuple[bytes, int]] = {}


def _numbered(sql: str) -> tuple[bytes, int]:
    numbered = _NUMBERED.get(sql)
    if numbered is None:
        count = 0

        def number(match: re.Match) -> str:
            nonlocal count
            if match.group() == "%%":
                return "%"
            count += 1
            return f"${count}"

        numbered = _NUMBERED[sql] = (_PLACEHOLDER.sub(number, sql).encode(), count)
    return numbered


def _libpq_run(connection, cursor: CursorWrapper, sql: str, params: list, *, fetch: bool | str):
    """Run one fixed statement as a prepared statement through psycopg's libpq binding.

    psycopg's cursor drives each statement through its own machinery in Python (a generator
    per step, its wait loop, its prepared-statement bookkeeping). Calling libpq's PQexecPrepared
    (which releases the GIL while it waits), with the values dumped and the row loaded by
    psycopg's own adapters (the statement cursor's, so exactly as that cursor would), takes a
    quarter fewer of the client's instructions per statement (docs/PERFORMANCE.md).

    The statements are prepared here, named on the session, once per connection; nothing else
    here prepares or deallocates any (psycopg is never asked to prepare, so it never sends its
    `DEALLOCATE ALL`), and should someone drop them anyway, each is prepared again.
    Errors are psycopg's, mapped to Django's as on a cursor; a lost connection is the
    OperationalError that Django's health check and `ServiceUnavailableMiddleware` act on.
    """
    raw = connection.connection
    query, count = _numbered(sql)
    if count != len(params):
        raise ValueError(f"the statement takes {count} values, {len(params)} given")
    statements = _libpq_statements(connection, raw)
    transformer = statements.transformer_for(cursor.cursor)
    # Adapting a value or a column can fail too (a NUL in a string, a date PostgreSQL writes as
    # infinity): inside the wrapper, so that is Django's DataError as on a cursor.
    with connection.wrap_database_errors:
        values = transformer.dump_sequence(params, [PyFormat.AUTO] * count)
        key = (query, tuple(transformer.types))
        name = statements.name_for(key)
        result = raw.pgconn.exec_prepared(name, values, param_formats=transformer.formats)
        if _sqlstate(result) == _STATEMENT_GONE:
            # Dropped behind our back (a `DEALLOCATE ALL` or `DISCARD ALL` someone sent): all of
            # them, likely, so each is prepared again on its next run.
            statements.names.clear()
            name = statements.name_for(key)
            result = raw.pgconn.exec_prepared(name, values, param_formats=transformer.formats)
        _libpq_checked(raw, result)
        if not fetch:
            return None
        transformer.set_pgresult(result)
        if fetch == _ALL:
            return transformer.load_rows(0, result.ntuples, tuple)
        return transformer.load_row(0, tuple) if result.ntuples else None


def _sqlstate(result) -> str | None:
    if result.status != pq.ExecStatus.FATAL_ERROR:
        return None
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    return state.decode("ascii") if state else None


def _libpq_checked(raw, result):
    """`result`, or the psycopg error it carries (OperationalError where the session is lost)."""
    status = result.status
    if status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return result
    message = result.error_message.decode(raw.info.encoding, "replace").strip()
    if raw.pgconn.status != pq.ConnStatus.OK:
        # libpq keeps the server's last words (such as "terminating connection due to
        # administrator command") on the connection, not on the result it returns.
        lost = raw.pgconn.error_message.decode(raw.info.encoding, "replace").strip()
        raise psycopg.OperationalError(lost or message or "the connection to the server was lost")
    if status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
    raise psycopg.ProgrammingError(f"unexpected result {pq.ExecStatus(status).name}: {message}")


# Appended to a statement's RETURNING list: the statement's own transaction commits without
# waiting for PostgreSQL to flush its WAL (`asynchronous_commit`). `true`: for this transaction
# only, so the connection's later transactions commit as configured again.
_ASYNCHRONOUS_COMMIT = "set_config('synchronous_commit', 'off', true)"


class _CompiledPerVendor:
    """SQL written once per database vendor by `_compile`, on first use.

    With `asynchronous_commit`, a statement that is its own transaction (outside any atomic
    block) on PostgreSQL commits asynchronously while `settings.DATABASE_ASYNCHRONOUS_COMMIT`
    is true: the client gets its answer once the commit is in PostgreSQL's WAL buffers, before
    the flush to disk (PostgreSQL's "Asynchronous Commit"). A crash of the database server may
    then lose the last fraction of a second of such commits, never part of one, and never one
    that a later synchronous commit (any other write) already flushed. Only for writes whose
    loss locks someone out rather than lets someone in (a sign-in's contact and device): never
    for a revocation or for what someone said. Inside a transaction it commits as that
    transaction does.
    """

    def __init__(self, *, asynchronous_commit: bool = False):
        self._compiled: dict[tuple[str, str], object] = {}
        self.asynchronous_commit = asynchronous_commit

    def _commits_asynchronously(self, connection) -> bool:
        return (
            self.asynchronous_commit
            and connection.vendor == "postgresql"
            and not connection.in_atomic_block
            and settings.DATABASE_ASYNCHRONOUS_COMMIT
        )

    def _compile(self, connection):
        raise NotImplementedError

    def _compiled_for(self, connection, variant: str = "", compile=None):
        """The SQL `compile` (by default `_compile`) writes for this vendor, written once."""
        key = (connection.vendor, variant)
        if key not in self._compiled:
            self._compiled[key] = (compile or self._compile)(connection)
        return self._compiled[key]


class ModelRow(_CompiledPerVendor):
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
        super().__init__()

    def _compile(self, connection) -> tuple[str, tuple, list]:
        quote = connection.ops.quote_name
        columns: list[str] = []
        converters = []
        layout = []
        for model, alias in self.models:
            fields = model._meta.concrete_fields
            start = len(columns)
            for field in fields:
                col = field.get_col(alias)
                functions = connection.ops.get_db_converters(col) + col.get_db_converters(
                    connection
                )
                if functions:
                    converters.append((len(columns), tuple(functions), col))
                columns.append(f"{quote(alias)}.{quote(field.column)}")
            layout.append((model, [field.attname for field in fields], slice(start, len(columns))))
        return self.sql.format(columns=", ".join(columns)), tuple(converters), layout

    def fetch(self, *values, using: str = "default") -> list[Model] | None:
        """The row's model instances, in the order of `models`; None when no row matches."""
        connection = connections[using]
        sql, converters, layout = self._compiled_for(connection)
        params = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self.params, values, strict=True)
        ]
        row = execute_prepared(connection, sql, params, fetch=True)
        if row is None:
            return None
        row = _converted(row, converters, connection)
        return [_loaded(model, using, names, row[columns]) for model, names, columns in layout]


def _loaded(model: type[Model], using: str, attnames: list[str], values: Sequence) -> Model:
    """What `model.from_db(using, attnames, values)` returns.

    `attnames` name the model's concrete fields the row holds, in the model's order (the order
    the ORM's compiler selects them in, and the one `from_db` reads the values in); the others
    are deferred, as with `only()`. `Model.__init__` sends `pre_init` and `post_init` and sets
    each value through the class's attribute: about 3 us per instance here, over a tenth of what
    the principal's lookup costs the client (docs/PERFORMANCE.md). Where nothing listens to
    either signal and no attribute of the model does anything when set
    (`_values_set_directly`), setting the values in the new instance's `__dict__` leaves it
    exactly as `__init__` would: a field's attribute stores its value there, a foreign key's
    after forgetting a related instance a new one cannot hold, and a deferred field is left out.
    """
    if not _values_set_directly(model) or (
        (pre_init.receivers or post_init.receivers)
        and (pre_init.has_listeners(model) or post_init.has_listeners(model))
    ):
        return model.from_db(using, attnames, values)
    instance = model.__new__(model)
    instance.__dict__.update(zip(attnames, values, strict=True))
    state = instance._state = ModelState()
    state.adding = False
    state.db = using
    return instance


@functools.cache
def _values_set_directly(model: type[Model]) -> bool:
    """Whether `Model.from_db` and `Model.__init__` are Django's own for `model` and setting each
    concrete field's value does no more than store it (Django's field attributes, which define
    no `__set__`, and its foreign keys' `ForeignKeyDeferredAttribute`). No class of the model's
    MRO but `Model` may define `__init__`: one after `Model` runs from its `super().__init__()`."""
    if (
        any("__init__" in vars(base) for base in model.__mro__ if base not in (Model, object))
        or model.__setattr__ is not Model.__setattr__
        or model.from_db.__func__ is not Model.from_db.__func__
    ):
        return False
    for field in model._meta.concrete_fields:
        kind = type(inspect.getattr_static(model, field.attname, None))
        if hasattr(kind, "__set__") and kind is not ForeignKeyDeferredAttribute:
            return False
    return True


def _converted(row: Sequence, converters: Sequence[tuple], connection) -> list:
    """`row` with each `(index, functions, expression)` of `converters` applied to its column, as
    the ORM's compiler applies its database and field converters to the rows it reads."""
    row = list(row)
    for index, functions, expression in converters:
        value = row[index]
        for function in functions:
            value = function(value, expression, connection)
        row[index] = value
    return row


def save_values(instance: Model, fields: Sequence[Field], connection, *, add: bool) -> list:
    """`fields`' values of `instance` as the ORM writes them: each through its field's `pre_save`
    (`add` for an INSERT, as `auto_now_add` needs) and `get_db_prep_save`."""
    return [field.get_db_prep_save(field.pre_save(instance, add), connection) for field in fields]


def mark_saved(instance: Model, using: str) -> None:
    """Mark an instance written by one of these statements as the ORM marks a saved one."""
    instance._state.adding = False
    instance._state.db = using


class RowsInsert(_CompiledPerVendor):
    """New instances of several models written as one INSERT statement, compiled once.

    On PostgreSQL every row but the last goes in a data-modifying CTE (`WITH i0 AS (INSERT …)
    INSERT …`): one statement, so outside a transaction it commits on its own, all rows or none,
    in one round trip instead of BEGIN, one INSERT per row and COMMIT. Other databases (SQLite)
    get one INSERT per row inside a transaction. Each value goes through its field's `pre_save`
    and `get_db_prep_save`, as the ORM's INSERT does. The instances must carry their primary keys
    (UUID defaults do); Django's FKs on PostgreSQL are checked at commit, so a row may reference one
    inserted by an earlier CTE of the same statement.
    """

    def __init__(self, *models: type[Model], asynchronous_commit: bool = False):
        self.models = models
        super().__init__(asynchronous_commit=asynchronous_commit)

    def _compile(self, connection) -> list[str]:
        quote = connection.ops.quote_name
        statements = []
        for model in self.models:
            fields = model._meta.concrete_fields
            statements.append(
                # Identifiers from the model's own metadata, quoted; values are all parameters.
                f"INSERT INTO {quote(model._meta.db_table)}"  # noqa: S608
                f" ({', '.join(quote(field.column) for field in fields)})"
                f" VALUES ({', '.join(['%s'] * len(fields))})"
            )
        if connection.vendor != "postgresql" or len(statements) == 1:
            return statements
        *ctes, last = statements
        return ["WITH " + ", ".join(f"i{n} AS ({sql})" for n, sql in enumerate(ctes)) + f" {last}"]

    def _compile_asynchronous(self, connection) -> list[str]:
        (statement,) = self._compile(connection)
        return [f"{statement} RETURNING {_ASYNCHRONOUS_COMMIT}"]

    def insert(self, *instances: Model, using: str = "default") -> None:
        """INSERT `instances`, one per model in the order given; they are saved afterwards."""
        connection = connections[using]
        if self._commits_asynchronously(connection):
            statements = self._compiled_for(connection, "async", self._compile_asynchronous)
        else:
            statements = self._compiled_for(connection)
        rows = []
        for model, instance in zip(self.models, instances, strict=True):
            if type(instance) is not model or instance.pk is None:
                raise ValueError(f"expected a {model.__name__} with its primary key set")
            rows.append(save_values(instance, model._meta.concrete_fields, connection, add=True))
        if len(statements) == 1:
            execute_prepared(connection, statements[0], [value for row in rows for value in row])
        else:
            with transaction.atomic(using=using), connection.cursor() as cursor:
                for sql, row in zip(statements, rows, strict=True):
                    cursor.execute(sql, row)
        for instance in instances:
            mark_saved(instance, using)


class InsertAndUpdate(_CompiledPerVendor):
    """A new row INSERTed and an existing row UPDATEd together: one statement on PostgreSQL.

    `InsertAndUpdate(Message, update=Conversation, fields=["last_message_at"], link="last_message")`
    INSERTs a message and UPDATEs its conversation's `last_message_at`, pointing `last_message`
    at the new row. On PostgreSQL that is `WITH new AS (INSERT … RETURNING pk) UPDATE existing
    SET …, link = new.pk FROM new WHERE existing.pk = %s` (see `execute_prepared`): one round
    trip instead of two, and no ORM statement to build. Elsewhere (SQLite), the ORM's INSERT
    and UPDATE. The new row's primary key may be the database's (an AutoField, read back) or
    its own (a UUID default). Values go through each field's `pre_save` and `get_db_prep_save`,
    as the ORM's INSERT and `save(update_fields=…)` do.

    It must run inside a transaction, which in practice holds the existing row's lock: an
    existing row that matched nothing raises `DoesNotExist`, and the rollback takes the INSERT
    with it.
    """

    def __init__(
        self,
        insert: type[Model],
        *,
        update: type[Model],
        fields: Sequence[str],
        link: str | None = None,
        asynchronous_commit: bool = False,
    ):
        self.insert_model = insert
        self.update_model = update
        # Every concrete field but a key the database assigns (read back by RETURNING).
        self.inserted = tuple(
            f for f in insert._meta.concrete_fields if f is not insert._meta.auto_field
        )
        self.fields = tuple(update._meta.get_field(name) for name in fields)
        self.link = update._meta.get_field(link) if link else None
        if self.link is not None and self.link.related_model is not insert:
            raise ValueError(f"{self.link} does not point at {insert.__name__}")
        super().__init__(asynchronous_commit=asynchronous_commit)

    def _compile(self, connection) -> str | None:
        if connection.vendor != "postgresql":
            return None
        quote = connection.ops.quote_name
        new, existing = self.insert_model._meta, self.update_model._meta
        new_pk = f"{quote('new')}.{quote(new.pk.column)}"
        columns = [quote(field.column) for field in self.inserted]
        assignments = [f"{quote(field.column)} = %s" for field in self.fields]
        if self.link is not None:
            assignments.append(f"{quote(self.link.column)} = {new_pk}")
        # Identifiers from the models' own metadata, quoted; values are all parameters.
        return (
            f"WITH {quote('new')} AS (INSERT INTO {quote(new.db_table)} ({', '.join(columns)})"  # noqa: S608
            f" VALUES ({', '.join(['%s'] * len(columns))}) RETURNING {quote(new.pk.column)})"
            f" UPDATE {quote(existing.db_table)} SET {', '.join(assignments)} FROM {quote('new')}"
            f" WHERE {quote(existing.db_table)}.{quote(existing.pk.column)} = %s RETURNING {new_pk}"
        )

    def _compile_if_unchanged_asynchronous(self, connection) -> str:
        return f"{self._compile_if_unchanged(connection)}, {_ASYNCHRONOUS_COMMIT}"

    def _compile_if_unchanged(self, connection) -> str:
        quote = connection.ops.quote_name
        new, existing = self.insert_model._meta, self.update_model._meta
        table = quote(existing.db_table)
        assignments = [f"{quote(field.column)} = %s" for field in self.fields]
        # In INSERT … SELECT a parameter takes no type from its column: each is cast to it.
        values = [f"CAST(%s AS {field.cast_db_type(connection)})" for field in self.inserted]
        # Identifiers and types from the models' own metadata, quoted; values are all parameters.
        return (
            f"WITH {quote('existing')} AS (UPDATE {table} SET {', '.join(assignments)}"  # noqa: S608
            f" WHERE {table}.{quote(existing.pk.column)} = %s AND {table}.xmin = %s::xid"
            f" RETURNING {table}.{quote(existing.pk.column)})"
            f" INSERT INTO {quote(new.db_table)}"
            f" ({', '.join(quote(field.column) for field in self.inserted)})"
            f" SELECT {', '.join(values)} FROM {quote('existing')}"
            f" RETURNING {quote(new.pk.column)}"
        )

    def run_if_unchanged(
        self, new: Model, existing: Model, *, version: str, using: str = "default"
    ) -> bool:
        """`run`, but only if `existing` is still the `version` it was read at (`RowVersion`).

        PostgreSQL only, and safe outside a transaction: one statement UPDATEs `existing` where
        its primary key and its `xmin` still match, and INSERTs `new` only if that UPDATE found
        the row. False, with nothing written, when anyone updated or deleted the row since it was
        read (an open transaction that is changing it is waited for); the caller then takes a
        locked path. Without `link`: the new row's key must be its own.
        """
        connection = connections[using]
        self._check(new, existing)
        if self.link is not None or self.insert_model._meta.auto_field is not None:
            raise ValueError("run_if_unchanged needs an unlinked row with its own primary key")
        if not row_versions(connection):
            raise NotSupportedError("row versions are PostgreSQL's xmin")
        if self._commits_asynchronously(connection):
            sql = self._compiled_for(
                connection, "if_unchanged_async", self._compile_if_unchanged_asynchronous
            )
        else:
            sql = self._compiled_for(connection, "if_unchanged", self._compile_if_unchanged)
        params = [
            *save_values(existing, self.fields, connection, add=False),
            existing._meta.pk.get_db_prep_value(existing.pk, connection),
            version,
            *save_values(new, self.inserted, connection, add=True),
        ]
        if execute_prepared(connection, sql, params, fetch=True) is None:
            return False
        mark_saved(new, using)
        return True

    def _check(self, new: Model, existing: Model) -> None:
        if type(new) is not self.insert_model or not new._state.adding:
            raise ValueError(f"expected a new {self.insert_model.__name__}")
        if type(existing) is not self.update_model or existing._state.adding:
            raise ValueError(f"expected a saved {self.update_model.__name__}")

    def run(self, new: Model, existing: Model, *, using: str = "default") -> None:
        """INSERT `new` (which gets its primary key) and UPDATE `existing`'s `fields` (and link)."""
        connection = connections[using]
        self._check(new, existing)
        if not connection.in_atomic_block:
            raise TransactionManagementError("InsertAndUpdate.run must run inside a transaction")
        sql = self._compiled_for(connection)
        if sql is None:
            new.save(force_insert=True, using=using)
            changes = {field.attname: field.pre_save(existing, False) for field in self.fields}
            if self.link is not None:
                changes[self.link.attname] = new.pk
            rows = self.update_model._default_manager.using(using).filter(pk=existing.pk)
            updated = rows.update(**changes) > 0
        else:
            params = [
                *save_values(new, self.inserted, connection, add=True),
                *save_values(existing, self.fields, connection, add=False),
                existing._meta.pk.get_db_prep_value(existing.pk, connection),
            ]
            row = execute_prepared(connection, sql, params, fetch=True)
            updated = row is not None
            if updated:
                new.pk = row[0]
        if not updated:
            raise self.update_model.DoesNotExist(f"no {self.update_model.__name__} {existing.pk}")
        mark_saved(new, using)
        if self.link is not None:
            setattr(existing, self.link.name, new)


class Param(Expression):
    """A value a `CompiledQuery` binds on each run; in the SQL, one placeholder.

    Only `CompiledQuery` puts these in a query: the builder it calls receives them in place of
    the values, so the ORM compiles the query's shape and leaves a slot for each value.
    """

    def __init__(self, name: str, output_field: Field):
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler, connection):
        return "%s", [_Slot(self.name)]


class _Slot:
    """Marks where a `Param`'s value goes in a compiled statement's parameter list."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


# Lookups whose right-hand side the ORM passes to the database as it is. Pattern lookups
# (`contains`, `startswith`, …) escape `%` and `_` in a plain value but not in an expression, so
# a `Param` there would let a visitor's `%` match anything; `in` needs a list. Both are refused.
_PARAM_LOOKUPS = frozenset({"exact", "lt", "lte", "gt", "gte"})


@dataclass(frozen=True)
class _CompiledShape:
    sql: str
    params: tuple
    slots: tuple[tuple[int, str], ...]
    model: type[Model]
    attnames: tuple[str, ...]
    model_columns: slice
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple, object], ...]
    for_update: bool


class CompiledQuery:
    """An ORM query built and compiled once per shape and database, then run with new values.

    `build(**arguments)` returns the QuerySet as usual: the rule stays written once, in the ORM.
    `params` names the arguments that are values bound on each run, each with the model field
    that adapts it. On a run, a param whose value is truthy reaches the builder as a `Param`
    (a placeholder); a falsy one (None, "") as itself, so `if value:` in the builder takes the
    same branch it would with the value. Every other argument is a constant of the shape. Each
    distinct shape (the constants, and which params are falsy) is built and compiled by the ORM
    the first time it runs, and afterwards only executed and its rows turned into instances with
    the ORM's own converters and `from_db`, with annotations set as the ORM sets them.

    The builder may branch on a param's truthiness only; a `Param` supports nothing else. It
    may use params only in `exact`/`lt`/`lte`/`gt`/`gte` filters (checked when compiling), and
    no `select_related`. The SQL runs unprepared, so PostgreSQL plans it for each call's values,
    unless `prepare` (`execute_prepared`): then only for a query whose best plan does not depend on
    the values, such as equality on an indexed key, and never where a partial index's predicate
    must be proven from a value or a pattern matched. A prepared shape has its constants written
    into its SQL (`_constants_inlined`), so its generic plan sees them; each constant value is
    then a statement of its own on the server, so constants must take few values, as shapes
    already must.
    """

    def __init__(
        self, build: Callable[..., QuerySet], *, params: dict[str, Field], prepare: bool = False
    ):
        self.build = build
        self.params = dict(params)
        self.prepare = prepare
        self._shapes: dict[tuple, _CompiledShape] = {}

    def run(self, *, using: str = "default", **arguments) -> list[Model]:
        """The instances the built QuerySet would load for these arguments."""
        connection = connections[using]
        shape, params = self._bind(connection, arguments)
        if shape.for_update and not connection.in_atomic_block:
            raise TransactionManagementError("a locking CompiledQuery must run in a transaction")
        if self.prepare:
            rows = execute_prepared(connection, shape.sql, params, fetch=_ALL)
        else:
            with connection.cursor() as cursor:
                cursor.execute(shape.sql, params)
                rows = cursor.fetchall()
        return [self._load(shape, connection, using, row) for row in rows]

    def statement(
        self, *, using: str = "default", **arguments
    ) -> tuple[str, list, Callable[[Sequence], Model]]:
        """The SQL and parameters of `run`, to run inside a larger statement, and the function
        that turns the leading columns of a row of it into the instance `run` would return."""
        connection = connections[using]
        shape, params = self._bind(connection, arguments)
        return shape.sql, params, lambda row: self._load(shape, connection, using, row)

    def _bind(self, connection, arguments: dict) -> tuple[_CompiledShape, list]:
        values, constants = {}, []
        for name, value in sorted(arguments.items()):
            if self._bound(name, value):
                values[name] = value.pk if isinstance(value, Model) else value
                constants.append((name, Param))
            else:
                constants.append((name, value))
        key = (connection.vendor, tuple(constants))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._compile(connection, arguments)
        params = list(shape.params)
        prepared = {
            name: self.params[name].get_db_prep_value(value, connection, prepared=False)
            for name, value in values.items()
        }
        for index, name in shape.slots:
            params[index] = prepared[name]
        return shape, params

    def _bound(self, name: str, value) -> bool:
        """Whether `name` is bound on each run (the builder sees a `Param`) rather than a constant
        of the shape (the builder sees the value: every non-param, and a falsy param)."""
        return name in self.params and bool(value)

    @staticmethod
    def _load(shape: _CompiledShape, connection, using: str, row: Sequence) -> Model:
        row = _converted(row, shape.converters, connection)
        instance = _loaded(shape.model, using, shape.attnames, row[shape.model_columns])
        for name, index in shape.annotations:
            setattr(instance, name, row[index])
        return instance

    def _compile(self, connection, arguments: dict) -> _CompiledShape:
        symbolic = {
            name: Param(name, self.params[name]) if self._bound(name, value) else value
            for name, value in arguments.items()
        }
        query = self.build(**symbolic).query
        if query.select_related:
            raise ValueError("a CompiledQuery cannot select_related")
        in_filters = _params_in_filters(query.where)
        compiler = query.get_compiler(connection=connection)
        if query.select_for_update and connection.get_autocommit():
            # Django refuses to compile a locking query in autocommit; `statement` may compile
            # one to run inside a single statement. Entering and leaving sends nothing.
            with transaction.atomic(using=connection.alias):
                sql, params = compiler.as_sql()
        else:
            sql, params = compiler.as_sql()
        if self.prepare and connection.vendor == "postgresql":
            sql, params = _constants_inlined(connection, sql, params)
        slots = tuple((i, p.name) for i, p in enumerate(params) if isinstance(p, _Slot))
        if len(slots) != in_filters:
            raise ValueError("a CompiledQuery takes params in filters only")
        klass_info = compiler.klass_info
        columns = klass_info["select_fields"]
        selected = [expression for expression, _sql, _alias in compiler.select]
        converters = tuple(
            (index, tuple(converters), expression)
            for index, (converters, expression) in compiler.get_converters(
                selected[: compiler.col_count]
            ).items()
        )
        return _CompiledShape(
            sql=sql,
            params=tuple(params),
            slots=slots,
            model=klass_info["model"],
            # In the model's field order, as the compiler selects them (what `_loaded` and
            # ModelIterable's `from_db` read the values by).
            attnames=tuple(
                expression.target.attname for expression in selected[columns[0] : columns[-1] + 1]
            ),
            model_columns=slice(columns[0], columns[-1] + 1),
            annotations=tuple((compiler.annotation_col_map or {}).items()),
            converters=converters,
            for_update=bool(query.select_for_update),
        )


_PLACEHOLDER = re.compile(r"%%|%s")


def _constants_inlined(connection, sql: str, params: Sequence) -> tuple[str, list]:
    """A prepared shape's SQL with its constants written in as literals: only the slots are
    left as parameters.

    Django sends every value as a parameter, constants of the shape too (`trust = %s` with
    'verified'). The generic plan a prepared statement settles on knows no parameter's value,
    so it could not prove, say, a partial index's `trust = 'verified'` predicate from one. The
    literals are quoted by the driver (`compose_sql`), from values the code wrote, never from a
    request: a request's values are the slots.
    """
    kept = []
    values = iter(params)

    def replace(match: re.Match) -> str:
        if match.group() == "%%":
            return "%%"
        value = next(values)
        if isinstance(value, _Slot):
            kept.append(value)
            return "%s"
        return connection.ops.compose_sql("%s", [value]).replace("%", "%%")

    return _PLACEHOLDER.sub(replace, sql), kept


def _params_in_filters(node) -> int:
    """How many `Param`s a WHERE tree holds; a `Param` in a lookup it is not safe in raises."""
    found = 0
    for child in getattr(node, "children", ()):
        if isinstance(child, Param):
            raise ValueError("a Param must be the right-hand side of a lookup")
        if hasattr(child, "children"):
            found += _params_in_filters(child)
        elif isinstance(getattr(child, "rhs", None), Param):
            if child.lookup_name not in _PARAM_LOOKUPS:
                raise ValueError(f"a Param cannot be used in a {child.lookup_name!r} lookup")
            found += 1
    return found
