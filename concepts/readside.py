"""The read side of the lab: what the projector built, how far behind it is, and the controls that steer it.

Every function takes a Sandbox the caller resolved from the session and returns the concepts.lab dataclasses.
Reads never open a transaction (on SQLite that would take the write lock); instead each read that depends on
the live generation checks it again afterwards and retries if a rebuild swapped generations in between.
Controls change the sandbox row, then, after commit, wake the projector and push "settings" to open pages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from concepts import live
from concepts.lab import (
    HistoryLineView,
    InFlightEvent,
    Progress,
    ProjectorStatus,
    QueryAnswer,
    ReadSide,
    RetroModelView,
)
from concepts.models import (
    BalanceView,
    Checkpoint,
    DeadLetter,
    HistoryLine,
    LargestDepositView,
    Sandbox,
    StoredEvent,
)
from concepts.projector import BALANCE, LARGEST_DEPOSIT, RETRO_GENERATION, notify_appended, rebuild_step

HISTORY_LIMIT = 200  # lines returned, newest last; the panel shows the latest few
IN_FLIGHT_LIMIT = 50
MAX_WAIT_S = 30.0
MAX_CRASH_S = 60.0
MAX_CONCURRENT_REBUILDS = 2  # reliability R4: replays are capped; the view turns RebuildBusy into a 400
ZERO = Decimal("0.00")


class RebuildBusy(ValueError):
    """Too many rebuilds are running; the learner should try again shortly."""


# --- Reads -----------------------------------------------------------------------------------------


def _fresh(sandbox: Sandbox) -> Sandbox:
    return Sandbox.objects.get(pk=sandbox.pk)


def _live_generation(sandbox_id: Any) -> int:
    return Sandbox.objects.filter(pk=sandbox_id).values_list("live_generation", flat=True).get()


def _consistent(sandbox_id: Any, read: Any) -> Any:
    """Run read(generation) until the live generation is the same before and after it.

    Generations only grow, so an unchanged number means no swap committed while the rows were read.
    """
    for _ in range(5):
        generation = _live_generation(sandbox_id)
        value = read(generation)
        if _live_generation(sandbox_id) == generation:
            return value
    return value


def write_version(sandbox: Sandbox) -> int:
    last = StoredEvent.objects.filter(sandbox_id=sandbox.pk).order_by("-position").values_list("version").first()
    return int(last[0]) if last else 0


def _balance(sandbox_id: Any, generation: int) -> tuple[Decimal, int]:
    row = BalanceView.objects.filter(sandbox_id=sandbox_id, generation=generation).values_list("amount", "version")
    found = row.first()
    return (found[0], int(found[1])) if found else (ZERO, 0)


def read_side(sandbox: Sandbox) -> ReadSide:
    def read(generation: int) -> tuple[tuple[Decimal, int], list[HistoryLineView]]:
        balance = _balance(sandbox.pk, generation)
        rows = HistoryLine.objects.filter(sandbox_id=sandbox.pk, generation=generation).order_by("-position")
        lines = [
            HistoryLineView(
                position=r.position,
                version=r.version,
                kind=r.kind,
                amount=r.amount,
                balance_after=r.balance_after,
                recorded_at=r.recorded_at,
            )
            for r in rows[:HISTORY_LIMIT]
        ]
        lines.reverse()
        return balance, lines

    (amount, version), history = _consistent(sandbox.pk, read)
    written = write_version(sandbox)  # after the read model, so `behind` is never negative
    return ReadSide(balance=amount, version=version, history=history, behind=max(0, written - version))


def _answer(sandbox: Sandbox, waited_ms: int = 0) -> QueryAnswer:
    amount, version = _consistent(sandbox.pk, lambda g: _balance(sandbox.pk, g))
    written = write_version(sandbox)
    return QueryAnswer(
        balance=amount,
        read_version=version,
        write_version=written,
        answered_at=timezone.now(),
        waited_ms=waited_ms,
        stale=version < written,
    )


def query(sandbox: Sandbox) -> QueryAnswer:
    """The read model's answer, with both versions so the staleness is explicit."""
    return _answer(sandbox)


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
    try:
        while True:
            answer = await sync_to_async(_answer)(sandbox, waited())
            if answer.read_version >= wait_for_version:
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
                )
            await _wait_for_push(layer, channel, wait_for_version, remaining)
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


