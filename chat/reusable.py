"""ORM queries built once and run again with other values in their `__in` lists.

Django builds a query's SQL anew on every call: resolving the filters,
joins and annotations of a query like the unread counts took several times
as long as PostgreSQL took to answer it, and the busiest of these queries run
inside the global ordering lock (read markers, sends), where every
millisecond of Python holds up every write of every process. A
`ReusableQuery` builds its queryset once per database connection, with a
placeholder in each `__in` list, and from then on only splices the values
into the SQL Django made, so what runs is exactly what the ORM would have
run.
"""

import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.sql import InsertQuery, Query

log = logging.getLogger(__name__)

# Placeholders: values no id ever takes, one per `__in` list.
_PLACEHOLDER = -7_301_000_000_000


class ReusableQuery:
    """`build(*lists)` -> a queryset whose `__in` lists are exactly those arguments.

    `build` is called once per database alias with a one-value placeholder
    list in each position; each later call expands those into its own values.
    The lists must not be empty (Django answers an empty `__in` with no query
    at all: callers return early instead).
    """

    def __init__(self, build: Callable[..., QuerySet[Any]], lists: int) -> None:
        self._build = build
        self._lists = lists
        # alias -> (SQL split at its placeholders, the params, where each list goes)
        self._compiled: dict[str, tuple[list[str], list[Any], list[int]]] = {}

    def _compile(self, alias: str) -> tuple[list[str], list[Any], list[int]]:
        marks = [_PLACEHOLDER - i for i in range(self._lists)]
        queryset = self._build(*[[mark] for mark in marks])
        sql, params = queryset.query.get_compiler(using=alias).as_sql()
        parts = sql.split("%s")
        params = list(params)
        if len(parts) != len(params) + 1 or "%%s" in sql:
            raise ValueError("cannot reuse this query's SQL: its placeholders are ambiguous")
        slots = []
        for mark in marks:
            # (a text column's list holds the placeholder as text)
            where = [i for i, value in enumerate(params) if value in (mark, str(mark))]
            if len(where) != 1:
                raise ValueError("each `__in` list must appear once in the query")
            slots.append(where[0])
        return parts, params, slots

    def sql(self, *lists: Sequence[Any], using: str = "default") -> tuple[str, list[Any]]:
        """The SQL and params of `build(*lists)`, without building it."""
        if len(lists) != self._lists or not all(lists):
            raise ValueError(f"give {self._lists} non-empty list(s)")
        compiled = self._compiled.get(using)
        if compiled is None:
            try:
                compiled = self._compile(using)
            except ValueError:
                # Never worse than the ORM: build it every time, as before.
                log.exception("this query cannot be reused; building it on every call")
                compiled = ([], [], [])
            self._compiled[using] = compiled
        parts, template, slots = compiled
        if not parts:
            sql, built = self._build(*lists).query.get_compiler(using=using).as_sql()
            return sql, list(built)
        values: dict[int, Sequence[Any]] = dict(zip(slots, lists, strict=True))
        out = [parts[0]]
        params: list[Any] = []
        for i, value in enumerate(template):
            given = values.get(i)
            if given is None:
                out.append("%s")
                params.append(value)
            else:
                out.append(", ".join(["%s"] * len(given)))
                params.extend(given)
            out.append(parts[i + 1])
        return "".join(out), params

    def rows(self, *lists: Sequence[Any], using: str = "default") -> list[tuple[Any, ...]]:
        """The rows of a `values_list` query (columns as the database gives them)."""
        sql, params = self.sql(*lists, using=using)
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def objects(
        self, model: type[Model], *lists: Sequence[Any], using: str = "default"
    ) -> list[Any]:
        """The instances of a plain queryset of `model` (every column, read as Django reads it)."""
        sql, params = self.sql(*lists, using=using)
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            if not rows:  # the usual answer of the look-ups inside the lock
                return []
            names = tuple(column[0] for column in cursor.description)  # DB-API: name first
        return _instances(model, names, rows, using)


# (model, alias, column names) -> how a row becomes an instance, as a raw queryset reads it
_READERS: dict[tuple[type[Model], str, tuple[str, ...]], Any] = {}


def _instances(
    model: type[Model], names: tuple[str, ...], rows: list[tuple[Any, ...]], using: str
) -> list[Any]:
    """`model` instances of these rows, made as `RawQuerySet` makes them (without re-reading
    the model's columns for every query)."""
    key = (model, using, names)
    reader: Any = _READERS.get(key)
    if reader is None:
        connection = connections[using]
        opts = model._meta
        by_column = {field.column: field for field in opts.concrete_fields}
        init = [(i, by_column[name]) for i, name in enumerate(names) if name in by_column]
        if opts.pk.attname not in {field.attname for _, field in init}:
            raise ValueError("the query must select the primary key")
        extra = [(name, i) for i, name in enumerate(names) if name not in by_column]
        compiler = connection.ops.compiler("SQLCompiler")(Query(model), connection, using)
        cols = [by_column[n].get_col(opts.db_table) if n in by_column else None for n in names]
        converters = compiler.get_converters(cols)  # type: ignore[arg-type]  # as RawQuerySet
        reader = _READERS[key] = (
            [field.attname for _, field in init],
            [i for i, _ in init],
            extra,
            compiler if converters else None,
            converters,
        )
    init_names, init_pos, extra, compiler, converters = reader
    if compiler is not None:
        rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
    out = []
    for values in rows:
        instance = model.from_db(using, init_names, [values[i] for i in init_pos])
        for name, i in extra:
            setattr(instance, name, values[i])
        out.append(instance)
    return out


