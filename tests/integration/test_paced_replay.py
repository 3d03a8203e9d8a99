"""Replays at a chosen pace: a rebuild and the retroactive model's catch-up apply at most `Sandbox.replay_rate`
events a second (0 = as fast as possible), show the event being applied with the fold's arithmetic, and during a
rebuild the old and the new generation both answer until the swap. Live projection is never paced.

Timing assertions are ratios with wide margins (at 10 events a second, 5 to 20 done after one second), never tight
deadlines. The step-by-step tests use 2 events a second, where a turn's allowance is always one event however late
the turn runs, so they do not depend on the machine's speed at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from lab import controls, projector, queries, rebuild
from lab.engine import projection
from lab.engine.messages import Deposited
from lab.limits import REPLAY_RATE_MAX
from lab.models import BALANCE, LARGEST_DEPOSIT, Checkpoint, Sandbox
from lab.store import domain_event, read_stream
from lab.types import FoldStep, GenerationView, Progress
from tests.integration.lab_events import append, eventually, new_sandbox, visitor

pytestmark = [
    pytest.mark.backend,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

HX = {"HTTP_HX_REQUEST": "true"}
STEP_S = 0.55  # a little over one interval at 2 events a second


def seeded(rate: int, amounts: list[tuple[str, str]]) -> Sandbox:
    """A sandbox at `rate` whose live model already shows `amounts` (the live model is never paced)."""
    sandbox = new_sandbox(replay_rate=rate)
    for kind, amount in amounts:
        append(sandbox, kind, amount)
    projector.drain([sandbox.pk])
    return sandbox


def folded(sandbox: Sandbox) -> tuple[projection.BalanceState, projection.LargestDepositState]:
    events = [(e.position, e.version, domain_event(e)) for e in read_stream(sandbox)]
    return projection.fold_balance(events)[0], projection.fold_largest_deposit(events)


# --- The pace, from the database --------------------------------------------------------------------------------


def test_the_allowance_comes_from_the_checkpoint_in_the_database_not_from_a_process():
    sandbox = seeded(10, [("Deposited", "1.00")] * 5)
    controls.start_rebuild(sandbox)
    new_gen = 2
    assert rebuild.pace(sandbox.pk, BALANCE, new_gen, 10, 2000).limit == 1  # nothing applied yet: the first at once
    assert rebuild.pace(sandbox.pk, BALANCE, new_gen, 0, 2000).limit == 2000  # 0 = unpaced: a whole batch
    cp = Checkpoint.objects.filter(sandbox=sandbox, projection=BALANCE, generation=new_gen)
    cp.update(version=1, position=1, updated_at=timezone.now())  # as if another worker had just applied one
    just_now = rebuild.pace(sandbox.pk, BALANCE, new_gen, 10, 2000)
    assert just_now.limit == 0
    assert 0 < just_now.next_at - time.time() <= 0.1  # the loop sleeps until the next event is allowed
    cp.update(updated_at=timezone.now() - dt.timedelta(seconds=30))  # a long quiet spell
    assert rebuild.pace(sandbox.pk, BALANCE, new_gen, 10, 2000).limit == 2  # makes up at most 0.2 s of events
    assert rebuild.pace(sandbox.pk, BALANCE, new_gen, 1000, 2000).limit == 200
    assert rebuild.pace(sandbox.pk, BALANCE, new_gen, 2, 2000).limit == 1


async def test_at_10_a_second_a_rebuild_of_30_events_is_still_running_after_a_second_then_equals_the_fold(running):
    sandbox = await sync_to_async(seeded)(10, [("Deposited", "3.00"), ("Withdrew", "1.00")] * 15)
    running()
    started = await sync_to_async(controls.start_rebuild)(sandbox)
    assert started.running and started.total == 30
    await asyncio.sleep(1.0)
    midway = await sync_to_async(queries.rebuild_progress)(sandbox)
    assert midway.running and 5 <= midway.done <= 20, midway.done
    # The old generation still answers, the new one answers beside it with what it has so far.
    answer = await sync_to_async(queries.query)(sandbox)
    assert (answer.balance, answer.read_version) == (Decimal("30.00"), 30)
    assert answer.rebuilding is not None and answer.rebuilding.generation == 2
    assert 1 <= answer.rebuilding.version < 30
    assert answer.rebuilding.balance == sum(
        (Decimal("3.00") if v % 2 else Decimal("-1.00") for v in range(1, answer.rebuilding.version + 1)), Decimal(0)
    )
    # Live projection is not paced: new events reach the live model at once while the rebuild goes on.
    await sync_to_async(lambda: [append(sandbox, "Deposited", "5.00") for _ in range(5)])()
    await eventually(lambda: queries.query(sandbox).read_version == 35, timeout=5)
    assert (await sync_to_async(queries.rebuild_progress)(sandbox)).running
    await eventually(lambda: not queries.rebuild_progress(sandbox).running, timeout=20)
    balance, _ = await sync_to_async(folded)(sandbox)
    read = await sync_to_async(queries.read_side)(sandbox)
    assert (read.balance, read.version) == (balance.amount, balance.version) == (Decimal("55.00"), 35)
    done = await sync_to_async(queries.query)(sandbox)
    assert done.rebuilding is None and await sync_to_async(queries.rebuild_progress)(sandbox) == Progress(35, 35, False)


async def test_at_rate_0_a_rebuild_runs_as_fast_as_the_projector_can(running):
    sandbox = await sync_to_async(seeded)(0, [("Deposited", "1.00")] * 300)
    running()
    begun = time.monotonic()
    await sync_to_async(controls.start_rebuild)(sandbox)
    await eventually(lambda: not queries.rebuild_progress(sandbox).running, timeout=10)
    assert time.monotonic() - begun < 10  # at 10 a second it would take 30 s
    assert (await sync_to_async(queries.query)(sandbox)).balance == Decimal("300.00")


async def test_two_projector_workers_keep_one_pace_between_them(running):
    # Scaled out, each worker computes the allowance from the checkpoint in the database: a pace kept in each
    # process's memory would let two workers replay twice as fast.
    sandbox = await sync_to_async(seeded)(10, [("Deposited", "1.00")] * 60)
    running(name="worker-1")
    running(name="worker-2")
    await sync_to_async(controls.start_rebuild)(sandbox)
    await asyncio.sleep(2.0)
    midway = await sync_to_async(queries.rebuild_progress)(sandbox)
    assert midway.running and 10 <= midway.done <= 30, midway.done


async def test_a_pace_change_in_the_middle_of_a_rebuild_takes_effect_at_once(running):
    sandbox = await sync_to_async(seeded)(2, [("Deposited", "2.00")] * 60)
    running()
    await sync_to_async(controls.start_rebuild)(sandbox)
    await asyncio.sleep(0.8)
    slow = await sync_to_async(queries.rebuild_progress)(sandbox)
    assert slow.running and 1 <= slow.done <= 4, slow.done  # 2 a second: 60 events would take 30 s
    await sync_to_async(controls.set_replay_rate)(sandbox, 50)  # wakes the projector, which re-paces
    begun = time.monotonic()
    await eventually(lambda: not queries.rebuild_progress(sandbox).running, timeout=15)
    assert time.monotonic() - begun < 15
    assert (await sync_to_async(queries.query)(sandbox)).balance == Decimal("120.00")


# --- The fold, shown step by step --------------------------------------------------------------------------------


def test_each_rebuild_step_shows_the_event_and_the_balance_before_and_after_it():
    sandbox = seeded(2, [("Deposited", "35.00"), ("Deposited", "50.00"), ("Withdrew", "20.00")])
    controls.start_rebuild(sandbox)

    out, swapped = rebuild.rebuild_step(sandbox.pk)  # the first event goes at once
    assert (out.applied, swapped) == (1, False)
    first = queries.rebuild_progress(sandbox)
    assert first.current == FoldStep(1, out.position, "Deposited", Decimal("35.00"), Decimal("0.00"), Decimal("35.00"))
    assert first.current.arithmetic == "$0.00 + $35.00 = $35.00"
    assert first.rebuilding == GenerationView(generation=2, balance=Decimal("35.00"), version=1)

    again, _ = rebuild.rebuild_step(sandbox.pk)  # too soon: nothing, and when to come back
    assert again.applied == 0 and not again.more
    assert time.time() < again.next_due <= time.time() + 0.5

    time.sleep(STEP_S)
    rebuild.rebuild_step(sandbox.pk)
    second = queries.rebuild_progress(sandbox)
    assert (second.done, second.total, second.running) == (2, 3, True)
    assert second.current.arithmetic == "$35.00 + $50.00 = $85.00"
    # Both models answer: the live one (all three events) and the new one so far.
    answer = queries.query(sandbox)
    assert (answer.balance, answer.read_version) == (Decimal("65.00"), 3)
    assert answer.rebuilding == GenerationView(generation=2, balance=Decimal("85.00"), version=2)

    time.sleep(STEP_S)
    out, swapped = rebuild.rebuild_step(sandbox.pk)  # the last event, and the swap in the same turn
    assert (out.applied, swapped) == (1, True)
    line = queries.read_side(sandbox).history[-1]
    step = FoldStep(3, line.position, "Withdrew", Decimal("20.00"), Decimal("85.00"), Decimal("65.00"))
    assert step.arithmetic == "$85.00 \u2212 $20.00 = $65.00"
    assert queries.rebuild_progress(sandbox) == Progress(3, 3, False)  # swapped: no step, no second generation
    assert queries.query(sandbox).rebuilding is None


def test_rebuild_now_ignores_the_pace():
    sandbox = seeded(2, [("Deposited", "1.00")] * 40)
    begun = time.monotonic()
    assert rebuild.rebuild_now(sandbox.pk) == Progress(40, 40, False)
    assert time.monotonic() - begun < 10  # at 2 a second it would take 20 s


def test_the_retroactive_catch_up_is_paced_and_shows_the_largest_deposit_before_and_after():
    amounts = [("Deposited", "35.00"), ("Deposited", "50.00"), ("Withdrew", "20.00"), ("Deposited", "40.00")]
    sandbox = seeded(2, amounts)
    controls.enable_retro_model(sandbox)
    seen = []
    for turn in range(4):
        if turn:
            time.sleep(STEP_S)
        result = projector.step(sandbox.pk)
        # Paced: one event a turn, then the loop sleeps until the next is allowed (none after the last).
        assert not result.more and (result.next_due is not None) == (turn < 3)
        view = queries.retro_model(sandbox)
        seen.append((view.progress.done, view.progress.running, view.progress.current))
    assert [(done, running) for done, running, _ in seen] == [(1, True), (2, True), (3, True), (4, False)]
    steps = [current for _, _, current in seen[:3]]
    assert [s.version for s in steps] == [1, 2, 3]
    assert [s.arithmetic for s in steps] == ["max(none, $35.00) = $35.00", "max($35.00, $50.00) = $50.00",
                                             "$50.00 stays"]  # fmt: skip
    assert (steps[1].before, steps[1].after, steps[1].model) == (Decimal("35.00"), Decimal("50.00"), LARGEST_DEPOSIT)
    _, largest = folded(sandbox)
    view = queries.retro_model(sandbox)
    assert (view.largest_deposit, view.largest_deposit_position, view.deposits_seen) == (
        largest.amount,
        largest.position,
        largest.deposits_seen,
    )
    assert view.progress.current is None  # caught up


async def test_the_retroactive_catch_up_at_10_a_second_is_still_running_after_a_second(running):
    amounts = [("Deposited", str(a)) for a in (5, 70, 12, 90, 3, 90, 1, 8, 60, 2)] * 3
    sandbox = await sync_to_async(seeded)(10, amounts)
    running()
    await sync_to_async(controls.enable_retro_model)(sandbox)
    await asyncio.sleep(1.0)
    midway = await sync_to_async(queries.retro_model)(sandbox)
    assert midway.progress.running and 5 <= midway.progress.done <= 20, midway.progress.done
    current = midway.progress.current
    assert current is not None and current.version == midway.progress.done
    assert current.after == midway.largest_deposit
    events = await sync_to_async(lambda: [domain_event(e) for e in read_stream(sandbox)])()
    largest_before = max((e.amount for e in events[: current.version - 1] if isinstance(e, Deposited)), default=None)
    event = events[current.version - 1]
    assert (current.event_type, current.amount) == ("Deposited", event.amount)
    if largest_before is None or event.amount > largest_before:  # a new maximum: the fold's max() moved
        assert (current.before, current.after) == (largest_before, event.amount)
    else:
        assert current.before == current.after == largest_before
    await eventually(lambda: not queries.retro_model(sandbox).progress.running, timeout=20)
    _, largest = await sync_to_async(folded)(sandbox)
    view = await sync_to_async(queries.retro_model)(sandbox)
    assert (view.largest_deposit, view.deposits_seen, view.progress.done) == (Decimal("90"), largest.deposits_seen, 30)
    assert view.largest_deposit_position == largest.position


# --- The control and the busy answer --------------------------------------------------------------------------


def test_the_replay_rate_control_sets_the_pace_and_refuses_anything_else():
    client = visitor()
    sandbox = Sandbox.objects.get(retired_at__isnull=True)
    response = client.post("/lab/replay-rate/", {"rate": "50"}, **HX)
    assert response.status_code == 200
    assert "50 events a second" in response.content.decode()
    assert Sandbox.objects.get(pk=sandbox.pk).replay_rate == 50
    assert client.post("/lab/replay-rate/", {"rate": "0"}).status_code == 303  # no JavaScript: back to the page
    assert Sandbox.objects.get(pk=sandbox.pk).replay_rate == 0
    for bad in ["-1", str(REPLAY_RATE_MAX + 1), "2.5", "fast", "", "1" * 50]:
        response = client.post("/lab/replay-rate/", {"rate": bad}, **HX)
        assert response.status_code == 400, bad
        assert "events a second" in response.content.decode(), bad
    assert client.post("/lab/replay-rate/", {"rate": "-1"}).status_code == 400  # the page, with the message
    assert Sandbox.objects.get(pk=sandbox.pk).replay_rate == 0
    assert client.get("/lab/replay-rate/").status_code == 405


def test_too_many_rebuilds_is_a_429_with_retry_after_and_only_rebuilds_that_can_move_count():
    others = [seeded(10, [("Deposited", "1.00")]) for _ in range(rebuild.MAX_CONCURRENT_REBUILDS)]
    for other in others:
        controls.start_rebuild(other)  # no projector runs here: they stay in progress
    client = visitor()
    for extra in (HX, {}):
        response = client.post("/lab/rebuild/", {}, **extra)
        assert response.status_code == 429
        assert response["Retry-After"] == str(rebuild.RebuildBusy.retry_after_s)
        assert "try again" in response.content.decode()
    # A paused sandbox's rebuild cannot move until its learner resumes: it no longer holds a slot.
    controls.pause_projection(others[0])
    response = client.post("/lab/rebuild/", {}, **HX)
    assert response.status_code == 200
    assert Sandbox.objects.exclude(pk__in=[o.pk for o in others]).get().rebuilding_generation == 2