def _open_dead_letter(sandbox: Sandbox, projection: str = BALANCE) -> DeadLetter | None:
    return (
        DeadLetter.objects.filter(sandbox_id=sandbox.pk, projection=projection, resolved_at__isnull=True)
        .order_by("position")
        .first()
    )


def projector_status(sandbox: Sandbox, *, refresh: bool = True) -> ProjectorStatus:
    fresh = _fresh(sandbox) if refresh else sandbox
    cp = (
        Checkpoint.objects.filter(sandbox_id=fresh.pk, projection=BALANCE, generation=fresh.live_generation)
        .values_list("position", "version")
        .first()
    ) or (0, 0)
    dead = _open_dead_letter(fresh)
    now = timezone.now()
    crashed = fresh.projector_crashed_until is not None and fresh.projector_crashed_until > now
    if crashed:
        state = "crashed"
    elif fresh.projector_paused:
        state = "paused"
    elif dead is not None:
        state = "stalled"
    elif fresh.rebuilding_generation is not None:
        state = "rebuilding"
    else:
        state = "running"
    return ProjectorStatus(
        state=state,
        checkpoint_position=int(cp[0]),
        read_version=int(cp[1]),
        lag_ms=fresh.lag_ms,
        crashed_until=fresh.projector_crashed_until if crashed else None,
        stalled_reason=dead.error if dead is not None else None,
        stalled_position=dead.position if dead is not None else None,
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
    rows = (
        StoredEvent.objects.filter(sandbox_id=fresh.pk, position__gt=position)
        .order_by("position")
        .values_list("position", "version", "event_type", "recorded_at")[:IN_FLIGHT_LIMIT]
    )
    return [InFlightEvent(position=p, version=v, event_type=t, recorded_at=at, due_at=at + lag) for p, v, t, at in rows]


# --- Controls --------------------------------------------------------------------------------------


def _changed(sandbox_id: Any, reason: str = "settings", **fields: Any) -> None:
    def after() -> None:
        notify_appended(sandbox_id)
        live.publish(sandbox_id, reason, **fields)

    transaction.on_commit(after)


def pause_projection(sandbox: Sandbox) -> None:
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_paused=True)
    _changed(sandbox.pk)


def resume_projection(sandbox: Sandbox) -> None:
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_paused=False)
    _changed(sandbox.pk)


def crash_projector(sandbox: Sandbox, downtime_s: float = 3.0) -> dt.datetime:
    """A teaching fault: the sandbox's projector acts dead for `downtime_s`, then restarts from its checkpoint."""
    if not 0 < downtime_s <= MAX_CRASH_S:
        raise ValueError(f"the downtime must be between 0 and {MAX_CRASH_S:g} seconds")
    until = timezone.now() + dt.timedelta(seconds=downtime_s)
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_crashed_until=until)
    _changed(sandbox.pk)
    return until


def retry_dead_letter(sandbox: Sandbox) -> int:
    """Mark the open dead letters resolved so the projection tries again (after the cause was fixed).
    If the event still fails it is dead-lettered again, with the new error."""
    count = DeadLetter.objects.filter(sandbox_id=sandbox.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    _changed(sandbox.pk)
    return count


def _checkpoint_version(sandbox_id: Any, projection: str, generation: int) -> int:
    return int(
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=generation)
        .values_list("version", flat=True)
        .first()
        or 0
    )


def start_rebuild(sandbox: Sandbox, *, force: bool = False) -> Progress:
    """Blue/green: build generation g+1 from position 0 while g keeps serving; the projector swaps it in.

    `force` skips the concurrency cap (the rebuild_projection command, run by an operator).
    """
    from django.db import connection

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:  # serialise the cap check across concurrent starts
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [0x5EF10F1])
        fresh = Sandbox.objects.select_for_update().get(pk=sandbox.pk)
        if fresh.rebuilding_generation is None:
            busy = Sandbox.objects.filter(rebuilding_generation__isnull=False).count()
            if busy >= MAX_CONCURRENT_REBUILDS and not force:
                raise RebuildBusy("Other rebuilds are running right now; try again in a few seconds.")
            generation = fresh.live_generation + 1
            # Leftovers of a generation that never went live would corrupt the new one.
            for model in (HistoryLine, BalanceView):
                model.objects.filter(sandbox_id=fresh.pk, generation__gte=generation).delete()
            Checkpoint.objects.filter(sandbox_id=fresh.pk, projection=BALANCE, generation__gte=generation).delete()
            Checkpoint.objects.create(sandbox_id=fresh.pk, projection=BALANCE, generation=generation)
            BalanceView.objects.create(sandbox_id=fresh.pk, generation=generation)
            Sandbox.objects.filter(pk=fresh.pk).update(rebuilding_generation=generation)
        progress = _rebuild_progress(fresh.pk)
        _changed(fresh.pk)
        _changed(fresh.pk, "rebuild", done=progress.done, total=progress.total, running=progress.running)
    return progress


