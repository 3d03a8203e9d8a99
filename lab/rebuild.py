"""Rebuilding the balance read model from the log, blue/green.

The live generation g keeps answering queries while generation g + 1 replays the whole log from position 0 (with
the same code path as live projection, lab.projections.project). Once nothing more is due and it is at least as far
as the live checkpoint, it is swapped in, in a transaction that holds that checkpoint still, so no event can land
between "caught up" and "now serving"; the old generation's rows go with the swap. The projector runs the steps
(lab.projector); `rebuild_now` runs them in the caller's thread for the `rebuild_projection` command.

Replays go at the sandbox's pace (`Sandbox.replay_rate`, events a second; 0 = as fast as possible), so a learner
can watch the fold: `pace` says how many events a turn may apply, from the checkpoint's `updated_at` in the
database (so several projector workers keep one pace between them), and when the next one is allowed. The
retroactive model's catch-up uses the same pace; live projection and `rebuild_now` never do. `progress` and
`retro_step` say which event was applied last and the fold's arithmetic around it.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from lab import live, store
from lab.engine.messages import Deposited
from lab.engine.upcasting import UnreadableEvent
from lab.models import BALANCE, LARGEST_DEPOSIT, BalanceView, Checkpoint, DeadLetter, HistoryLine, Sandbox
from lab.projections import Outcome, checkpoint, project, sandbox_row, try_sandbox_lock
from lab.types import FoldStep, GenerationView, Progress

REBUILD_BATCH = 2000  # a rebuild turn holds the projector thread ~30 ms: others stay within their lag budget
MAX_CONCURRENT_REBUILDS = 2  # replays are capped; the view turns RebuildBusy into a 429 with Retry-After
REBUILD_CAP_LOCK = 0x5EF10F1  # a PostgreSQL advisory lock key: concurrent starts check the cap one at a time
ZERO = Decimal("0.00")
PACE_BURST_S = 0.2  # a paced turn applies at most this long's worth of events (at least one), even after a pause
PACE_SLACK = 0.05  # of an interval: the step's own commit time must not push the next event a whole turn back


class RebuildBusy(ValueError):
    """Too many rebuilds are running; the learner should try again shortly."""

    retry_after_s = 5  # the view's Retry-After: a rebuild of a full sandbox at full speed takes well under that


def _rebuilds_in_progress() -> int:
    """Rebuilds that hold a slot: only those that can move. A retired sandbox (reset mid-rebuild) never takes
    another step, and a paused or crashed projector or an open dead letter of the balance model stops the
    sandbox's rebuild until the learner acts; counting those held slots for good."""
    stalled = DeadLetter.objects.filter(
        sandbox_id=OuterRef("pk"), projection=BALANCE, resolved_at__isnull=True, skipped_at__isnull=True
    )
    return (
        Sandbox.objects.filter(rebuilding_generation__isnull=False, retired_at__isnull=True, projector_paused=False)
        .filter(Q(projector_crashed_until__isnull=True) | Q(projector_crashed_until__lte=timezone.now()))
        .exclude(Exists(stalled))
        .count()
    )


@dataclass(frozen=True)
class Pace:
    """What one turn of a paced replay may apply: `limit` events (0: none yet), and from when the next one is
    allowed (`next_at`, epoch seconds; None when unpaced)."""

    limit: int
    next_at: float | None = None

    def hold(self, out: Outcome) -> None:
        """A paced turn that stopped at its allowance has more to do, but not now: it is due when the next event
        is allowed (the projector loop sleeps until `next_due`) instead of at once."""
        if self.next_at is not None and out.more:
            out.more = False
            out.next_due = self.next_at if out.next_due is None else min(out.next_due, self.next_at)


def pace(sandbox_id: uuid.UUID, projection: str, generation: int, rate: int, batch: int) -> Pace:
    """How many events this turn of a replay at `rate` events a second may apply (at most `batch`).

    The allowance comes from the database, not from this process: the time since the replay's checkpoint last
    moved (`Checkpoint.updated_at`, set with every batch), so several projector workers keep one pace between
    them. The first event goes at once; a replay that waited (for its lag, a wake-up, a slow turn) makes up at
    most PACE_BURST_S of events. Rate 0 is unpaced: a whole batch."""
    if rate <= 0:
        return Pace(batch)
    row = (
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=generation)
        .values_list("version", "updated_at")
        .first()
    )
    now = time.time()
    interval = 1.0 / rate
    if row is None or not row[0]:
        return Pace(1, now + interval)
    last = row[1].timestamp()
    allowance = min(int((now - last) * rate + PACE_SLACK), max(1, int(rate * PACE_BURST_S)), batch)
    if allowance <= 0:
        return Pace(0, last + (1 - PACE_SLACK) * interval)
    return Pace(allowance, now + interval)


