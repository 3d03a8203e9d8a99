"""The events table: the engine.store contract (append, read) on Django's database, and the sandbox-level helpers.

Raw SQL on purpose: the append is the hot path (each commit an fsync at synchronous=FULL), so it is one guarded
INSERT per event and nothing else, on SQLite straight on the DB-API connection. On SQLite an append outside a
transaction shares its commit with the writes that arrive meanwhile (lab.store.group_commit).

Ordering: on SQLite every atomic block starts with BEGIN IMMEDIATE (settings), so the write lock is held before
the expected version is read, and positions are handed out in commit order. On PostgreSQL the append first takes
its sandbox's append lock (a transaction-scoped advisory lock, `lock_for_append`), so appends to one sandbox run
one at a time and appends to different sandboxes never wait for each other. The guarantee is per sandbox: a
reader following ONE sandbox's positions never sees a higher one commit before a lower one. Across sandboxes a
lower position may commit after a higher one, so a reader must never tail the whole log by position.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from lab.engine.messages import Event
from lab.engine.store import ConcurrencyError, Metadata, NewEvent, RecordedEvent, recorded_events
from lab.engine.upcasting import decode, encode, upcast
from lab.models import Sandbox, StoredEvent
from lab.store import group_commit
from lab.store.values import db_json, db_time, db_uuid, py_json, py_time, py_uuid

EVENTS = StoredEvent._meta.db_table

COLUMNS = (
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
_HEAD = f"SELECT COALESCE(MAX(version), 0) FROM {EVENTS} WHERE stream_id = %s"
# The SQLite hot path talks to the DB-API connection directly, which takes qmark placeholders.
_INSERT_QMARK = _INSERT.replace("%s", "?")
_HEAD_QMARK = _HEAD.replace("%s", "?")


class DuplicateEventId(ValueError):
    """An event id that is already stored: the same event sent twice, which the store refuses."""


def recorded_row(row: Sequence[Any]) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        stream_id=row[1],
        version=row[2],
        event_type=row[3],
        schema_version=row[4],
        payload=py_json(row[5]),
        event_id=py_uuid(row[6]),
        command_id=row[7],
        correlation_id=py_uuid(row[8]),
        causation_id=py_uuid(row[9]),
        recorded_at=py_time(row[10]),
    )


@dataclass(frozen=True, slots=True)
class Append:
    """One append as each of its routes (in a caller's transaction, alone, in a shared commit) receives it."""

    sandbox_id: uuid.UUID
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int
    metadata: Metadata

    def recorded(self, positions: Sequence[int], at: dt.datetime) -> list[RecordedEvent]:
        return recorded_events(self.stream_id, self.events, positions, self.expected_version, self.metadata, at)


def _insert_params(db: Any, append: Append, at: dt.datetime) -> list[tuple[Any, ...]]:
    """The parameters of _INSERT for each event on connection `db`: its row, then the stream and the version it
    expects as head."""
    meta, stream_id, expected = append.metadata, append.stream_id, append.expected_version
    head = (db_uuid(append.sandbox_id, db), stream_id)
    ids = (db_uuid(meta.correlation_id, db), db_uuid(meta.causation_id, db))
    tail = (meta.command_id, *ids, db_time(at, db), stream_id)
    rows = []
    for i, e in enumerate(append.events):
        row = (e.event_type, e.schema_version, db_json(e.payload, db), db_uuid(e.event_id, db))
        rows.append((*head, expected + i + 1, *row, *tail, expected + i))
    return rows


def _insert_raw(db: Any, rows: list[tuple[Any, ...]], stream_id: str, expected_version: int) -> list[int]:
    """The guarded INSERTs straight on SQLite's DB-API connection, inside a transaction the caller holds.

    Django's per-statement wrappers (placeholder rewriting, the cursor wrapper) cost about as much as the INSERT
    itself, and the append is the hot path. Errors still come out as Django's (wrap_database_errors).
    """
    raw = db.connection
    positions = []
    with db.wrap_database_errors:
        for params in rows:
            found = raw.execute(_INSERT_QMARK, params).fetchone()
            if found is None:
                actual = raw.execute(_HEAD_QMARK, (stream_id,)).fetchone()[0]
                raise ConcurrencyError(stream_id, expected_version, actual)
            positions.append(found[0])
    return positions


def stream_rows(columns: str, stream_id: str, after_version: int, up_to_version: int | None) -> list[tuple[Any, ...]]:
    """`columns` of a stream's events after `after_version` (up to `up_to_version`), in version order."""
    sql = f"SELECT {columns} FROM {EVENTS} WHERE stream_id = %s AND version > %s"
    params: list[Any] = [stream_id, after_version]
    if up_to_version is not None:
        sql += " AND version <= %s"
        params.append(up_to_version)
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY version", params)
        return cursor.fetchall()


def sandbox_id_of(stream_id: str) -> uuid.UUID:
    """Streams are named account-<sandbox uuid>; the sandbox column lets a purge and the projector find them."""
    _, _, rest = stream_id.partition("-")
    try:
        return uuid.UUID(rest)
    except ValueError:
        raise ValueError(f"stream id {stream_id!r} is not account-<sandbox uuid>") from None


# PostgreSQL advisory lock keys share one 64-bit space. The append locks take [-2**63, -2**62): apart from the
# projector's per-sandbox keys ([2**62, 2**63), lab.projections) and the rebuild cap's small positive key.
_APPEND_KEY_BITS = (1 << 62) - 1


def append_lock_key(sandbox_id: uuid.UUID) -> int:
    """The advisory key of a sandbox's append lock. Two sandboxes sharing a key would only wait for each other."""
    return (sandbox_id.int & _APPEND_KEY_BITS) - (1 << 63)


def lock_for_append(sandbox: Sandbox | uuid.UUID) -> None:
    """Serialise the appenders of one sandbox on PostgreSQL until the transaction ends; appenders of other
    sandboxes go on. A no-op on SQLite, where BEGIN IMMEDIATE already serialised every writer.

    Call it inside atomic(), before anything else that locks (the lock order in docs/architecture.md): the
    position, the head version and recorded_at are all taken under it, so they follow commit order per sandbox.
    """
    if connection.vendor != "postgresql":
        return
    if not connection.in_atomic_block:
        # Outside a transaction the lock would end with its own statement and protect nothing.
        raise RuntimeError("lock_for_append() must run inside transaction.atomic()")
    sandbox_id = sandbox.pk if isinstance(sandbox, Sandbox) else sandbox
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [append_lock_key(sandbox_id)])


