"""The lab's write side, as the views call it: commands, the event log, snapshots, time travel, settings.

Every function takes a Sandbox the caller resolved from the session and returns the dataclasses of concepts.lab.
A command is one transaction: idempotency check, load (snapshot + tail), decide, append, snapshot, command record.
Pushes and the projector's wake-up run only after that transaction committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from concepts import live, persistence, projector
from concepts.engine import decider
from concepts.engine.messages import Deposit, Deposited, Rejected, Withdraw, Withdrew
from concepts.engine.replay import Loaded
from concepts.engine.snapshots import fingerprint, is_due, state_from_dict, state_to_dict
from concepts.engine.store import ConcurrencyError, RecordedEvent
from concepts.engine.upcasting import LATEST_SCHEMA, UnreadableEvent, upcast
from concepts.lab import (
    CommandOutcome,
    EventPage,
    EventView,
    LoadReportView,
    SnapshotView,
    TimeTravelView,
    WriteSide,
)
from concepts.models import Sandbox, Snapshot, StoredEvent

log = logging.getLogger("concepts.writeside")

KINDS = {"deposit": Deposit, "withdraw": Withdraw}
RULE_CONCURRENCY = "concurrency"
RULE_LIMIT = "limit"
RULE_UNREADABLE = "unreadable"
SNAPSHOT_INTERVAL_MAX = 1000
LAG_MAX_MS = 10_000
DEPOSIT_SCHEMAS = (1, 2)
COMMAND_ID_MAX = 64  # StoredEvent.command_id / CommandRecord.command_id


# --- commands ------------------------------------------------------------------------------------------


def send_command(
    sandbox: Sandbox,
    kind: str,
    amount: str | Decimal,
    command_id: str | None = None,
    expected_version: int | None = None,
) -> CommandOutcome:
    """Run one command. Never raises for a refused command: the outcome says why (a rule key, a message).

    `command_id` makes it idempotent (the same id returns the first outcome, appends nothing); `expected_version`
    is the version the learner saw, and a different head is a "concurrency" outcome.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown command {kind!r}: use deposit or withdraw.")
    command_id = command_id or uuid.uuid4().hex
    if len(command_id) > COMMAND_ID_MAX or not command_id.isprintable():
        # PostgreSQL would refuse it with a DataError (a 500); the view's form already keeps ids short and printable.
        raise ValueError(f"A command id is at most {COMMAND_ID_MAX} printable characters.")
    parsed = decider.parse_amount(amount) if isinstance(amount, str) else decider.check_amount(amount)
    try:
        with transaction.atomic():
            persistence.lock_for_append()
            return _send_locked(sandbox, kind, parsed, command_id, expected_version)
    except (ConcurrencyError, IntegrityError):
        # After the rollback: a twin request with the same id may have won; then its outcome is ours too.
        first = persistence.command_outcome(sandbox, command_id)
        if first is not None:
            return _replayed(first)
        now = persistence.head_version(sandbox)
        return CommandOutcome(
            accepted=False,
            message=f"The account changed meanwhile (now v={now}): retry.",
            rule=RULE_CONCURRENCY,
            events=[],
            write_version=now,
            last_position=None,
        )


