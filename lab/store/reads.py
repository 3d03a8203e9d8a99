"""Reads of the events table that the rest of the lab needs beyond the store contract: log pages, the version at
a moment, the events a read model has not applied yet, the projector's feed, and which sandboxes have work.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any, NamedTuple

from django.db import connection

from lab.engine.store import RecordedEvent
from lab.models import (
    ACCOUNT,
    BALANCE,
    DOMAIN_LATE,
    DOMAIN_LIVE,
    LARGEST_DEPOSIT,
    RETRO_GENERATION,
    Checkpoint,
    Sandbox,
    StoredEvent,
)
from lab.store.events import COLUMNS, recorded_row
from lab.store.values import db_uuid, py_time, py_uuid

EVENTS = StoredEvent._meta.db_table
SANDBOXES = Sandbox._meta.db_table
CHECKPOINTS = Checkpoint._meta.db_table
PAGE_MAX = 200
DEPOSITED = "Deposited"


def first_event_of(sandbox: Sandbox, event_type: str, schema_version: int) -> StoredEvent | None:
    """The oldest event of a type stored in a given schema, or None: one indexed row, whatever the log's length."""
    rows = StoredEvent.objects.filter(sandbox_id=sandbox.pk, event_type=event_type, schema_version=schema_version)
    return rows.order_by("position").first()


