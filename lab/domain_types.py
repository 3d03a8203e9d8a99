"""What the domain labs' service layer (lab.domain_labs) returns and their panel renders: frozen dataclasses.

The account lab has lab.types; the three domains of "Where it shows up" (a payment ledger, an order book, a
document log: lab.engine.domains) share these instead. Read-model and write-model states are the engine's own
frozen dataclasses (e.g. `ledger_views.Balances`, `orderbook_views.OrderBook`, `document.DocumentState`), so a
template reads `view.read_models["balances"].amounts` exactly as the engine folds it. Imports only the standard
library and the engine, like lab.types.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DomainEventRow:
    """One event of a domain stream, as the event log shows it."""

    seq: int  # the stream version it created (1, 2, 3 ...)
    event_type: str  # the engine's class name: "Transferred", "TradeExecuted", "Inserted" ...
    summary: str  # one line for people: "t1: alice -10.00, bob +10.00"
    recorded_at: dt.datetime
    position: int  # the global position in the store
    in_flight: bool = False  # appended but not yet applied by the read models (the projection's lag)


@dataclass(frozen=True)
class DomainSnapshotRow:
    version: int
    taken_at: dt.datetime
    reason: str  # "auto" | "manual" | "replaced"
    usable: bool  # its fingerprint matches the code running now (a stale one is skipped, then replaced)


@dataclass(frozen=True)
class DomainOutcome:
    """What a command or a control did. `ok` False never means an exception: `message` says why, `rule` is the
    stable key (an engine RULE_* key, or "input", "concurrency", "limit", "unreadable", "id_reused") and
    `field` names the form field at fault when the input itself was bad."""

    ok: bool
    message: str
    events: tuple[DomainEventRow, ...] = ()  # what this command appended (empty when refused)
    version: int = 0  # the stream version after it (the head when refused)
    rule: str | None = None
    field: str | None = None
    replayed: bool = False  # the same command id again: the first outcome, nothing appended


@dataclass(frozen=True)
class DomainLabView:
    """Everything a domain lab shows: the write model, its log, the lagging read models, snapshots."""

    domain: str  # "ledger" | "orderbook" | "document"
    title: str
    sandbox_id: uuid.UUID | None  # None: no command sent yet (nothing is created by looking)
    write_version: int
    read_version: int  # the version the live read models have applied (they move together)
    lag_ms: int
    events: tuple[DomainEventRow, ...]  # newest first, at most lab.domain_labs.EVENT_ROWS
    event_count: int
    state: Any  # the write model's state (the engine's, e.g. ledger.LedgerState)
    read_models: Mapping[str, Any]  # name -> the engine read-model state, as the projector stored it
    # Read models added after the fact (the ledger's auditor): name -> whether it is on. An "on" one is in
    # read_models too, with its own version as it catches up over the whole log.
    late_models: Mapping[str, bool]
    snapshots: tuple[DomainSnapshotRow, ...]  # newest first
    snapshot_version: int | None  # the snapshot the write model was loaded from (None: folded from the start)
    events_replayed: int  # events folded after that snapshot: "snapshot v10 + 3 operations"
    paused: bool
    snapshot_interval: int
    stalled: str | None = None  # an event the read models could not apply (a dead letter) stops them: why
    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kind -> its form field names

    @property
    def behind(self) -> int:
        return max(0, self.write_version - self.read_version)

    @property
    def projector_state(self) -> str:
        """ "stalled" | "paused" | "catching up" | "caught up" """
        if self.stalled:
            return "stalled"
        if self.paused:
            return "paused"
        return "catching up" if self.behind else "caught up"


@dataclass(frozen=True)
class RestartReport:
    """The order book's "restart the exchange": the in-memory book dropped and rebuilt from the log."""

    duration_ms: float
    used_snapshot: bool
    snapshot_version: int | None
    events_replayed: int
    book_equal: bool  # the rebuilt book is the one the exchange held before the restart
    version: int  # the stream version the book was rebuilt to
    error: str | None = None  # set when the log cannot be read (a poison event): nothing was rebuilt


@dataclass(frozen=True)
class DomainTimeTravel:
    """The domain as it was at a version (or a moment): write state and read models folded up to it."""

    version: int
    at: dt.datetime | None  # when that version's event was recorded (None at version 0)
    state: Any
    read_models: Mapping[str, Any]
    head_version: int
    snapshot_version: int | None  # the snapshot the state was restored from, if any
    events_replayed: int
    error: str | None = None  # set when an event up to `version` cannot be read: state None, no read models
