"""Queries of the write side and its history: the write model now, the event log, snapshots, time travel, replay.

Everything here is derived from the log itself (and snapshots, which are a cache of it), never from a read
model, so it is always up to date with the last committed command. Every function takes a Sandbox the caller
resolved from the session and returns the dataclasses of lab.types.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace
from typing import Any

from django.utils import timezone

from lab import modes, store
from lab.engine import decider
from lab.engine.messages import AccountState
from lab.engine.replay import Loaded
from lab.engine.snapshots import fingerprint, state_from_dict, state_to_dict
from lab.engine.upcasting import UnreadableEvent, upcast
from lab.models import Sandbox, Snapshot
from lab.sandboxes import is_blank
from lab.types import EventPage, EventView, LoadReportView, ReplayFrame, SnapshotView, TimeTravelView, WriteSide

log = logging.getLogger(__name__)


def write_side(sandbox: Sandbox) -> WriteSide:
    """The write model as a command would load it now, and how it was loaded. In state-only mode: the row."""
    if modes.is_state_only(sandbox):  # read afresh: lab_state reads the read side first, and this after it
        balance, version = Sandbox.objects.filter(pk=sandbox.pk).values_list("state_balance", "state_version").get()
        return WriteSide(balance, version, LoadReportView(None, 0, 0))
    try:
        loaded = store.load_state(sandbox)
    except UnreadableEvent:
        log.warning("sandbox %s holds an unreadable event; showing the state before it", sandbox.pk)
        loaded = _load_readable_prefix(sandbox)
    return WriteSide(
        balance=loaded.state.balance,
        version=loaded.state.version,
        load=LoadReportView(
            snapshot_version=loaded.snapshot_version,
            events_replayed=loaded.events_replayed,
            events_without_snapshot=loaded.state.version,
        ),
        at_head=_view(loaded),
    )


def _load_readable_prefix(sandbox: Sandbox, up_to_version: int | None = None) -> Loaded:
    """The state after the events before the first unreadable one (from the start: no snapshot is trusted)."""
    state, count = decider.initial_state(), 0
    for row in store.read_stream(sandbox, 0, up_to_version):
        try:
            state = decider.evolve(state, store.domain_event(row))
        except UnreadableEvent:
            break
        count += 1
    return Loaded(state=state, snapshot_version=None, events_replayed=count, stale_snapshot_seen=False)


# --- The event log --------------------------------------------------------------------------------------------


def event_view(stored: Any, target_schema: int | None = None) -> EventView:
    """One stored event (a StoredEvent or RecordedEvent) with its raw payload and the payload upcast to
    `target_schema` (None = latest)."""
    raw = stored.payload if isinstance(stored.payload, dict) else {"raw": stored.payload}
    try:
        lifted = upcast(stored.event_type, stored.schema_version, raw, target_schema)
    except UnreadableEvent as exc:
        lifted = {"unreadable": str(exc)}
    return EventView(
        position=stored.position,
        stream_id=stored.stream_id,
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
    """A page of the sandbox's log, newest first, optionally one event type only. Out-of-range pages clamp.
    In state-only mode the page is empty (nothing is appended): every update of the panel renders the log, so
    it does not raise; the log endpoint refuses with lab.modes.UNAVAILABLE["log"]."""
    if is_blank(sandbox):  # a visitor with no sandbox yet (lab.sandboxes.sandbox_to_show): nothing to read
        return EventPage(events=[], page=1, pages=1, total=0, event_type=event_type or None)
    rows, page, pages, total = store.event_page(sandbox, page, per_page, event_type)
    return EventPage(
        events=[event_view(r) for r in rows], page=page, pages=pages, total=total, event_type=event_type or None
    )


def all_events(sandbox: Sandbox) -> list[EventView]:
    modes.require_event_sourced(sandbox, "log")
    return [event_view(r) for r in store.read_stream(sandbox)]


# --- Snapshots ------------------------------------------------------------------------------------------------


def snapshots(sandbox: Sandbox, limit: int | None = 100) -> list[SnapshotView]:
    """The sandbox's snapshots, newest first, each saying whether the current code would still use it."""
    current = fingerprint()
    return [snapshot_view(s, current) for s in store.snapshots_of(sandbox, limit)]


def snapshot_view(snap: Snapshot, current_fingerprint: str) -> SnapshotView:
    valid = snap.fingerprint == current_fingerprint
    if valid:
        try:
            valid = state_from_dict(snap.state).version == snap.version
        except Exception:  # a damaged snapshot is simply not valid
            valid = False
    return SnapshotView(version=snap.version, state=snap.state, taken_at=snap.taken_at, reason=snap.reason, valid=valid)


