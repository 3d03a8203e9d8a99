"""Snapshots, and loading the write model (the nearest valid snapshot, then the events after it).

A snapshot is a cache of the write model at a version, never a source of truth: each carries the fingerprint of
the code that made it (lab.engine.snapshots), and one that no longer matches is skipped, then replaced.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import connection
from django.utils import timezone

from lab import instances
from lab.engine.messages import AccountState, Event
from lab.engine.replay import Loaded, StoredSnapshot, load, usable_snapshot
from lab.engine.snapshots import UnusableSnapshot, fingerprint, state_from_dict, state_to_dict
from lab.engine.upcasting import UnreadableEvent, decode
from lab.models import Sandbox, Snapshot
from lab.store.events import stream_rows
from lab.store.values import db_json, db_time, db_uuid, py_json

SNAPSHOTS = Snapshot._meta.db_table


def _snapshot_at_or_below(
    stream_id: str, version: int | None
) -> tuple[StoredSnapshot | None, AccountState | None, bool]:
    current = fingerprint()
    bound = "" if version is None else " AND version <= %s"
    params: list[Any] = [stream_id] if version is None else [stream_id, version]
    with connection.cursor() as cursor:
        # The newest usable-looking snapshot and the newest of all in one round trip (every command and every push
        # loads the write model): the outer row always exists, the joined one only when a snapshot matches.
        cursor.execute(
            f"SELECT newest.v, hit.version, hit.state, hit.fingerprint "
            f"FROM (SELECT MAX(version) AS v FROM {SNAPSHOTS} WHERE stream_id = %s{bound}) newest "
            f"LEFT JOIN (SELECT version, state, fingerprint FROM {SNAPSHOTS} WHERE stream_id = %s{bound} "
            "AND fingerprint = %s ORDER BY version DESC LIMIT 1) hit ON 1 = 1",
            [*params, *params, current],
        )
        newest, *hit = cursor.fetchone()
        stale = newest is not None and (hit[0] is None or newest > hit[0])
        if hit[0] is None:
            return None, None, stale
        snap = StoredSnapshot(version=hit[0], state=py_json(hit[1]), fingerprint=hit[2])
        try:
            state = state_from_dict(snap.state)
            if state.version == snap.version:
                return snap, state, stale
        except UnusableSnapshot:
            pass
        # A matching fingerprint over a damaged state: look further down with the full rule.
        cursor.execute(
            f"SELECT version, state, fingerprint FROM {SNAPSHOTS} WHERE stream_id = %s{bound} ORDER BY version DESC",
            params,
        )
        candidates = [StoredSnapshot(r[0], py_json(r[1]), r[2]) for r in cursor.fetchall()]
    found, found_state, _ = usable_snapshot(candidates, version if version is not None else 10**12, current)
    return found, found_state, True


def _tail(stream_id: str, after_version: int, up_to_version: int | None) -> Iterator[Event]:
    rows = stream_rows("event_type, schema_version, payload, version", stream_id, after_version, up_to_version)
    for event_type, schema, payload, version in rows:
        try:
            yield decode(event_type, schema, py_json(payload))
        except UnreadableEvent as exc:
            raise UnreadableEvent(f"event v={version} of {stream_id}: {exc}") from exc


def load_state(sandbox: Sandbox, up_to_version: int | None = None) -> Loaded:
    """The write model (or its state at a version): the nearest valid snapshot, then the events after it."""
    snap, snap_state, stale = _snapshot_at_or_below(sandbox.stream_id, up_to_version)
    after = snap.version if snap is not None else 0
    return load(snap, snap_state, _tail(sandbox.stream_id, after, up_to_version), stale)


def save_snapshot(sandbox: Sandbox, state: AccountState, reason: str) -> None:
    """Store (or replace) the snapshot at state.version with the current fingerprint."""
    now = db_time(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SNAPSHOTS} (sandbox_id, stream_id, version, state, fingerprint, taken_at, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state, "
            "fingerprint = excluded.fingerprint, taken_at = excluded.taken_at, reason = excluded.reason",
            [
                db_uuid(sandbox.pk),
                sandbox.stream_id,
                state.version,
                db_json(state_to_dict(state)),
                fingerprint(),
                now,
                reason,
            ],
        )


def snapshots_of(sandbox: Sandbox, limit: int | None = 100) -> list[Snapshot]:
    """The sandbox's snapshots, newest first."""
    # One plain statement, the rows converted as the ORM converts them (lab.instances): a command's push and every
    # page view read this list, and a RawQuerySet's per-call setup was most of the read (376 µs for seven).
    where = "sandbox_id = %s ORDER BY version DESC"
    params: list[Any] = [db_uuid(sandbox.pk)]
    if limit is not None:
        where, params = where + " LIMIT %s", [*params, limit]
    return instances.every(Snapshot, where, params)


def snapshot_at(sandbox: Sandbox, version: int) -> Snapshot:
    return Snapshot.objects.get(stream_id=sandbox.stream_id, version=version)
