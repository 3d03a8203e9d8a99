"""The event store on Django's database: the only code that touches the events, snapshots, command-record and
load-report tables. Everything else in the lab reads and writes events through the names exported here.

  events.py     the engine.store contract: append (one guarded INSERT per event) and reads; the head version
  snapshots.py  snapshots, and loading the write model from the nearest valid one
  records.py    command records (idempotency) and load reports
  reads.py      log pages, the version at a moment, in-flight events, the projector's feed, pending sandboxes
  purge.py      the only deletes: one whole sandbox, or everything (flush)
  values.py     Python <-> database values for the raw SQL
  domains.py    the streams of the domain labs: append and load through a domain's codec, its snapshots
  group_commit.py  SQLite: the writes that arrive while one transaction is written share the next one (one fsync)
  write_gate.py SQLite: this process's busy writers take turns at the write lock, handed over at once

docs/architecture.md explains the ordering guarantees (why, within a sandbox, positions commit in order on both
databases) and the lock order.
"""

from lab.store import group_commit
from lab.store.domains import DomainLoad, append_domain, decode_row, domain_tail, load_domain, save_domain_snapshot
from lab.store.events import (
    DjangoEventStore,
    DuplicateEventId,
    append,
    domain_event,
    event_store,
    head_version,
    lock_for_append,
    read_all_after,
    read_stream,
    sandbox_id_of,
)
from lab.store.purge import delete_all_events, purge_sandbox
from lab.store.reads import (
    EventTally,
    event_at_time,
    event_page,
    event_tally,
    events_after,
    events_for_projection,
    first_event_of,
    newest_versions,
    pending_sandboxes,
    positions_of_type,
    version_at_time,
)
from lab.store.records import command_outcome, record_command, record_load
from lab.store.snapshots import load_state, save_snapshot, snapshot_at, snapshots_of
from lab.store.write_gate import write_turn

__all__ = [
    "DjangoEventStore",
    "DomainLoad",
    "DuplicateEventId",
    "EventTally",
    "append",
    "append_domain",
    "command_outcome",
    "decode_row",
    "delete_all_events",
    "domain_event",
    "domain_tail",
    "event_at_time",
    "event_page",
    "event_store",
    "event_tally",
    "events_after",
    "events_for_projection",
    "first_event_of",
    "group_commit",
    "head_version",
    "load_domain",
    "load_state",
    "lock_for_append",
    "newest_versions",
    "pending_sandboxes",
    "positions_of_type",
    "purge_sandbox",
    "read_all_after",
    "read_stream",
    "record_command",
    "record_load",
    "sandbox_id_of",
    "save_domain_snapshot",
    "save_snapshot",
    "snapshot_at",
    "snapshots_of",
    "version_at_time",
    "write_turn",
]