# --- the store --------------------------------------------------------------------------------------


class DjangoEventStore:
    """engine.store.EventStore on the `default` database."""

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        metadata: Metadata,
        *,
        caller_locked: bool = False,
    ) -> list[RecordedEvent]:
        """engine.store.EventStore.append. `caller_locked`: the caller, inside its own transaction, already took
        this sandbox's append lock (lock_for_append) and rolls that whole transaction back when the append raises
        (a command does both). The append then needs neither the savepoint nor the lock again: on PostgreSQL three
        round trips fewer per command. An error then leaves the caller's transaction to its rollback (on
        PostgreSQL it is unusable after one), so a duplicate event id is raised without reading the head."""
        if expected_version < 0:
            raise ValueError("expected_version must be 0 or more")
        append = Append(sandbox_id_of(stream_id), stream_id, events, expected_version, metadata)
        db = connections[DEFAULT_DB_ALIAS]
        if caller_locked and db.in_atomic_block:
            try:
                return self._append_locked(append, lock=False)
            except IntegrityError as exc:  # the lock rules out a version taken meanwhile: an event id is stored
                raise DuplicateEventId(f"an event id of this append is already stored: {exc}") from exc
        try:
            if db.in_atomic_block or not db.get_autocommit():
                # Nested in a caller's transaction it is a savepoint, so a refused append leaves the caller's
                # transaction usable and nothing half-done.
                with transaction.atomic():
                    return self._append_locked(append)
            return self._append_committed(db, append)
        except IntegrityError as exc:
            actual = self.stream_version(stream_id)
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual) from exc
            raise DuplicateEventId(f"an event id of this append is already stored: {exc}") from exc

    def _append_committed(self, db: Any, append: Append) -> list[RecordedEvent]:
        """An append outside any transaction, durable when it returns. SQLite: it shares the next transaction
        (and its fsync) with the writes that arrive while one is being written, in a savepoint of its own; one
        event is one guarded INSERT, which writes nothing when it fails, so it needs no savepoint. A lone appender
        (nothing else being written) commits by itself, straight on SQLite. PostgreSQL: a transaction of its own.
        """
        if db.vendor == "sqlite" and not group_commit.applies():
            return self._append_sqlite(db, append)
        alone = functools.partial(self._append_sqlite, db, append) if db.vendor == "sqlite" else None
        return group_commit.run(
            functools.partial(self._append_locked, append), savepoint=len(append.events) > 1, alone=alone
        )

    def _append_sqlite(self, db: Any, append: Append) -> list[RecordedEvent]:
        """A standalone append on SQLite in a transaction of its own (a lone appender, group commit bypassed, or
        an in-memory database), straight on the DB-API connection: BEGIN IMMEDIATE; the guarded INSERTs; COMMIT.
        Only used outside atomic(), so Django's transaction bookkeeping never sees a transaction it did not start.
        """
        db.ensure_connection()
        raw = db.connection
        with db.wrap_database_errors:
            raw.execute("BEGIN IMMEDIATE")
            try:
                # Stamped inside the write lock, as on the general path: recorded_at never decreases along a
                # stream's positions (lab.store.reads.event_at_time and the projector's due prefix rely on it).
                at = timezone.now()
                rows = _insert_params(db, append, at)
                positions = _insert_raw(db, rows, append.stream_id, append.expected_version)
                raw.execute("COMMIT")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
        return append.recorded(positions, at)

    def _append_locked(self, append: Append, *, lock: bool = True) -> list[RecordedEvent]:
        if lock:
            lock_for_append(append.sandbox_id)
        at = timezone.now()
        db = connections[DEFAULT_DB_ALIAS]
        rows = _insert_params(db, append, at)
        stream_id, expected_version = append.stream_id, append.expected_version
        if db.vendor == "sqlite":
            positions = _insert_raw(db, rows, stream_id, expected_version)
        else:
            positions = []
            with connection.cursor() as cursor:
                for params in rows:
                    cursor.execute(_INSERT, params)
                    found = cursor.fetchone()
                    if found is None:
                        cursor.execute(_HEAD, [stream_id])
                        raise ConcurrencyError(stream_id, expected_version, cursor.fetchone()[0])
                    positions.append(found[0])
        return append.recorded(positions, at)

    def stream_version(self, stream_id: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute(_HEAD, [stream_id])
            return int(cursor.fetchone()[0])

    def read_stream(
        self, stream_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        return [recorded_row(r) for r in stream_rows(COLUMNS, stream_id, after_version, up_to_version)]

    def read_all_after(
        self, position: int, limit: int = 1000, sandbox_id: uuid.UUID | None = None
    ) -> list[RecordedEvent]:
        """Committed events above `position`, in position order. Tail by position only with `sandbox_id`: within
        one sandbox positions commit in order, but on PostgreSQL a lower position of another sandbox may still
        be in flight, and a global checkpoint would step over it for good."""
        sql = f"SELECT {COLUMNS} FROM {EVENTS} WHERE position > %s"
        params: list[Any] = [position]
        if sandbox_id is not None:
            sql += " AND sandbox_id = %s"
            params.append(db_uuid(sandbox_id))
        with connection.cursor() as cursor:
            cursor.execute(sql + " ORDER BY position LIMIT %s", [*params, max(0, limit)])
            return [recorded_row(r) for r in cursor.fetchall()]

    def read_positions(self, positions: Sequence[int]) -> list[RecordedEvent]:
        if not positions:
            return []
        marks = ", ".join(["%s"] * len(positions))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {COLUMNS} FROM {EVENTS} WHERE position IN ({marks}) ORDER BY position", positions)
            return [recorded_row(r) for r in cursor.fetchall()]


event_store = DjangoEventStore()


# --- sandbox-level helpers ---------------------------------------------------------------------------


def append(
    sandbox: Sandbox,
    events: Sequence[Event],
    expected_version: int,
    command_id: str,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    deposit_schema: int | None = None,
    *,
    caller_locked: bool = False,
) -> list[RecordedEvent]:
    """Store domain events in the sandbox's stream, deposits in its chosen schema. Raises ConcurrencyError.
    `caller_locked`: see DjangoEventStore.append (the caller's transaction holds the sandbox's append lock)."""
    schema = deposit_schema if deposit_schema is not None else sandbox.deposit_schema_version
    meta = Metadata.for_command(command_id)
    if correlation_id is not None or causation_id is not None:
        meta = Metadata(
            command_id=command_id,
            correlation_id=correlation_id or meta.correlation_id,
            causation_id=causation_id or meta.causation_id,
        )
    new = [NewEvent(*encode(event, schema)) for event in events]
    return event_store.append(sandbox.stream_id, new, expected_version, meta, caller_locked=caller_locked)


def read_stream(sandbox: Sandbox, after_version: int = 0, up_to_version: int | None = None) -> list[RecordedEvent]:
    return event_store.read_stream(sandbox.stream_id, after_version, up_to_version)


def read_all_after(position: int, limit: int = 1000, sandbox_id: uuid.UUID | None = None) -> list[RecordedEvent]:
    """Events above `position`, in position order. Tail it only per sandbox (DjangoEventStore.read_all_after)."""
    return event_store.read_all_after(position, limit, sandbox_id)


def head_version(sandbox: Sandbox) -> int:
    return event_store.stream_version(sandbox.stream_id)


def domain_event(stored: Any, target_schema: int | None = None) -> Event:
    """The domain event a stored row (StoredEvent or RecordedEvent) means. Raises UnreadableEvent for poison.

    Every schema of a type decodes to the same domain event, so `target_schema` only checks that the row can be
    upcast that far (the log inspector's view); it never changes the result.
    """
    payload = py_json(stored.payload)
    if target_schema is not None:
        upcast(stored.event_type, stored.schema_version, payload, target_schema)
    return decode(stored.event_type, stored.schema_version, payload)