# --- Time travel and replay -----------------------------------------------------------------------------------


def state_at(sandbox: Sandbox, version: int) -> TimeTravelView:
    """The state after event `version` (clamped to 0..head), from the nearest valid snapshot at or below it.
    In state-only mode only the present exists (the row; v=0 before any command): any other version raises
    lab.modes.ModeUnavailable, because each command overwrote the state before it."""
    if modes.is_state_only(sandbox):
        return _present(sandbox, version)
    return _state_at_clamped(sandbox, max(0, min(int(version), _head(sandbox))))


def _head(sandbox: Sandbox) -> int:
    return 0 if is_blank(sandbox) else store.head_version(sandbox)  # a blank sandbox has no stream to read


def _state_at_clamped(sandbox: Sandbox, target: int) -> TimeTravelView:
    """state_at once the caller clamped the version to the head. v=0 is the empty account, read without a query
    (no snapshot is ever at v=0: take_snapshot refuses an empty account, automatic ones follow events): every
    panel shows the replay at its start."""
    if target == 0:
        return _view(Loaded(decider.initial_state(), None, 0, False))
    try:
        loaded = store.load_state(sandbox, up_to_version=target)
    except UnreadableEvent:
        loaded = _load_readable_prefix(sandbox, target)
    return _view(loaded)


def _view(loaded: Loaded) -> TimeTravelView:
    return TimeTravelView(
        version=loaded.state.version,
        balance=loaded.state.balance,
        state=state_to_dict(loaded.state),
        snapshot_version=loaded.snapshot_version,
        events_applied=loaded.events_replayed,
    )


def _present(sandbox: Sandbox, version: int) -> TimeTravelView:
    """State-only mode's one state, asked for as v=0 (the empty account) or as its current version."""
    balance, current = Sandbox.objects.filter(pk=sandbox.pk).values_list("state_balance", "state_version").get()
    if version not in (0, current):
        modes.require_event_sourced(sandbox, "time_travel")
    state = AccountState(balance=balance, version=current) if version else decider.initial_state()
    return TimeTravelView(state.version, state.balance, state_to_dict(state), None, 0)


def state_at_time(sandbox: Sandbox, when: dt.datetime) -> TimeTravelView:
    """The state as it was at `when`: after the last event recorded at or before it (v=0 before the first event;
    the latest state when `when` is still to come). The view says the moment asked for, shown in the site's time
    zone, and when the event it resolved to was recorded. Raises lab.modes.ModeUnavailable in state-only mode."""
    modes.require_event_sourced(sandbox, "time_travel")
    version, recorded_at = store.event_at_time(sandbox, when)
    view = state_at(sandbox, version)
    local = timezone.localtime
    return replace(
        view,
        at=local(when),
        event_recorded_at=local(recorded_at) if recorded_at is not None else None,
        later_than_now=when > timezone.now(),
    )


def time_travel(
    sandbox: Sandbox, version: int, at: dt.datetime | None = None, *, write: WriteSide | None = None
) -> TimeTravelView:
    """Time travel as a request asks for it: by time when `at` is given, otherwise by version. `write`: the write
    side just read (lab_state); at its version, the slider's default, its own load is the answer, read again for
    nothing before (4 queries on every page and push)."""
    if at is not None:
        return state_at_time(sandbox, at)
    if write is not None and write.at_head is not None and version == write.version:
        return write.at_head
    return state_at(sandbox, version)


def replay_frame(sandbox: Sandbox, version: int) -> ReplayFrame:
    """One step of a replay: the event at `version` (none at 0) and the state right after it. Raises
    lab.modes.ModeUnavailable in state-only mode for any step but 0 (what the panel renders by default): there
    is no log to replay."""
    if version:
        modes.require_event_sourced(sandbox, "replay")
    head = _head(sandbox)
    target = max(0, min(int(version), head))
    rows = store.read_stream(sandbox, target - 1, target) if target > 0 else []
    amount = None
    if rows:
        try:
            amount = store.domain_event(rows[0]).amount
        except UnreadableEvent:
            amount = None
    # The head was read just above: the state needs no second read of it (nor, in state-only mode, of the row).
    state = state_at(sandbox, target) if modes.is_state_only(sandbox) else _state_at_clamped(sandbox, target)
    return ReplayFrame(state=state, event=event_view(rows[0]) if rows else None, head_version=head, amount=amount)
