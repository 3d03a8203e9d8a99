"""The read side's rows that every push and page reads, in SQL of their own.

A push after each command reads the read model (its generation twice, its balance, its history), the live
checkpoint and the open dead letters. Through the ORM, building each of those queries cost several times running
it (a push spent more of its time in Django's query compiler than in SQLite); the statements here are the same
ones, written out once. Values come back as the ORM returned them (lab.store.values).
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import connection

from lab.models import BalanceView, Checkpoint, DeadLetter, HistoryLine, LargestDepositView, Sandbox
from lab.store.values import db_uuid, py_money, py_time, py_uuid
from lab.types import HistoryLineView

SANDBOXES = Sandbox._meta.db_table
BALANCES = BalanceView._meta.db_table
HISTORY = HistoryLine._meta.db_table
CHECKPOINTS = Checkpoint._meta.db_table
LETTERS = DeadLetter._meta.db_table
LARGEST = LargestDepositView._meta.db_table


def _rows(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _id(sandbox_id: Any) -> Any:
    return db_uuid(py_uuid(sandbox_id))


def live_generation(sandbox_id: Any) -> int:
    found = _rows(f"SELECT live_generation FROM {SANDBOXES} WHERE id = %s", [_id(sandbox_id)])
    if not found:
        raise Sandbox.DoesNotExist(f"no sandbox {sandbox_id}")
    return int(found[0][0])


def balance(sandbox_id: Any, generation: int) -> tuple[Decimal, int] | None:
    """(amount, version) of the balance model's row of that generation; None before its first event."""
    sql = f"SELECT amount, version FROM {BALANCES} WHERE sandbox_id = %s AND generation = %s ORDER BY id LIMIT 1"
    found = _rows(sql, [_id(sandbox_id), generation])
    return (py_money(found[0][0]), int(found[0][1])) if found else None


def history(sandbox_id: Any, generation: int, limit: int) -> list[HistoryLineView]:
    """The generation's newest `limit` history lines, oldest first."""
    sql = (
        f"SELECT position, version, kind, amount, balance_after, recorded_at FROM {HISTORY} "
        "WHERE sandbox_id = %s AND generation = %s ORDER BY position DESC LIMIT %s"
    )
    lines = [
        HistoryLineView(int(p), int(v), kind, py_money(amount), py_money(after), py_time(at))
        for p, v, kind, amount, after, at in _rows(sql, [_id(sandbox_id), generation, limit])
    ]
    lines.reverse()
    return lines


def applied_versions(sandbox_id: Any, limit: int) -> list[tuple[dt.datetime | None, int]]:
    """(applied_at, version) of the live generation's newest `limit` history lines, newest first: the chart's read
    line. The live generation is picked in the same statement, so a rebuild's swap never mixes generations. A line
    from before applied_at existed has None."""
    sql = (
        f"SELECT applied_at, version FROM {HISTORY} WHERE sandbox_id = %s "
        f"AND generation = (SELECT live_generation FROM {SANDBOXES} WHERE id = %s) ORDER BY position DESC LIMIT %s"
    )
    sandbox = _id(sandbox_id)
    return [
        (py_time(at) if at is not None else None, int(version))
        for at, version in _rows(sql, [sandbox, sandbox, int(limit)])
    ]


def checkpoint(sandbox_id: Any, projection: str, generation: int) -> tuple[int, int] | None:
    """(position, version) of a projection's checkpoint in a generation; None before it has one."""
    sql = (
        f"SELECT position, version FROM {CHECKPOINTS} WHERE sandbox_id = %s AND projection = %s AND generation = %s "
        "ORDER BY id LIMIT 1"
    )
    found = _rows(sql, [_id(sandbox_id), projection, generation])
    return (int(found[0][0]), int(found[0][1])) if found else None


def dead_letters(sandbox_id: Any, limit: int) -> list[tuple[str, int, str, dt.datetime | None]]:
    """(projection, position, error, skipped_at) of the sandbox's open and skipped dead letters (not those retried
    and not failed again), by position and projection."""
    sql = (
        f"SELECT projection, position, error, skipped_at FROM {LETTERS} "
        "WHERE sandbox_id = %s AND NOT (resolved_at IS NOT NULL AND skipped_at IS NULL) "
        "ORDER BY position, projection LIMIT %s"
    )
    return [
        (projection, int(position), error, py_time(skipped) if skipped is not None else None)
        for projection, position, error, skipped in _rows(sql, [_id(sandbox_id), limit])
    ]


def largest_deposit(sandbox_id: Any, generation: int) -> tuple[Decimal | None, int | None, int, int] | None:
    """(amount, position, deposits seen, version) of the retroactive model's row of that generation; None before
    it has one. Amount and position are None until it has seen a deposit."""
    sql = (
        f"SELECT amount, position, deposits_seen, version FROM {LARGEST} WHERE sandbox_id = %s AND generation = %s "
        "ORDER BY id LIMIT 1"
    )
    found = _rows(sql, [_id(sandbox_id), generation])
    if not found:
        return None
    amount, position, seen, version = found[0]
    return (py_money(amount) if amount is not None else None, None if position is None else int(position),
            int(seen), int(version))  # fmt: skip
