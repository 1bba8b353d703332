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
        return list(model._default_manager.db_manager(using).raw(sql, params))

    def instances(
        self, model: type[Model], rows: Sequence[tuple[Any, ...]], using: str = "default"
    ) -> list[Any]:
        """`model` instances from rows this query (a plain queryset of `model`) gave elsewhere.

        Read as Django reads them: every concrete column, in the order Django
        selects them, through the same conversions (as its compiler does).
        """
        db = connections[using]
        fields = model._meta.concrete_fields
        names = [f.attname for f in fields]
        converters = []
        for i, f in enumerate(fields):
            col = f.get_col(model._meta.db_table)
            found = [*db.ops.get_db_converters(col), *col.get_db_converters(db)]
            if found:
                converters.append((i, col, found))
        made = []
        for row in rows:
            if len(row) != len(names):
                raise ValueError(f"a row of {len(row)} columns for {len(names)} fields")
            values = list(row)
            for i, col, found in converters:
                for convert in found:
                    values[i] = convert(values[i], col, db)
            made.append(model.from_db(using, names, values))
        return made
