"""The event store on Django's database: the engine.store contract, plus snapshots and write-model loading.

Raw SQL through django.db.connection on purpose: the append is the hot path (one command per transaction, each
commit an fsync at synchronous=FULL), so it is one guarded INSERT per event and nothing else.

Ordering: on SQLite every atomic block starts with BEGIN IMMEDIATE (settings), so the write lock is held before
the expected version is read, and positions are handed out in commit order. On PostgreSQL the append takes
`LOCK TABLE ... IN EXCLUSIVE MODE` first (reads still flow), for the same guarantee: a reader following
positions can never see a higher position commit before a lower one.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from concepts.engine.messages import AccountState, Event
from concepts.engine.replay import Loaded, StoredSnapshot, load, usable_snapshot
from concepts.engine.snapshots import UnusableSnapshot, fingerprint, state_from_dict, state_to_dict
from concepts.engine.store import ConcurrencyError, Metadata, NewEvent, RecordedEvent
from concepts.engine.upcasting import UnreadableEvent, decode, encode, upcast
from concepts.models import CommandRecord, LoadReport, Sandbox, Snapshot, StoredEvent

__all__ = [
    "ConcurrencyError",
    "DjangoEventStore",
    "Metadata",
    "UnreadableEvent",
    "append",
    "domain_event",
    "load_state",
    "read_all_after",
    "read_stream",
]

log = logging.getLogger("concepts.persistence")

EVENTS = StoredEvent._meta.db_table
SNAPSHOTS = Snapshot._meta.db_table
COMMANDS = CommandRecord._meta.db_table
LOAD_REPORTS = LoadReport._meta.db_table

_COLUMNS = (
    "position, stream_id, version, event_type, schema_version, payload, event_id, command_id, "
    "correlation_id, causation_id, recorded_at"
)

# One statement does the optimistic check and the insert: it inserts nothing unless the stream's head is the
# expected version. UNIQUE(stream_id, version) stays as the backstop if anything ever bypasses the lock.
_INSERT = (
    f"INSERT INTO {EVENTS} (sandbox_id, stream_id, version, event_type, schema_version, payload, event_id, "
    "command_id, correlation_id, causation_id, recorded_at) "
    "SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s "
    f"WHERE COALESCE((SELECT MAX(version) FROM {EVENTS} WHERE stream_id = %s), 0) = %s "
    "RETURNING position"
)
_INSERT_QMARK = _INSERT.replace("%s", "?")
_HEAD_QMARK = f"SELECT COALESCE(MAX(version), 0) FROM {EVENTS} WHERE stream_id = ?"


class DuplicateEventId(ValueError):
    """An event id that is already stored: the same event sent twice, which the store refuses."""


# --- value adaptation (SQLite stores UUIDs as 32 hex chars and JSON as text; PostgreSQL natively) ----------


def _db_uuid(value: uuid.UUID) -> Any:
    return value if connection.features.has_native_uuid_field else value.hex


def _py_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _py_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _py_time(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt.UTC)
    return value


def _row(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        stream_id=row[1],
        version=row[2],
        event_type=row[3],
        schema_version=row[4],
        payload=_py_json(row[5]),
        event_id=_py_uuid(row[6]),
        command_id=row[7],
        correlation_id=_py_uuid(row[8]),
        causation_id=_py_uuid(row[9]),
        recorded_at=_py_time(row[10]),
    )


def sandbox_id_of(stream_id: str) -> uuid.UUID:
    """Streams are named account-<sandbox uuid>; the sandbox column lets a purge and the projector find them."""
    _, _, rest = stream_id.partition("-")
    try:
        return uuid.UUID(rest)
    except ValueError:
        raise ValueError(f"stream id {stream_id!r} is not account-<sandbox uuid>") from None


def lock_for_append() -> None:
    """Serialise appenders on PostgreSQL (no-op on SQLite, where BEGIN IMMEDIATE already did). Inside atomic()."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE")


# --- the store --------------------------------------------------------------------------------------