def _send_locked(
    sandbox: Sandbox, kind: str, parsed: Decimal | Rejected, command_id: str, expected_version: int | None
) -> CommandOutcome:
    first = persistence.command_outcome(sandbox, command_id)
    if first is not None:
        return _replayed(first)
    try:
        loaded = persistence.load_state(sandbox)
    except UnreadableEvent as exc:
        head = persistence.head_version(sandbox)
        return _refused(RULE_UNREADABLE, f"Rejected: the write model cannot load ({exc}).", head)
    state = loaded.state
    if expected_version is not None and expected_version != state.version:
        raise ConcurrencyError(sandbox.stream_id, expected_version, state.version)
    limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
    if state.version >= limit:
        return _refused(RULE_LIMIT, f"This sandbox is full ({limit:,} events): reset it to start again.", state.version)

    decision = parsed if isinstance(parsed, Rejected) else decider.decide(state, KINDS[kind](amount=parsed))
    persistence.record_load(sandbox, loaded)
    if isinstance(decision, Rejected):
        outcome = {
            "accepted": False,
            "message": f"Rejected: {decision.message}",
            "rule": decision.rule,
            "write_version": state.version,
            "positions": [],
        }
        persistence.record_command(sandbox, command_id, kind, False, outcome)
        return _outcome(outcome, [])

    recorded = persistence.append(sandbox, decision, state.version, command_id)
    new_state = decider.fold(decision, state)
    if loaded.stale_snapshot_seen:
        # The newest snapshot no longer matches the code: lay a fresh one at the head we just computed.
        persistence.save_snapshot(sandbox, state, "replaced")
    if is_due(state.version, new_state.version, sandbox.snapshot_interval):
        persistence.save_snapshot(sandbox, new_state, "auto")
    outcome = {
        "accepted": True,
        "message": f"{_describe(decision[-1])} → v={new_state.version}",
        "rule": None,
        "write_version": new_state.version,
        "positions": [r.position for r in recorded],
    }
    persistence.record_command(sandbox, command_id, kind, True, outcome)
    sandbox_id, version = sandbox.pk, new_state.version
    # Open pages hold this push a moment for the projection when it is due at once (lag 0, projector running),
    # so one push shows both models at the new version instead of two racing the projector for the CPU.
    projects_at_once = sandbox.lag_ms == 0 and not sandbox.projector_paused and sandbox.projector_crashed_until is None
    # Hints only, each on its own (robust): the command is committed, so a failing wake-up must not make it a 500.
    transaction.on_commit(lambda: projector.notify_appended(sandbox_id), robust=True)
    transaction.on_commit(
        lambda: live.publish(sandbox_id, "command", write_version=version, projects_at_once=projects_at_once),
        robust=True,
    )
    return _outcome(outcome, [_view(r) for r in recorded])


def _describe(event: Deposited | Withdrew) -> str:
    verb = "Deposited" if isinstance(event, Deposited) else "Withdrew"
    return f"{verb} ${event.amount:,.2f}"


def _refused(rule: str, message: str, version: int) -> CommandOutcome:
    return CommandOutcome(
        accepted=False, message=message, rule=rule, events=[], write_version=version, last_position=None
    )


def _outcome(data: dict[str, Any], events: list[EventView], replayed: bool = False) -> CommandOutcome:
    positions = data.get("positions") or []
    return CommandOutcome(
        accepted=bool(data["accepted"]),
        message=str(data["message"]),
        rule=data.get("rule"),
        events=events,
        write_version=int(data["write_version"]),
        last_position=positions[-1] if positions else None,
        replayed=replayed,
    )


def _replayed(data: dict[str, Any]) -> CommandOutcome:
    events = [_view(r) for r in persistence.store.read_positions(data.get("positions") or [])]
    return _outcome(data, events, replayed=True)


# --- the write model ------------------------------------------------------------------------------------


def write_side(sandbox: Sandbox) -> WriteSide:
    """The write model as a command would load it now, and how it was loaded."""
    try:
        loaded = persistence.load_state(sandbox)
    except UnreadableEvent:
        log.warning("sandbox %s holds an unreadable event; showing the state before it", sandbox.pk)
        loaded = _load_readable_prefix(sandbox)
    return WriteSide(balance=loaded.state.balance, version=loaded.state.version, load=_load_view(loaded))


def _load_readable_prefix(sandbox: Sandbox) -> Loaded:
    state, count = decider.initial_state(), 0
    for row in persistence.read_stream(sandbox):
        try:
            state = decider.evolve(state, persistence.domain_event(row))
        except UnreadableEvent:
            break
        count += 1
    return Loaded(state=state, snapshot_version=None, events_replayed=count, stale_snapshot_seen=False)


def _load_view(loaded: Loaded) -> LoadReportView:
    return LoadReportView(
        snapshot_version=loaded.snapshot_version,
        events_replayed=loaded.events_replayed,
        events_without_snapshot=loaded.state.version,
    )


# --- the event log ----------------------------------------------------------------------------------------


def event_view(stored: StoredEvent | RecordedEvent, target_schema: int | None = None) -> EventView:
    """One stored event with its raw payload and the payload upcast to `target_schema` (None = latest)."""
    return _view(stored, target_schema)