def event_page(
    sandbox: Sandbox, page: int, per_page: int, event_type: str | None
) -> tuple[list[RecordedEvent], int, int, int]:
    """One page of the log, newest first: (rows, page, pages, total). Out-of-range pages clamp. In SQL of its own:
    every push after a command reads it, and the ORM's count and model rows cost more than SQLite's work."""
    per_page = max(1, min(int(per_page), PAGE_MAX))
    where, params = "sandbox_id = %s", [db_uuid(py_uuid(sandbox.pk))]
    if event_type:
        where, params = where + " AND event_type = %s", [*params, event_type]
    page = max(1, int(page))
    # The rows and the log's size in one round trip (the size as an uncorrelated subquery, computed once): every push
    # after a command reads the first page. A page past the end has no row to carry the size: it is counted
    # alone, and the last page read instead.
    sql = (
        f"SELECT {COLUMNS}, (SELECT COUNT(*) FROM {EVENTS} WHERE {where}) FROM {EVENTS} WHERE {where} "
        "ORDER BY position DESC LIMIT %s OFFSET %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [*params, *params, per_page, (page - 1) * per_page])
        rows = cur.fetchall()
        if rows or page == 1:
            total = int(rows[0][-1]) if rows else 0
            return [recorded_row(r[:-1]) for r in rows], page, max(1, math.ceil(total / per_page)), total
        cur.execute(f"SELECT COUNT(*) FROM {EVENTS} WHERE {where}", params)
        total = int(cur.fetchone()[0])
    last = max(1, math.ceil(total / per_page))
    return event_page(sandbox, min(page, last), per_page, event_type) if total else ([], 1, 1, 0)


def version_at_time(sandbox: Sandbox, when: dt.datetime) -> int:
    """The stream version after the last event recorded at or before `when` (0 before the first)."""
    return event_at_time(sandbox, when)[0]


def event_at_time(sandbox: Sandbox, when: dt.datetime) -> tuple[int, dt.datetime | None]:
    """(version, recorded_at) of the last event recorded at or before `when`; (0, None) before the first.

    Appends to a stream are serialised and stamp recorded_at inside their lock, so recorded_at never decreases
    along the positions: the newest such position is the highest such version."""
    last = (
        StoredEvent.objects.filter(sandbox_id=sandbox.pk, recorded_at__lte=when)
        .order_by("-position")
        .values_list("version", "recorded_at")
        .first()
    )
    return (int(last[0]), last[1]) if last else (0, None)


def newest_versions(sandbox: Sandbox, limit: int) -> list[tuple[dt.datetime, int]]:
    """(recorded_at, version) of the sandbox's newest `limit` events, newest first: the chart's write line.
    Walks the (sandbox, position) index backwards and stops after `limit` rows. In SQL of its own: every page view
    draws the chart, and building this query through the ORM cost ten times running it."""
    sql = f"SELECT recorded_at, version FROM {EVENTS} WHERE sandbox_id = %s ORDER BY position DESC LIMIT %s"
    with connection.cursor() as cur:
        cur.execute(sql, [db_uuid(py_uuid(sandbox.pk)), int(limit)])
        return [(py_time(at), int(version)) for at, version in cur.fetchall()]


def positions_of_type(sandbox: Sandbox, event_type: str) -> list[int]:
    """Positions of the sandbox's events of one type, oldest first."""
    rows = StoredEvent.objects.filter(sandbox_id=sandbox.pk, event_type=event_type).order_by("position")
    return [int(p) for p in rows.values_list("position", flat=True)]


class EventTally(NamedTuple):
    """What a sandbox's log holds, in one aggregate: the missions' checks read it."""

    head: int  # the stream's version (0: no event)
    deposits: int
    v1_deposits: int  # deposits stored in schema 1 (an old event once v2 has shipped)
    last_recorded_at: dt.datetime | None


def event_tally(sandbox_id: Any) -> EventTally:
    """The head, the deposits (all, and those in schema 1) and when the newest event was recorded: one query, in
    SQL of its own, since a push reads it after every command (the missions) and building the ORM's aggregate cost
    ten times running it."""
    sql = (
        "SELECT MAX(version), COALESCE(SUM(CASE WHEN event_type = %s THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN event_type = %s AND schema_version = 1 THEN 1 ELSE 0 END), 0), MAX(recorded_at) "
        f"FROM {EVENTS} WHERE sandbox_id = %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [DEPOSITED, DEPOSITED, db_uuid(py_uuid(sandbox_id))])
        head, deposits, v1_deposits, last = cur.fetchone()
    return EventTally(int(head or 0), int(deposits), int(v1_deposits), py_time(last) if last is not None else None)


def events_after(sandbox_id: Any, position: int, limit: int) -> list[tuple[int, int, str, dt.datetime]]:
    """(position, version, type, recorded_at) of the sandbox's events after `position`, oldest first (the events in
    flight, read by every push)."""
    sql = (
        f"SELECT position, version, event_type, recorded_at FROM {EVENTS} "
        "WHERE sandbox_id = %s AND position > %s ORDER BY position LIMIT %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [db_uuid(py_uuid(sandbox_id)), position, limit])
        return [(int(p), int(v), t, py_time(at)) for p, v, t, at in cur.fetchall()]


def events_for_projection(sandbox_id: uuid.UUID, after: int, limit: int) -> list[tuple[Any, ...]]:
    """The projector's feed: (position, version, type, schema, payload, recorded_at) rows after `after`, as the
    database returns them (raw: the projector converts only what it uses; see lab.store.values)."""
    sql = (
        f"SELECT position, version, event_type, schema_version, payload, recorded_at FROM {EVENTS} "
        "WHERE sandbox_id = %s AND position > %s ORDER BY position LIMIT %s"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [db_uuid(sandbox_id), after, limit])
        return cur.fetchall()


def pending_sandboxes() -> list[uuid.UUID]:
    """Sandboxes that may have work: events past the live checkpoint, a rebuild, a retro model, a crash to end,
    a state-only change to copy (lab.copying). A domain lab's sandbox (Sandbox.domain) is followed by its
    DOMAIN_LIVE and DOMAIN_LATE checkpoints instead of the balance's and the retroactive model's. Each branch names
    its checkpoint by a constant: choosing it per row (a CASE) made the scan twice as slow on SQLite."""
    behind = f"""EXISTS (
                SELECT 1 FROM {EVENTS} e WHERE e.sandbox_id = s.id AND e.position > COALESCE((
                    SELECT c.position FROM {CHECKPOINTS} c
                    WHERE c.sandbox_id = s.id AND c.projection = %s AND c.generation = {{generation}}), 0))"""
    live, late = behind.format(generation="s.live_generation"), behind.format(generation="%s")
    sql = f"""
        SELECT s.id FROM {SANDBOXES} s
        WHERE s.retired_at IS NULL AND (
            s.rebuilding_generation IS NOT NULL
            OR s.projector_crashed_until IS NOT NULL
            OR s.state_pending_since IS NOT NULL
            OR (s.projector_paused = %s AND s.domain = %s AND {live})
            OR (s.retro_model_enabled = %s AND s.domain = %s AND {late})
            OR (s.projector_paused = %s AND s.domain <> %s AND {live})
            OR (s.retro_model_enabled = %s AND s.domain <> %s AND {late})
        )
    """
    params: list[Any] = [False, ACCOUNT, BALANCE, True, ACCOUNT, LARGEST_DEPOSIT, RETRO_GENERATION]
    params += [False, ACCOUNT, DOMAIN_LIVE, True, ACCOUNT, DOMAIN_LATE, RETRO_GENERATION]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return [py_uuid(r[0]) for r in cur.fetchall()]
