"""Domain streams: the events and snapshots of a "Where it shows up" lab (a payment ledger, an order book, a
document log) in the same tables as the account's, through the domain's own codec.

A domain sandbox's stream is `<domain>-<sandbox uuid>` (Sandbox.stream_id). Appending goes through the same
guarded INSERT and append lock as the account (DjangoEventStore.append), so versions, positions and the
per-sandbox commit order hold alike; only the payloads differ: each event is encoded by `Domain.encode` (its type,
its schema version) and read back by `Domain.decode` (upcasters; an unreadable payload is UnreadableEvent, the
poison event the projector dead-letters). Snapshots go to the Snapshot table with the domain's fingerprint; one
that no longer fits the code (another fingerprint, a state that does not decode) is passed over, as the
account's are.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from lab.engine.domains.spec import Domain, Restored
from lab.engine.snapshots import UnusableSnapshot
from lab.engine.store import Metadata, NewEvent, RecordedEvent
from lab.engine.upcasting import UnreadableEvent
from lab.models import Sandbox, Snapshot
from lab.store.events import event_store, stream_rows
from lab.store.values import db_json, db_time, db_uuid, py_json

SNAPSHOTS = Snapshot._meta.db_table
SNAPSHOTS_TRIED = 20  # the newest this many snapshots at or below a version are tried before folding from the start
# Snapshots kept per domain stream; saving one removes the older ones past this. A domain state grows with its log
# (the order ids ever placed, the transfers that can be refunded), so keeping one every few events for good would
# store the log many times over: at 5,000 events and one snapshot per 10, about 500 ever-larger copies.
SNAPSHOTS_KEPT = 10


@dataclass(frozen=True)
class DomainLoad:
    """A domain's write model as loaded: the restored state (snapshot used or not, events replayed after it), and
    whether a newer snapshot had to be passed over because it no longer fits the code."""

    restored: Restored
    stale_snapshot_seen: bool

    @property
    def state(self) -> Any:
        return self.restored.state


def append_domain(
    sandbox: Sandbox, domain: Domain, events: Sequence[Any], expected_version: int, command_id: str
) -> list[RecordedEvent]:
    """Store a domain's events in the sandbox's stream (ConcurrencyError if its head is not `expected_version`)."""
    new = [NewEvent(*domain.encode(event)) for event in events]
    return event_store.append(sandbox.stream_id, new, expected_version, Metadata.for_command(command_id))


def decode_row(domain: Domain, event_type: str, schema_version: int, payload: Any, version: int) -> Any:
    """The domain event a stored row means; UnreadableEvent (naming the version) for a poison row."""
    try:
        return domain.decode(event_type, schema_version, py_json(payload))
    except UnreadableEvent as exc:
        raise UnreadableEvent(f"event v={version}: {exc}") from exc


def domain_tail(sandbox: Sandbox, domain: Domain, after_version: int, up_to_version: int | None) -> Iterator[Any]:
    """The decoded events after `after_version` (up to `up_to_version`), in version order."""
    rows = stream_rows("event_type, schema_version, payload, version", sandbox.stream_id, after_version, up_to_version)
    for event_type, schema, payload, version in rows:
        yield decode_row(domain, event_type, schema, payload, version)


def load_domain(
    sandbox: Sandbox, domain: Domain, up_to_version: int | None = None, *, use_snapshots: bool = True
) -> DomainLoad:
    """The write model at its head (or at `up_to_version`): the newest usable snapshot at or below it, then the
    events after it. `use_snapshots=False` folds from the first event (what a restart without snapshots costs).

    A snapshot is usable when it carries the domain's current fingerprint and its state decodes at its version;
    the state is decoded once, by `Domain.restore` itself (it refuses an unusable one before reading the tail)."""
    current = domain.fingerprint()
    passed_over = False
    for version, data, fingerprint in _snapshots_at_or_below(sandbox, up_to_version) if use_snapshots else ():
        if fingerprint == current and isinstance(data, dict) and data.get("version") == version:
            try:
                tail = domain_tail(sandbox, domain, version, up_to_version)
                return DomainLoad(domain.restore(data, tail), passed_over)
            except UnusableSnapshot:
                pass
        passed_over = True
    return DomainLoad(domain.restore(None, domain_tail(sandbox, domain, 0, up_to_version)), passed_over)


def _snapshots_at_or_below(sandbox: Sandbox, up_to_version: int | None) -> list[tuple[int, Any, str]]:
    """(version, state, fingerprint) of the newest SNAPSHOTS_TRIED snapshots at or below the version, newest first."""
    bound = "" if up_to_version is None else " AND version <= %s"
    params: list[Any] = [sandbox.stream_id] if up_to_version is None else [sandbox.stream_id, up_to_version]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT version, state, fingerprint FROM {SNAPSHOTS} WHERE stream_id = %s{bound} "
            f"ORDER BY version DESC LIMIT {SNAPSHOTS_TRIED}",
            params,
        )
        return [(int(version), py_json(state), fingerprint) for version, state, fingerprint in cursor.fetchall()]


def save_domain_snapshot(sandbox: Sandbox, domain: Domain, state: Any, reason: str) -> None:
    """Store (or replace) the snapshot at state.version, with the domain's current fingerprint, and drop the ones
    older than the newest SNAPSHOTS_KEPT (a snapshot is a cache: time travel before them folds from the start)."""
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
                db_json(domain.state_to_dict(state)),
                domain.fingerprint(),
                db_time(timezone.now()),
                reason,
            ],
        )
        cursor.execute(
            f"DELETE FROM {SNAPSHOTS} WHERE stream_id = %s AND version < COALESCE(("
            f"SELECT version FROM {SNAPSHOTS} WHERE stream_id = %s ORDER BY version DESC LIMIT 1 OFFSET %s), 0)",
            [sandbox.stream_id, sandbox.stream_id, SNAPSHOTS_KEPT - 1],
        )