def _view(stored: Any, target_schema: int | None = None) -> EventView:
    raw = stored.payload if isinstance(stored.payload, dict) else {"raw": stored.payload}
    try:
        lifted = upcast(stored.event_type, stored.schema_version, raw, target_schema)
    except UnreadableEvent as exc:
        lifted = {"unreadable": str(exc)}
    return EventView(
        position=stored.position,
        version=stored.version,
        event_type=stored.event_type,
        schema_version=stored.schema_version,
        recorded_at=stored.recorded_at,
        raw_payload=raw,
        upcast_payload=lifted,
        event_id=str(stored.event_id),
        command_id=stored.command_id,
        correlation_id=str(stored.correlation_id),
        causation_id=str(stored.causation_id),
    )


def event_page(sandbox: Sandbox, page: int = 1, event_type: str | None = None, per_page: int = 20) -> EventPage:
    """A page of the sandbox's log, newest first, optionally one event type only. Out-of-range pages clamp."""
    per_page = max(1, min(int(per_page), 200))
    rows = StoredEvent.objects.filter(sandbox_id=sandbox.pk)
    if event_type:
        rows = rows.filter(event_type=event_type)
    total = rows.count()
    pages = max(1, math.ceil(total / per_page))
    page = max(1, min(int(page), pages))
    start = (page - 1) * per_page
    chosen = rows.order_by("-position")[start : start + per_page]
    return EventPage(
        events=[_view(r) for r in chosen], page=page, pages=pages, total=total, event_type=event_type or None
    )


def all_events(sandbox: Sandbox) -> list[EventView]:
    return [_view(r) for r in persistence.read_stream(sandbox)]


# --- snapshots ------------------------------------------------------------------------------------------


def take_snapshot(sandbox: Sandbox) -> SnapshotView:
    """Snapshot the write model at its head now (replacing a stale one at the same version)."""
    with transaction.atomic():
        persistence.lock_for_append()
        loaded = persistence.load_state(sandbox)
        if loaded.state.version == 0:
            raise ValueError("Nothing to snapshot yet: the account has no events.")
        persistence.save_snapshot(sandbox, loaded.state, "manual")
        persistence.record_load(sandbox, loaded)
        sandbox_id = sandbox.pk
        transaction.on_commit(lambda: live.publish(sandbox_id, "snapshot"), robust=True)
    snap = Snapshot.objects.get(stream_id=sandbox.stream_id, version=loaded.state.version)
    return _snapshot_view(snap, fingerprint())


def snapshots(sandbox: Sandbox, limit: int | None = 100) -> list[SnapshotView]:
    """The sandbox's snapshots, newest first, each saying whether the current code would still use it."""
    current = fingerprint()
    rows = Snapshot.objects.filter(sandbox_id=sandbox.pk).order_by("-version")
    if limit is not None:
        rows = rows[:limit]
    return [_snapshot_view(s, current) for s in rows]


def _snapshot_view(snap: Snapshot, current: str) -> SnapshotView:
    valid = snap.fingerprint == current
    if valid:
        try:
            valid = state_from_dict(snap.state).version == snap.version
        except Exception:  # a damaged snapshot is simply not valid
            valid = False
    return SnapshotView(version=snap.version, state=snap.state, taken_at=snap.taken_at, reason=snap.reason, valid=valid)


