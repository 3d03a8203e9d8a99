"""Queries of the read side, and the whole panel's state: what the projector built and how far behind it is.

Reads never open a transaction (on SQLite that would take the write lock); instead each read that depends on the
live generation checks it again afterwards and retries if a rebuild swapped generations in between.
Every function takes a Sandbox the caller resolved from the session and returns the dataclasses of lab.types.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from lab import facts, live, modes, read_rows, rebuild, store, timeline
from lab.models import (
    BALANCE,
    RETRO_GENERATION,
    Checkpoint,
    Sandbox,
)
from lab.sandboxes import is_blank
from lab.types import (
    ChartLine,
    ChartSeries,
    DeadLetterView,
    GenerationView,
    HistoryLineView,
    InFlightEvent,
    LabState,
    LoadReportView,
    Progress,
    ProjectorStatus,
    QueryAnswer,
    ReadSide,
    RetroModelView,
    WriteSide,
)

T = TypeVar("T")

HISTORY_LIMIT = 200  # lines returned, newest last; the panel shows the latest few
CHART_WINDOW_S = 60
CHART_POINTS_MAX = 300  # per line: far more steps than the chart has pixels for
IN_FLIGHT_LIMIT = 50
DEAD_LETTER_LIMIT = 100  # open and skipped letters read per state; one poison at a time keeps them far fewer
MAX_WAIT_S = 30.0
ZERO = Decimal("0.00")


def lab_state(sandbox: Sandbox, *, sandbox_is_fresh: bool = False) -> LabState:
    """Read the whole panel's state. The read side is read before the write side so the page can never show a read
    model ahead of the write model it follows. `sandbox_is_fresh`: the caller read the row just now. A blank sandbox
    (lab.sandboxes.sandbox_to_show: none created yet) is an empty account, read without a query."""
    stamp = time.time_ns()
    if is_blank(sandbox):
        return _blank_state(sandbox, stamp)
    if not sandbox_is_fresh:
        sandbox = Sandbox.objects.get(pk=sandbox.pk)  # settings may have changed since the caller loaded it
    read = read_side(sandbox, sandbox_is_fresh=True)
    # The sandbox row was read just above, and the checkpoint with the projector's status: the other read-side
    # views need not read them again each.
    projector = projector_status(sandbox, refresh=False)
    flying = in_flight(sandbox, refresh=False, after_position=projector.checkpoint_position)
    rebuilding = rebuild_progress(sandbox, refresh=False, live_version=projector.read_version)
    retro = retro_model(sandbox, refresh=False)
    write = timeline.write_side(sandbox)
    return LabState(
        sandbox=sandbox,
        write=write,
        read=read,
        projector=projector,
        in_flight=flying,
        snapshot_interval=sandbox.snapshot_interval,
        deposit_schema_version=sandbox.deposit_schema_version,
        rebuild=rebuilding,
        retro=retro,
        event_count=write.version,
        event_limit=settings.LAB_MAX_EVENTS_PER_SANDBOX,
        stamp=stamp,
        server_now=timezone.now(),
        mode=sandbox.mode,
        unavailable=modes.unavailable(sandbox),
        copy_due_at=_copy_due_at(sandbox),
    )


def _blank_state(sandbox: Sandbox, stamp: int) -> LabState:
    """What lab_state reads for a new sandbox (tests/integration/test_sandbox_bounds.py holds them equal), for one
    that does not exist yet: its defaults, no event, no read model."""
    nothing, state = Progress(done=0, total=0, running=False), "paused" if sandbox.projector_paused else "running"
    return LabState(
        sandbox=sandbox,
        write=WriteSide(ZERO, 0, LoadReportView(snapshot_version=None, events_replayed=0, events_without_snapshot=0)),
        read=ReadSide(balance=ZERO, version=0, history=[], behind=0),
        projector=ProjectorStatus(state, 0, 0, sandbox.lag_ms, None, None, None),
        in_flight=[],
        snapshot_interval=sandbox.snapshot_interval,
        deposit_schema_version=sandbox.deposit_schema_version,
        rebuild=nothing,
        retro=RetroModelView(False, None, None, 0, nothing),
        event_count=0,
        event_limit=settings.LAB_MAX_EVENTS_PER_SANDBOX,
        stamp=stamp,
        server_now=timezone.now(),
        mode=sandbox.mode,
        unavailable=modes.unavailable(sandbox),
    )


def _copy_due_at(sandbox: Sandbox) -> dt.datetime | None:
    """State-only mode: when the projector copies the pending change to the read model (None: nothing pending)."""
    pending = sandbox.state_pending_since if modes.is_state_only(sandbox) else None
    return pending + dt.timedelta(milliseconds=sandbox.lag_ms) if pending is not None else None


def write_version(sandbox: Sandbox) -> int:
    """The write model's version: the stream's head (in state-only mode, the row's version, read afresh)."""
    if modes.is_state_only(sandbox):
        return int(Sandbox.objects.filter(pk=sandbox.pk).values_list("state_version", flat=True).get())
    return store.head_version(sandbox)


# --- The read model -------------------------------------------------------------------------------------------


def _fresh(sandbox: Sandbox) -> Sandbox:
    return Sandbox.objects.get(pk=sandbox.pk)


def _live_generation(sandbox_id: Any) -> int:
    return read_rows.live_generation(sandbox_id)


def _consistent(sandbox_id: Any, read: Callable[[int], T], known_generation: int | None = None) -> T:
    """Run read(generation) until the live generation is the same before and after it.

    Generations only grow, so an unchanged number means no swap committed while the rows were read.
    `known_generation`: the live generation in a sandbox row the caller read just now, which serves as the first
    "before" (read earlier, it only widens the window the check after the read covers).
    """
    for _ in range(5):
        generation = known_generation if known_generation is not None else _live_generation(sandbox_id)
        known_generation = None
        value = read(generation)
        if _live_generation(sandbox_id) == generation:
            return value
    return value


def _balance(sandbox_id: Any, generation: int) -> tuple[Decimal, int]:
    return read_rows.balance(sandbox_id, generation) or (ZERO, 0)


def read_side(sandbox: Sandbox, *, sandbox_is_fresh: bool = False) -> ReadSide:
    """The read model's balance and history, with how far it is behind. `sandbox_is_fresh`: the row was read just
    now, so its live generation saves a query (every push and page view reads the read side)."""

    def read(generation: int) -> tuple[tuple[Decimal, int], list[HistoryLineView]]:
        return _balance(sandbox.pk, generation), read_rows.history(sandbox.pk, generation, HISTORY_LIMIT)

    known = sandbox.live_generation if sandbox_is_fresh else None
    (amount, version), history = _consistent(sandbox.pk, read, known)
    written = write_version(sandbox)  # after the read model, so `behind` is never negative
    return ReadSide(balance=amount, version=version, history=history, behind=max(0, written - version))


def _rebuilding(sandbox_id: Any) -> GenerationView | None:
    """During a rebuild, the new generation as far as it got: it answers beside the live one until the swap."""
    generation = Sandbox.objects.filter(pk=sandbox_id).values_list("rebuilding_generation", flat=True).first()
    if generation is None:
        return None
    amount, version = _balance(sandbox_id, generation)
    return GenerationView(generation=generation, balance=amount, version=version)


def _answer(sandbox: Sandbox, waited_ms: int = 0) -> QueryAnswer:
    if is_blank(sandbox):  # no sandbox yet: the empty account's answer, fresh
        return QueryAnswer(ZERO, 0, 0, answered_at=timezone.now(), waited_ms=waited_ms, stale=False)
    amount, version = _consistent(sandbox.pk, lambda g: _balance(sandbox.pk, g))
    written = write_version(sandbox)
    return QueryAnswer(
        balance=amount,
        read_version=version,
        write_version=written,
        answered_at=timezone.now(),
        waited_ms=waited_ms,
        stale=version < written,
        rebuilding=_rebuilding(sandbox.pk),
    )


def query(sandbox: Sandbox) -> QueryAnswer:
    """The read model's answer, with both versions so the staleness is explicit. A stale one is noted for the
    missions (lab.facts), with the lag it was read under."""
    answer = _answer(sandbox)
    if answer.stale:
        facts.note(sandbox.pk, facts.STALE_READ, value=sandbox.lag_ms, keep=facts.KEEP_MAX)
    return answer


async def aquery(sandbox: Sandbox, wait_for_version: int | None, timeout_s: float = 5.0) -> QueryAnswer:
    """Read-your-writes: wait (bounded) until the read model reaches `wait_for_version`, then answer.

    The wait listens on the sandbox's Channels group, where the projector pushes "projected" after each commit
    (in this process or, scaled out, through Redis), and re-reads only when a push could satisfy it. It
    subscribes before the first read, so a commit between that read and the wait cannot be missed. When the
    time runs out the answer comes back marked stale.
    """
    started = time.monotonic()

    def waited() -> int:
        return int((time.monotonic() - started) * 1000)

    if not wait_for_version or wait_for_version <= 0:
        return await sync_to_async(_answer)(sandbox)
    deadline = started + max(0.0, min(float(timeout_s), MAX_WAIT_S))
    layer = get_channel_layer()
    group = live.group_name(sandbox.pk)
    channel = None
    if layer is not None:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
    pushed = False  # whether it had to wait for the projector: then a fresh answer is noted for the missions
    try:
        while True:
            answer = await sync_to_async(_answer)(sandbox, waited())
            if answer.read_version >= wait_for_version:
                if pushed:
                    await sync_to_async(facts.note)(sandbox.pk, facts.FRESH_AFTER_WAIT, value=answer.waited_ms)
                return answer
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return QueryAnswer(
                    balance=answer.balance,
                    read_version=answer.read_version,
                    write_version=answer.write_version,
                    answered_at=answer.answered_at,
                    waited_ms=waited(),
                    stale=True,
                    rebuilding=answer.rebuilding,
                )
            await _wait_for_push(layer, channel, wait_for_version, remaining)
            pushed = True
    finally:
        if layer is not None and channel is not None:
            await layer.group_discard(group, channel)


async def _wait_for_push(layer: Any, channel: str | None, wanted: int, remaining: float) -> None:
    if layer is None or channel is None:  # no layer configured: a bounded, slow re-read is all that is left
        await asyncio.sleep(min(remaining, 0.25))
        return
    deadline = time.monotonic() + remaining
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            message = await asyncio.wait_for(layer.receive(channel), left)
        except TimeoutError:
            return
        if message.get("reason") != "projected":
            continue
        if int(message.get("read_version") or 0) >= wanted or message.get("swapped"):
            return


# --- The projector, as one sandbox sees it --------------------------------------------------------------------


def dead_letters(sandbox: Sandbox) -> tuple[list[DeadLetterView], list[DeadLetterView]]:
    """(open dead letters, the balance model's first; skipped events, one per position, oldest first).
    One query, plus one for the events' versions and types when there are any letters at all."""
    rows = read_rows.dead_letters(sandbox.pk, DEAD_LETTER_LIMIT)
    if not rows:
        return [], []
    events = {e.position: e for e in store.event_store.read_positions(sorted({int(r[1]) for r in rows}))}
    opened: list[DeadLetterView] = []
    skipped: dict[int, DeadLetterView] = {}
    for projection, position, error, skipped_at in rows:
        event = events.get(position)
        version, event_type = (event.version, event.event_type) if event is not None else (None, None)
        view = DeadLetterView(projection, int(position), version, event_type, error, skipped_at)
        if skipped_at is None:
            opened.append(view)
        else:
            skipped.setdefault(view.position, view)
    opened.sort(key=lambda d: (d.projection != BALANCE, d.position))
    return opened, list(skipped.values())


def _projector_state(sandbox: Sandbox, dead: DeadLetterView | None, crashed: bool) -> str:
    if crashed:
        return "crashed"
    if sandbox.projector_paused:
        return "paused"
    if dead is not None:
        return "stalled"
    if sandbox.rebuilding_generation is not None:
        return "rebuilding"
    return "running"


def projector_status(sandbox: Sandbox, *, refresh: bool = True) -> ProjectorStatus:
    fresh = _fresh(sandbox) if refresh else sandbox
    cp = read_rows.checkpoint(fresh.pk, BALANCE, fresh.live_generation) or (0, 0)
    opened, skipped = dead_letters(fresh)
    dead = opened[0] if opened else None
    crashed = fresh.projector_crashed_until is not None and fresh.projector_crashed_until > timezone.now()
    return ProjectorStatus(
        state=_projector_state(fresh, dead if dead is not None and dead.projection == BALANCE else None, crashed),
        checkpoint_position=int(cp[0]),
        read_version=int(cp[1]),
        lag_ms=fresh.lag_ms,
        crashed_until=fresh.projector_crashed_until if crashed else None,
        stalled_reason=dead.error if dead is not None else None,
        stalled_position=dead.position if dead is not None else None,
        stalled_projection=dead.projection if dead is not None else None,
        dead_letters=opened,
        skipped=skipped,
    )


def in_flight(sandbox: Sandbox, *, refresh: bool = True, after_position: int | None = None) -> list[InFlightEvent]:
    """Events the write side holds and the read model does not yet, each with when it falls due.

    `after_position`: the live checkpoint's position, when the caller has just read it."""
    fresh = _fresh(sandbox) if refresh else sandbox
    position = after_position
    if position is None:
        position = (
            Checkpoint.objects.filter(sandbox_id=fresh.pk, projection=BALANCE, generation=fresh.live_generation)
            .values_list("position", flat=True)
            .first()
        ) or 0
    lag = dt.timedelta(milliseconds=fresh.lag_ms)
    rows = store.events_after(fresh.pk, position, IN_FLIGHT_LIMIT)
    return [InFlightEvent(position=p, version=v, event_type=t, recorded_at=at, due_at=at + lag) for p, v, t, at in rows]


def rebuild_progress(sandbox: Sandbox, *, refresh: bool = True, live_version: int | None = None) -> Progress:
    """How far a rebuild is. refresh=False trusts the sandbox row as given; `live_version`: the live checkpoint's
    version, when the caller has just read it."""
    if refresh:
        return rebuild.progress(sandbox.pk, live_version=live_version)
    generations = (sandbox.live_generation, sandbox.rebuilding_generation)
    return rebuild.progress(sandbox.pk, generations, live_version=live_version)


def retro_model(sandbox: Sandbox, *, refresh: bool = True) -> RetroModelView:
    fresh = _fresh(sandbox) if refresh else sandbox
    view = read_rows.largest_deposit(fresh.pk, RETRO_GENERATION)
    amount, position, seen, done = view if view is not None else (None, None, 0, 0)
    total = write_version(fresh) if fresh.retro_model_enabled else 0
    running = fresh.retro_model_enabled and done < total
    # While it catches up: the event it applied last, and the largest deposit before and after it.
    current = rebuild.retro_step(fresh, done, amount, position) if running and view is not None else None
    return RetroModelView(
        enabled=fresh.retro_model_enabled,
        largest_deposit=amount,
        largest_deposit_position=position,
        deposits_seen=seen,
        progress=Progress(done=done, total=max(total, done), running=running, current=current),
    )


# --- The chart ------------------------------------------------------------------------------------------------


def chart_series(
    sandbox: Sandbox, window_s: float = CHART_WINDOW_S, *, limit: int = CHART_POINTS_MAX, now: dt.datetime | None = None
) -> ChartSeries:
    """The chart's write and read versions over the last `window_s` seconds, read from the server so a reload
    keeps them: the write line steps at each event's recorded_at, the read line at each history line's applied_at.

    Two indexed queries, each reading at most `limit` + 1 rows, newest first. The read line is the live
    generation's, picked in the same statement, so a rebuild's swap never mixes generations: after a rebuild it
    shows when the new generation applied each event (the replay), not when the old one did. Lines from before
    applied_at existed count as before the window."""
    now = now or timezone.now()
    start = now - dt.timedelta(seconds=window_s)
    if is_blank(sandbox):  # no sandbox yet: two flat lines at v=0, read without a query
        empty = _chart_line([], start, limit)
        return ChartSeries(now_ms=_epoch_ms(now), window_ms=round(window_s * 1000), write=empty, read=empty)
    return ChartSeries(
        now_ms=_epoch_ms(now),
        window_ms=round(window_s * 1000),
        write=_chart_line(store.newest_versions(sandbox, limit + 1), start, limit),
        read=_chart_line(read_rows.applied_versions(sandbox.pk, limit + 1), start, limit),
    )


def _chart_line(newest_first: Sequence[tuple[dt.datetime | None, int]], start: dt.datetime, limit: int) -> ChartLine:
    """The line from up to `limit` + 1 (time, version) rows, newest first. The first row older than the window
    gives the version held at its start; with more than `limit` rows in the window, the oldest one read is left
    out and its time is where the line becomes exact."""
    points: list[tuple[int, int]] = []
    for at, version in newest_first:
        if at is None or at < start:
            return ChartLine(points=tuple(reversed(points)), before=version, since_ms=_epoch_ms(start))
        if len(points) == limit:
            return ChartLine(points=tuple(reversed(points)), before=version, since_ms=_epoch_ms(at))
        points.append((_epoch_ms(at), version))
    return ChartLine(points=tuple(reversed(points)), before=0, since_ms=_epoch_ms(start))


def _epoch_ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)