class DjangoEventStore:
    """engine.store.EventStore on the `default` database."""

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, metadata: Metadata
    ) -> list[RecordedEvent]:
        if expected_version < 0:
            raise ValueError("expected_version must be 0 or more")
        sandbox_id = sandbox_id_of(stream_id)
        db = connections[DEFAULT_DB_ALIAS]
        try:
            if db.vendor == "sqlite" and not db.in_atomic_block and db.get_autocommit():
                return self._append_sqlite(db, sandbox_id, stream_id, events, expected_version, metadata)
            # At the top level this is exactly BEGIN IMMEDIATE; INSERT; COMMIT. Nested in a caller's transaction
            # it is a savepoint, so a refused append leaves the caller's transaction usable and nothing half-done.
            with transaction.atomic():
                return self._append_locked(sandbox_id, stream_id, events, expected_version, metadata)
        except IntegrityError as exc:
            actual = self.stream_version(stream_id)
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual) from exc
            raise DuplicateEventId(f"an event id of this append is already stored: {exc}") from exc

    def _append_sqlite(
        self,
        db: Any,
        sandbox_id: uuid.UUID,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        metadata: Metadata,
    ) -> list[RecordedEvent]:
        """The hot path: a standalone append on SQLite, straight on the DB-API connection.

        Same statements as the general path (BEGIN IMMEDIATE; guarded INSERT per event; COMMIT), minus Django's
        per-statement wrappers, which cost about as much as the INSERT itself. Only used outside atomic(), so
        Django's transaction bookkeeping never sees a transaction it did not start.
        """
        db.ensure_connection()
        raw = db.connection
        at = timezone.now()
        db_at = db.ops.adapt_datetimefield_value(at)
        head = [sandbox_id.hex, stream_id]
        tail = [metadata.command_id, metadata.correlation_id.hex, metadata.causation_id.hex, db_at, stream_id]
        rows = [
            (
                *head,
                expected_version + i + 1,
                e.event_type,
                e.schema_version,
                json.dumps(e.payload),
                e.event_id.hex,
                *tail,
                expected_version + i,
            )
            for i, e in enumerate(events)
        ]
        with db.wrap_database_errors:
            raw.execute("BEGIN IMMEDIATE")
            try:
                positions = []
                for params in rows:
                    found = raw.execute(_INSERT_QMARK, params).fetchone()
                    if found is None:
                        actual = raw.execute(_HEAD_QMARK, (stream_id,)).fetchone()[0]
                        raise ConcurrencyError(stream_id, expected_version, actual)
                    positions.append(found[0])
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        return [
            RecordedEvent(
                position=position,
                stream_id=stream_id,
                version=expected_version + i + 1,
                event_type=e.event_type,
                schema_version=e.schema_version,
                payload=dict(e.payload),
                event_id=e.event_id,
                command_id=metadata.command_id,
                correlation_id=metadata.correlation_id,
                causation_id=metadata.causation_id,
                recorded_at=at,
            )
            for i, (e, position) in enumerate(zip(events, positions, strict=True))
        ]

    def _append_locked(
        self,
        sandbox_id: uuid.UUID,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        metadata: Metadata,
    ) -> list[RecordedEvent]:
        lock_for_append()
        ops = connection.ops
        at = timezone.now()
        db_at = ops.adapt_datetimefield_value(at)
        db_sandbox = _db_uuid(sandbox_id)
        correlation, causation = _db_uuid(metadata.correlation_id), _db_uuid(metadata.causation_id)
        recorded: list[RecordedEvent] = []
        with connection.cursor() as cursor:
            for i, event in enumerate(events):
                expected = expected_version + i
                cursor.execute(
                    _INSERT,
                    (
                        db_sandbox,
                        stream_id,
                        expected + 1,
                        event.event_type,
                        event.schema_version,
                        ops.adapt_json_value(event.payload, None),
                        _db_uuid(event.event_id),
                        metadata.command_id,
                        correlation,
                        causation,
                        db_at,
                        stream_id,
                        expected,
                    ),
                )
                found = cursor.fetchone()
                if found is None:
                    cursor.execute(f"SELECT COALESCE(MAX(version), 0) FROM {EVENTS} WHERE stream_id = %s", [stream_id])
                    raise ConcurrencyError(stream_id, expected_version, cursor.fetchone()[0])
                recorded.append(
                    RecordedEvent(
                        position=found[0],
                        stream_id=stream_id,
                        version=expected + 1,
                        event_type=event.event_type,
                        schema_version=event.schema_version,
                        payload=dict(event.payload),
                        event_id=event.event_id,
                        command_id=metadata.command_id,
                        correlation_id=metadata.correlation_id,
                        causation_id=metadata.causation_id,
                        recorded_at=at,
                    )
                )
        return recorded

    def stream_version(self, stream_id: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COALESCE(MAX(version), 0) FROM {EVENTS} WHERE stream_id = %s", [stream_id])
            return int(cursor.fetchone()[0])

    def read_stream(
        self, stream_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM {EVENTS} WHERE stream_id = %s AND version > %s"
        params: list[Any] = [stream_id, after_version]
        if up_to_version is not None:
            sql += " AND version <= %s"
            params.append(up_to_version)
        with connection.cursor() as cursor:
            cursor.execute(sql + " ORDER BY version", params)
            return [_row(r) for r in cursor.fetchall()]

    def read_all_after(
        self, position: int, limit: int = 1000, sandbox_id: uuid.UUID | None = None
    ) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM {EVENTS} WHERE position > %s"
        params: list[Any] = [position]
        if sandbox_id is not None:
            sql += " AND sandbox_id = %s"
            params.append(_db_uuid(sandbox_id))
        with connection.cursor() as cursor:
            cursor.execute(sql + " ORDER BY position LIMIT %s", [*params, max(0, limit)])
            return [_row(r) for r in cursor.fetchall()]

    def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        if not positions:
            return []
        marks = ", ".join(["%s"] * len(positions))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {_COLUMNS} FROM {EVENTS} WHERE position IN ({marks}) ORDER BY position", positions)
            return [_row(r) for r in cursor.fetchall()]


store = DjangoEventStore()


# --- sandbox-level helpers ---------------------------------------------------------------------------


def append(
    sandbox: Sandbox,
    events: Sequence[Event],
    expected_version: int,
    command_id: str,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    deposit_schema: int | None = None,
) -> list[RecordedEvent]:
    """Store domain events in the sandbox's stream, deposits in its chosen schema. Raises ConcurrencyError."""
    schema = deposit_schema if deposit_schema is not None else sandbox.deposit_schema_version
    meta = Metadata.for_command(command_id)
    if correlation_id is not None or causation_id is not None:
        meta = Metadata(
            command_id=command_id,
            correlation_id=correlation_id or meta.correlation_id,
            causation_id=causation_id or meta.causation_id,
        )
    new = [NewEvent(*encode(event, schema)) for event in events]
    return store.append(sandbox.stream_id, new, expected_version, meta)


def read_stream(sandbox: Sandbox, after_version: int = 0, up_to_version: int | None = None) -> list[RecordedEvent]:
    return store.read_stream(sandbox.stream_id, after_version, up_to_version)


def read_all_after(position: int, limit: int = 1000, sandbox_id: uuid.UUID | None = None) -> list[RecordedEvent]:
    """Events with a global position above `position`, in position order: what the projector follows."""
    return store.read_all_after(position, limit, sandbox_id)


def head_version(sandbox: Sandbox) -> int:
    return store.stream_version(sandbox.stream_id)


def domain_event(stored: Any, target_schema: int | None = None) -> Event:
    """The domain event a stored row (StoredEvent or RecordedEvent) means. Raises UnreadableEvent for poison.

    Every schema of a type decodes to the same domain event, so `target_schema` only checks that the row can be
    upcast that far (the log inspector's view); it never changes the result.
    """
    payload = _py_json(stored.payload)
    if target_schema is not None:
        upcast(stored.event_type, stored.schema_version, payload, target_schema)
    return decode(stored.event_type, stored.schema_version, payload)


# --- write-model loading ------------------------------------------------------------------------------


def _snapshot_at_or_below(
    stream_id: str, version: int | None
) -> tuple[StoredSnapshot | None, AccountState | None, bool]:
    current = fingerprint()
    bound = "" if version is None else " AND version <= %s"
    params: list[Any] = [stream_id] if version is None else [stream_id, version]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT version, state, fingerprint FROM {SNAPSHOTS} WHERE stream_id = %s{bound} AND fingerprint = %s "
            "ORDER BY version DESC LIMIT 1",
            [*params, current],
        )
        hit = cursor.fetchone()
        cursor.execute(f"SELECT MAX(version) FROM {SNAPSHOTS} WHERE stream_id = %s{bound}", params)
        newest = cursor.fetchone()[0]
        stale = newest is not None and (hit is None or newest > hit[0])
        if hit is None:
            return None, None, stale
        snap = StoredSnapshot(version=hit[0], state=_py_json(hit[1]), fingerprint=hit[2])
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
        candidates = [StoredSnapshot(r[0], _py_json(r[1]), r[2]) for r in cursor.fetchall()]
    found, found_state, _ = usable_snapshot(candidates, version if version is not None else 10**12, current)
    return found, found_state, True


def _tail(stream_id: str, after_version: int, up_to_version: int | None) -> Iterator[Event]:
    sql = f"SELECT event_type, schema_version, payload, version FROM {EVENTS} WHERE stream_id = %s AND version > %s"
    params: list[Any] = [stream_id, after_version]
    if up_to_version is not None:
        sql += " AND version <= %s"
        params.append(up_to_version)
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY version", params)
        rows = cursor.fetchall()
    for event_type, schema, payload, version in rows:
        try:
            yield decode(event_type, schema, _py_json(payload))
        except UnreadableEvent as exc:
            raise UnreadableEvent(f"event v={version} of {stream_id}: {exc}") from exc


def load_state(sandbox: Sandbox, up_to_version: int | None = None) -> Loaded:
    """The write model (or its state at a version): the nearest valid snapshot, then the events after it."""
    snap, snap_state, stale = _snapshot_at_or_below(sandbox.stream_id, up_to_version)
    after = snap.version if snap is not None else 0
    return load(snap, snap_state, _tail(sandbox.stream_id, after, up_to_version), stale)


def save_snapshot(sandbox: Sandbox, state: AccountState, reason: str) -> None:
    """Store (or replace) the snapshot at state.version with the current fingerprint."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SNAPSHOTS} (sandbox_id, stream_id, version, state, fingerprint, taken_at, reason) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state, "
            "fingerprint = excluded.fingerprint, taken_at = excluded.taken_at, reason = excluded.reason",
            [
                _db_uuid(sandbox.pk),
                sandbox.stream_id,
                state.version,
                connection.ops.adapt_json_value(state_to_dict(state), None),
                fingerprint(),
                now,
                reason,
            ],
        )


def record_load(sandbox: Sandbox, loaded: Loaded) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LOAD_REPORTS} (sandbox_id, snapshot_version, events_replayed, events_without_snapshot, "
            "loaded_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sandbox_id) DO UPDATE SET "
            "snapshot_version = excluded.snapshot_version, events_replayed = excluded.events_replayed, "
            "events_without_snapshot = excluded.events_without_snapshot, loaded_at = excluded.loaded_at",
            [_db_uuid(sandbox.pk), loaded.snapshot_version, loaded.events_replayed, loaded.state.version, now],
        )


# --- command records (idempotency) ---------------------------------------------------------------------


def command_outcome(sandbox: Sandbox, command_id: str) -> dict[str, Any] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT outcome FROM {COMMANDS} WHERE sandbox_id = %s AND command_id = %s",
            [_db_uuid(sandbox.pk), command_id],
        )
        row = cursor.fetchone()
    return _py_json(row[0]) if row else None


def record_command(
    sandbox: Sandbox, command_id: str, command_type: str, accepted: bool, outcome: dict[str, Any]
) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {COMMANDS} (sandbox_id, command_id, command_type, accepted, outcome, recorded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                _db_uuid(sandbox.pk),
                command_id,
                command_type,
                accepted,
                connection.ops.adapt_json_value(outcome, None),
                now,
            ],
        )