def _rebuild_progress(
    sandbox_id: Any, generations: tuple[int, int | None] | None = None, live_version: int | None = None
) -> Progress:
    if generations is None:
        row = Sandbox.objects.filter(pk=sandbox_id).values_list("live_generation", "rebuilding_generation")
        generations = row.get()
    live_gen, new_gen = generations
    if live_version is None:
        live_version = _checkpoint_version(sandbox_id, BALANCE, live_gen)
    if new_gen is None:
        if live_gen > 1:  # a rebuild happened: show the last one as complete
            return Progress(done=live_version, total=live_version, running=False)
        return Progress(done=0, total=0, running=False)
    done = _checkpoint_version(sandbox_id, BALANCE, new_gen)
    return Progress(done=done, total=max(done, live_version), running=True)


def rebuild_progress(sandbox: Sandbox, *, refresh: bool = True, live_version: int | None = None) -> Progress:
    """How far a rebuild is. refresh=False trusts the sandbox row as given; `live_version`: the live checkpoint's
    version, when the caller has just read it."""
    if refresh:
        return _rebuild_progress(sandbox.pk, live_version=live_version)
    return _rebuild_progress(
        sandbox.pk, (sandbox.live_generation, sandbox.rebuilding_generation), live_version=live_version
    )


def rebuild_now(sandbox: Sandbox, batch: int = 5000, on_progress: Any = None) -> Progress:
    """Run a whole rebuild in this thread (the management command); the live projector may run meanwhile."""
    start_rebuild(sandbox, force=True)
    while True:
        outcome, swapped = rebuild_step(sandbox.pk, batch)
        progress = _rebuild_progress(sandbox.pk)
        if on_progress is not None:
            on_progress(progress)
        if not progress.running and not swapped:
            return progress  # a running projector took the last step and swapped it in
        if swapped:
            live.publish(sandbox.pk, "rebuild", done=progress.done, total=progress.total, running=False)
            live.publish(sandbox.pk, "projected", read_version=outcome.version, position=outcome.position)
            return progress
        if outcome.stalled:
            raise RuntimeError(f"the rebuild of sandbox {sandbox.pk} stopped at a poison event")
        if not outcome.applied:
            time.sleep(0.05)  # chasing a live checkpoint that a concurrent projector holds locked


def enable_retro_model(sandbox: Sandbox) -> None:
    """Add the "largest deposit" model; the projector builds it from position 0 while the balance keeps serving."""
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(retro_model_enabled=True)
        Checkpoint.objects.get_or_create(sandbox_id=sandbox.pk, projection=LARGEST_DEPOSIT, generation=RETRO_GENERATION)
        LargestDepositView.objects.get_or_create(sandbox_id=sandbox.pk, generation=RETRO_GENERATION)
        _changed(sandbox.pk)


def retro_model(sandbox: Sandbox, *, refresh: bool = True) -> RetroModelView:
    fresh = _fresh(sandbox) if refresh else sandbox
    view = LargestDepositView.objects.filter(sandbox_id=fresh.pk, generation=RETRO_GENERATION).first()
    done = view.version if view is not None else 0
    total = write_version(fresh) if fresh.retro_model_enabled else 0
    return RetroModelView(
        enabled=fresh.retro_model_enabled,
        largest_deposit=view.amount if view is not None else None,
        largest_deposit_position=view.position if view is not None else None,
        deposits_seen=view.deposits_seen if view is not None else 0,
        progress=Progress(done=done, total=max(total, done), running=fresh.retro_model_enabled and done < total),
    )
