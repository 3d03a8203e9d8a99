"""Model instances read with one plain statement, converted exactly as the ORM converts them.

`Sandbox.objects.raw()` builds a RawQuerySet per call: it resolves the model's columns against the cursor's
description, builds a compiler and looks up each field's converters, every time. For the one-row reads on every
lab request (the session's sandbox) that was about 200 µs on SQLite, several times the query. Here that plan is
worked out once per model and database vendor: the same columns, the same converters (the backend's and each
field's `from_db_value`), the instance built by `Model.from_db` as the ORM builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model

M = TypeVar("M", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class _Plan:
    columns: str  # the SELECT list: every concrete column, in the order from_db expects
    names: list[str]  # their attribute names
    converters: list[tuple[int, Any, list[Converter]]]  # (index, column expression, converters) where any apply


_plans: dict[tuple[type[Model], str], _Plan] = {}


def _plan(model: type[Model], db: Any) -> _Plan:
    key = (model, db.vendor)
    found = _plans.get(key)
    if found is None:
        fields = model._meta.concrete_fields
        converters = []
        for index, field in enumerate(fields):
            column = field.get_col(model._meta.db_table)
            found_converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
            if found_converters:
                converters.append((index, column, found_converters))
        columns = ", ".join(db.ops.quote_name(field.column) for field in fields)
        found = _plans[key] = _Plan(columns, [field.attname for field in fields], converters)
    return found


def _db() -> Any:
    # The connection itself, looked up once per read: every attribute read through django.db.connection goes
    # through asgiref's Local, and a read touches it a dozen times.
    return connections[DEFAULT_DB_ALIAS]


def columns(model: type[Model]) -> str:
    """The SELECT list `instance` expects: every concrete column of the model, in field order."""
    return _plan(model, _db()).columns


def instance(model: type[M], row: Sequence[Any]) -> M:
    """The instance a row of `SELECT columns(model) ...` holds, its values converted as the ORM's would be."""
    db = _db()
    return _build(model, _plan(model, db), row, db)


def _build(model: type[M], plan: _Plan, row: Sequence[Any], db: Any) -> M:
    values = list(row)
    for index, column, converters in plan.converters:
        for convert in converters:
            values[index] = convert(values[index], column, db)
    return model.from_db(db.alias, plan.names, values)


def first(model: type[M], where: str, params: Sequence[Any]) -> M | None:
    """The first instance of `SELECT columns FROM <model's table> WHERE <where>` (parameters as %s), or None."""
    found = _select(model, where, params, many=False)
    return found[0] if found else None


def every(model: type[M], where: str, params: Sequence[Any]) -> list[M]:
    """Every instance of `SELECT columns FROM <model's table> WHERE <where>` (which may go on with ORDER BY and
    LIMIT; parameters as %s), in the order the statement returns them."""
    return _select(model, where, params, many=True)


def _select(model: type[M], where: str, params: Sequence[Any], *, many: bool) -> list[M]:
    db = _db()
    plan = _plan(model, db)
    sql = f"SELECT {plan.columns} FROM {model._meta.db_table} WHERE {where}"  # noqa: S608 (table and columns only)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if many else cursor.fetchmany(1)
    return [_build(model, plan, row, db) for row in rows]