def begin(sandbox_id: uuid.UUID, *, max_concurrent: int | None = MAX_CONCURRENT_REBUILDS) -> Progress:
    """Start filling generation live + 1 (or keep the rebuild already running). Raises RebuildBusy past the cap;
    `max_concurrent=None` has no cap (an operator's command). Call inside a transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_CAP_LOCK])
    fresh = Sandbox.objects.select_for_update().get(pk=sandbox_id)
    if fresh.rebuilding_generation is None:
        if max_concurrent is not None and _rebuilds_in_progress() >= max_concurrent:
            raise RebuildBusy("Other rebuilds are running right now; try again in a few seconds.")
        generation = fresh.live_generation + 1
        # Leftovers of a generation that never went live would corrupt the new one.
        for model in (HistoryLine, BalanceView):
            model.objects.filter(sandbox_id=fresh.pk, generation__gte=generation).delete()
        Checkpoint.objects.filter(sandbox_id=fresh.pk, projection=BALANCE, generation__gte=generation).delete()
        Checkpoint.objects.create(sandbox_id=fresh.pk, projection=BALANCE, generation=generation)
        BalanceView.objects.create(sandbox_id=fresh.pk, generation=generation)
        Sandbox.objects.filter(pk=fresh.pk).update(rebuilding_generation=generation)
    return progress(fresh.pk)


def announce(sandbox_id: uuid.UUID, started: Progress) -> None:
    """After the commit: wake the projector to take the first steps, and show the rebuild on open pages."""
    live.after_commit(sandbox_id, "settings")
    live.after_commit(
        sandbox_id, "rebuild", wake=False, done=started.done, total=started.total, running=started.running
    )


def progress(
    sandbox_id: Any, generations: tuple[int, int | None] | None = None, live_version: int | None = None
) -> Progress:
    """How far the rebuild is. `generations`: (live, rebuilding) when the caller has just read the sandbox row;
    `live_version`: the live checkpoint's version, when the caller has just read it."""
    if generations is None:
        row = Sandbox.objects.filter(pk=sandbox_id).values_list("live_generation", "rebuilding_generation")
        generations = row.get()
    live_gen, new_gen = generations
    if live_version is None:
        live_version = (checkpoint(sandbox_id, BALANCE, live_gen) or (0, 0))[1]
    if new_gen is None:
        if live_gen > 1:  # a rebuild happened: show the last one as complete
            return Progress(done=live_version, total=live_version, running=False)
        return Progress(done=0, total=0, running=False)
    done = (checkpoint(sandbox_id, BALANCE, new_gen) or (0, 0))[1]
    new = BalanceView.objects.filter(sandbox_id=sandbox_id, generation=new_gen).values_list("amount", "version")
    balance, version = new.first() or (ZERO, 0)
    return Progress(
        done=done,
        total=max(done, live_version),
        running=True,
        current=_last_balance_step(sandbox_id, new_gen),
        rebuilding=GenerationView(generation=new_gen, balance=balance, version=int(version)),
    )


def _last_balance_step(sandbox_id: Any, generation: int) -> FoldStep | None:
    """The generation's last history line as a step of the fold: its balance before is after ∓ its amount."""
    line = (
        HistoryLine.objects.filter(sandbox_id=sandbox_id, generation=generation)
        .order_by("-position")
        .values_list("position", "version", "kind", "amount", "balance_after")
        .first()
    )
    if line is None:
        return None
    position, version, kind, amount, after = line
    deposit = kind == "deposit"
    return FoldStep(
        version=int(version),
        position=int(position),
        event_type="Deposited" if deposit else "Withdrew",
        amount=amount,
        before=after - amount if deposit else after + amount,
        after=after,
    )


def retro_step(sandbox: Sandbox, version: int, largest: Decimal | None, largest_at: int | None) -> FoldStep | None:
    """The event the retroactive model applied last (the one at its view's `version`) with the largest deposit so
    far before and after it. Usually one query (the event); when that event set a new maximum, the largest before
    it is the live balance model's largest deposit line below it, two small queries more. None before the first
    event, and in the rare moment the live model is behind the retroactive one (a swap just emptied it)."""
    rows = store.read_stream(sandbox, version - 1, version) if version > 0 else []
    if not rows:
        return None
    row = rows[0]
    try:
        event = store.domain_event(row)
    except UnreadableEvent:  # a skipped poison event: passed over
        return FoldStep(version, row.position, row.event_type, None, largest, largest, model=LARGEST_DEPOSIT)
    before = largest
    if isinstance(event, Deposited) and largest_at == row.position:
        generation = sandbox.live_generation
        lines = HistoryLine.objects.filter(sandbox_id=sandbox.pk, generation=generation, version__lt=version)
        before = lines.filter(kind="deposit").aggregate(largest=Max("amount"))["largest"]
        # After the aggregate: a swap that deleted this generation's lines first deleted its view as well.
        view = BalanceView.objects.filter(sandbox_id=sandbox.pk, generation=generation, version__gte=version - 1)
        if not view.exists():
            return None
    amount = getattr(event, "amount", None)
    return FoldStep(version, row.position, row.event_type, amount, before, largest, model=LARGEST_DEPOSIT)