def set_snapshot_interval(sandbox: Sandbox, n: int) -> int:
    """Snapshot automatically every n events (0 = off)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= SNAPSHOT_INTERVAL_MAX:
        raise ValueError(f"The snapshot interval must be a whole number from 0 to {SNAPSHOT_INTERVAL_MAX}.")
    _update_settings(sandbox, snapshot_interval=n)
    return n


# --- time travel ----------------------------------------------------------------------------------------


def state_at(sandbox: Sandbox, version: int) -> TimeTravelView:
    """The state after event `version` (clamped to 0..head), from the nearest valid snapshot at or below it."""
    head = persistence.head_version(sandbox)
    target = max(0, min(int(version), head))
    try:
        loaded = persistence.load_state(sandbox, up_to_version=target)
    except UnreadableEvent:
        loaded = _load_readable_prefix_upto(sandbox, target)
    return _travel(loaded)


def _load_readable_prefix_upto(sandbox: Sandbox, target: int) -> Loaded:
    state, count = decider.initial_state(), 0
    for row in persistence.read_stream(sandbox, 0, target):
        try:
            state = decider.evolve(state, persistence.domain_event(row))
        except UnreadableEvent:
            break
        count += 1
    return Loaded(state=state, snapshot_version=None, events_replayed=count, stale_snapshot_seen=False)


def state_at_time(sandbox: Sandbox, when: dt.datetime) -> TimeTravelView:
    """The state as it was at `when`: after the last event recorded at or before it."""
    last = (
        StoredEvent.objects.filter(sandbox_id=sandbox.pk, recorded_at__lte=when)
        .order_by("-position")
        .values_list("version", flat=True)
        .first()
    )
    return state_at(sandbox, last or 0)


def _travel(loaded: Loaded) -> TimeTravelView:
    return TimeTravelView(
        version=loaded.state.version,
        balance=loaded.state.balance,
        state=state_to_dict(loaded.state),
        snapshot_version=loaded.snapshot_version,
        events_applied=loaded.events_replayed,
    )


@dataclass(frozen=True)
class ReplayFrame:
    """One step of a replay: the event at `version` and the state right after it (version 0: no event yet)."""

    state: TimeTravelView
    event: EventView | None
    head_version: int
    amount: Decimal | None = None  # the event's amount whatever its schema (a v2 deposit stores cents)

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def at_end(self) -> bool:
        return self.state.version >= self.head_version

    def __iter__(self) -> Iterator[Any]:  # unpacks as (state, event), the shape the brief first named
        return iter((self.state, self.event))


def replay_frame(sandbox: Sandbox, version: int) -> ReplayFrame:
    head = persistence.head_version(sandbox)
    target = max(0, min(int(version), head))
    rows = persistence.read_stream(sandbox, target - 1, target) if target > 0 else []
    amount = None
    if rows:
        try:
            amount = persistence.domain_event(rows[0]).amount
        except UnreadableEvent:
            amount = None
    return ReplayFrame(
        state=state_at(sandbox, target), event=_view(rows[0]) if rows else None, head_version=head, amount=amount
    )


# --- settings -----------------------------------------------------------------------------------------------


def set_deposit_schema(sandbox: Sandbox, version: int) -> int:
    """Store new deposits in schema 1 or 2; stored ones keep theirs and are upcast on read."""
    if isinstance(version, bool) or version not in DEPOSIT_SCHEMAS:
        raise ValueError("The deposit schema version must be 1 or 2.")
    assert LATEST_SCHEMA["Deposited"] >= max(DEPOSIT_SCHEMAS)
    _update_settings(sandbox, deposit_schema_version=version)
    return version


def parse_lag(seconds: str | Decimal | int) -> int:
    """Lag text in seconds -> milliseconds: 0 to 10 in steps of 0.1. ValueError with a clear message otherwise."""
    message = "The lag must be a number of seconds from 0 to 10, in steps of 0.1."
    if isinstance(seconds, bool | float):
        raise ValueError(message)
    text = str(seconds).strip()
    if not text or len(text) > 16:
        raise ValueError(message)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(message) from None
    if not value.is_finite() or value < 0 or value > LAG_MAX_MS / 1000:
        raise ValueError(message)
    tenths = value * 10
    if tenths != tenths.to_integral_value():
        raise ValueError(message)
    return int(tenths) * 100


def set_lag(sandbox: Sandbox, seconds: str | Decimal | int) -> int:
    """Set the projector's lag for this sandbox; returns it in milliseconds."""
    lag_ms = parse_lag(seconds)
    _update_settings(sandbox, lag_ms=lag_ms)
    return lag_ms


def _update_settings(sandbox: Sandbox, **fields: Any) -> None:
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(**fields)
        sandbox_id = sandbox.pk
        if "lag_ms" in fields:
            # A shorter lag makes waiting events due now; without a wake-up the projector would sleep on until
            # the deadline it computed under the old lag.
            transaction.on_commit(lambda: projector.notify_appended(sandbox_id), robust=True)
        transaction.on_commit(lambda: live.publish(sandbox_id, "settings"), robust=True)
    for name, value in fields.items():
        setattr(sandbox, name, value)
