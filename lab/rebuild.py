"""Rebuilding the balance read model from the log, blue/green.

The live generation g keeps answering queries while generation g + 1 replays the whole log from position 0 (with
the same code path as live projection, lab.projections.project). Once nothing more is due and it is at least as far
as the live checkpoint, it is swapped in, in a transaction that holds that checkpoint still, so no event can land
between "caught up" and "now serving"; the old generation's rows go with the swap. The projector runs the steps
(lab.projector); `rebuild_now` runs them in the caller's thread for the `rebuild_projection` command.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

from lab import live
from lab.models import BALANCE, BalanceView, Checkpoint, HistoryLine, Sandbox
from lab.projections import Outcome, checkpoint, project, sandbox_row, try_sandbox_lock
from lab.types import Progress

REBUILD_BATCH = 2000  # a rebuild turn holds the projector thread ~30 ms: others stay within their lag budget
MAX_CONCURRENT_REBUILDS = 2  # replays are capped; the view turns RebuildBusy into a 400
REBUILD_CAP_LOCK = 0x5EF10F1  # a PostgreSQL advisory lock key: concurrent starts check the cap one at a time


class RebuildBusy(ValueError):
    """Too many rebuilds are running; the learner should try again shortly."""


def begin(sandbox_id: uuid.UUID, *, max_concurrent: int | None = MAX_CONCURRENT_REBUILDS) -> Progress:
    """Start filling generation live + 1 (or keep the rebuild already running). Raises RebuildBusy past the cap;
    `max_concurrent=None` has no cap (an operator's command). Call inside a transaction."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [REBUILD_CAP_LOCK])
    fresh = Sandbox.objects.select_for_update().get(pk=sandbox_id)
    if fresh.rebuilding_generation is None:
        # A retired sandbox (reset mid-rebuild) never takes another step: counting it held a slot for good.
        busy = Sandbox.objects.filter(rebuilding_generation__isnull=False, retired_at__isnull=True).count()
        if max_concurrent is not None and busy >= max_concurrent:
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
    return Progress(done=done, total=max(done, live_version), running=True)


def rebuild_step(sandbox_id: uuid.UUID, limit: int = REBUILD_BATCH) -> tuple[Outcome, bool]:
    """Advance the sandbox's rebuild by one batch; swap it live once it has caught up. Returns (outcome, swapped).

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
    out = project(sandbox_id, BALANCE, new_gen, lag=lag, limit=limit, rebuilding=True)
    if out.stalled or out.more:
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
        outcome, swapped = rebuild_step(sandbox_id, batch)
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