def rebuild_step(sandbox_id: uuid.UUID, limit: int = REBUILD_BATCH, *, paced: bool = True) -> tuple[Outcome, bool]:
    """Advance the sandbox's rebuild by one batch; swap it live once it has caught up. Returns (outcome, swapped).
    `paced`: at most as many events as the sandbox's replay rate allows (`pace`); `rebuild_now` ignores it.

    The new generation replays the whole log from position 0: every event that is due (the sandbox's lag applies
    to a rebuild as to the live model), not only as far as the live model got, which may be nowhere (a sandbox
    whose projector never ran was once "rebuilt" from 0 events). It swaps in once nothing more is due and it is at
    least as far as the live model, chasing it while the live projector keeps moving.
    """
    row = sandbox_row(sandbox_id)
    if row is None or row["rebuilding_generation"] is None:
        return Outcome(), False
    new_gen, live_gen = row["rebuilding_generation"], row["live_generation"]
    lag = dt.timedelta(milliseconds=row["lag_ms"])
    allowed = pace(sandbox_id, BALANCE, new_gen, row["replay_rate"] if paced else 0, limit)
    out = project(sandbox_id, BALANCE, new_gen, lag=lag, limit=allowed.limit, rebuilding=True)
    if out.stalled or out.more:
        allowed.hold(out)
        return out, False
    swapped = _try_swap(sandbox_id, new_gen, live_gen)
    if not swapped:
        out.more = True  # the live model moved on meanwhile: chase it next turn
    return out, swapped


def _try_swap(sandbox_id: uuid.UUID, new_gen: int, live_gen: int) -> bool:
    with transaction.atomic():
        try_sandbox_lock(sandbox_id)
        row = sandbox_row(sandbox_id, lock=True)
        if row is None or row["rebuilding_generation"] != new_gen or row["live_generation"] != live_gen:
            return False
        live_cp = (
            Checkpoint.objects.select_for_update()
            .filter(sandbox_id=sandbox_id, projection=BALANCE, generation=live_gen)
            .values_list("position", flat=True)
            .first()
        ) or 0
        new_cp = checkpoint(sandbox_id, BALANCE, new_gen) or (0, 0)
        if new_cp[0] < live_cp:
            return False  # the live model moved past the rebuild meanwhile: one more batch first
        if not BalanceView.objects.filter(sandbox_id=sandbox_id, generation=new_gen).exists():
            BalanceView.objects.create(sandbox_id=sandbox_id, generation=new_gen)
        if not Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=BALANCE, generation=new_gen).exists():
            Checkpoint.objects.create(sandbox_id=sandbox_id, projection=BALANCE, generation=new_gen)
        Sandbox.objects.filter(pk=sandbox_id).update(live_generation=new_gen, rebuilding_generation=None)
        # The old generation goes with the swap. A reader that picked it just before re-checks the live
        # generation after reading and retries, so it never shows an emptied view.
        for model in (HistoryLine, BalanceView):
            model.objects.filter(sandbox_id=sandbox_id, generation__lt=new_gen).delete()
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=BALANCE, generation__lt=new_gen).delete()
    return True


def rebuild_now(
    sandbox_id: uuid.UUID, batch: int = 5000, on_progress: Callable[[Progress], None] | None = None
) -> Progress:
    """Run a whole rebuild in this thread (the rebuild_projection command); a live projector may run meanwhile."""
    with transaction.atomic():
        announce(sandbox_id, begin(sandbox_id, max_concurrent=None))
    while True:
        outcome, swapped = rebuild_step(sandbox_id, batch, paced=False)
        current = progress(sandbox_id)
        if on_progress is not None:
            on_progress(current)
        if not current.running and not swapped:
            return current  # a running projector took the last step and swapped it in
        if swapped:
            live.publish(sandbox_id, "rebuild", done=current.done, total=current.total, running=False)
            live.publish(sandbox_id, "projected", read_version=outcome.version, position=outcome.position)
            return current
        if outcome.stalled:
            raise RuntimeError(f"the rebuild of sandbox {sandbox_id} stopped at a poison event")
        if not outcome.applied:
            time.sleep(0.05)  # chasing a live checkpoint that a concurrent projector holds locked