class ReusableInsert:
    """`bulk_create` of new rows of one model, with the INSERT statement built once.

    Django compiles a bulk insert anew on every call; the message, event and
    mention rows of every send are inserted inside the ordering lock, where
    that cost held up every writer. The statement Django makes for a batch of
    n rows depends only on n (a single row is a VALUES list, several rows are
    PostgreSQL UNNEST arrays), so it is compiled by Django the first time
    each size is seen and the later calls only prepare the values, with the
    fields' own `pre_save` and `get_db_prep_save`, as Django's compiler does.
    What cannot be reused (another database, values that are expressions,
    rows given a primary key, a shape Django builds differently) goes
    through `bulk_create` itself. No signals, like `bulk_create`.
    """

    _MAX_CACHED = 64  # batch sizes remembered per alias; larger batches are rare

    def __init__(self, model: type[Model]) -> None:
        self._model = model
        # (alias, rows) -> (SQL, "rows" | "columns") or None (not reusable)
        self._compiled: dict[tuple[str, int], tuple[str, str] | None] = {}

    def create(self, objs: list[Any], using: str = "default") -> list[Any]:
        if not objs:
            return objs
        connection = connections[using]
        model = self._model
        opts = model._meta
        key = (using, len(objs))
        seen = key in self._compiled
        compiled = self._compiled.get(key)
        if (
            (seen and compiled is None)
            or connection.vendor != "postgresql"
            or len(objs) > self._MAX_CACHED
            or any(obj.pk is not None or type(obj) is not model for obj in objs)
        ):
            return model._default_manager.db_manager(using).bulk_create(objs)
        fields = self._fields()
        for obj in objs:
            obj._prepare_related_fields_for_save(operation_name="bulk_create")
        value_rows = [
            [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
            for obj in objs
        ]
        if any(hasattr(v, "resolve_expression") for row in value_rows for v in row):
            return model._default_manager.db_manager(using).bulk_create(objs)
        if not seen:
            compiled = self._compiled[key] = self._compile(objs, fields, value_rows, using)
        if compiled is None:
            return model._default_manager.db_manager(using).bulk_create(objs)
        sql, form = compiled
        if form == "rows":
            params: list[Any] = [value for row in value_rows for value in row]
        else:
            params = [list(column) for column in zip(*value_rows, strict=True)]
        returning = opts.db_returning_fields
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
        if len(returned) != len(objs):
            raise RuntimeError("the insert returned a row count other than it was given")
        for obj, values in zip(objs, returned, strict=True):
            for field, value in zip(returning, values, strict=True):
                setattr(obj, field.attname, value)
            obj._state.adding = False
            obj._state.db = using
        return objs

    def _fields(self) -> list[Any]:
        opts = self._model._meta
        return [f for f in opts.concrete_fields if not f.generated and f is not opts.auto_field]

    def _compile(
        self, objs: list[Any], fields: list[Any], value_rows: list[list[Any]], using: str
    ) -> tuple[str, str] | None:
        """Django's statement for this many rows, and which way its params are laid out."""
        model = self._model
        connection = connections[using]
        opts = model._meta
        if (
            len(self._compiled) >= self._MAX_CACHED
            or opts.auto_field is None
            or opts.pk is not opts.auto_field
            or not connection.features.can_return_rows_from_bulk_insert
        ):
            return None
        query = InsertQuery(model)
        query.insert_values(fields, objs, raw=False)
        compiler = query.get_compiler(using=using)
        compiler.returning_fields = opts.db_returning_fields
        statements = compiler.as_sql()
        cols = [field.get_col(opts.db_table) for field in opts.db_returning_fields]
        if len(statements) != 1 or compiler.get_converters(cols):
            return None
        sql, params = statements[0]
        as_rows = [value for row in value_rows for value in row]
        as_columns = [list(column) for column in zip(*value_rows, strict=True)]
        if _same(list(params), as_rows):
            return sql, "rows"
        if _same(list(params), as_columns):
            return sql, "columns"
        log.warning("the insert of %s rows of %s cannot be reused", len(objs), opts.label)
        return None


def _same(a: Any, b: Any) -> bool:
    """Equal params, comparing adapters (a JSON value) by what they wrap."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b):
        return False
    if hasattr(a, "obj") and not isinstance(a, str | int | float):
        return bool(a.obj == b.obj)
    return bool(a == b)
