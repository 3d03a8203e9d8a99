"""Queries, read-your-writes, the retroactive model, and the read model as a fold of the events."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import commands, controls, projector, queries, rebuild
from lab.engine import projection
from lab.engine.upcasting import decode
from lab.live import wake_projector
from lab.models import HistoryLine, Sandbox, StoredEvent
from lab.types import Progress
from tests.integration.lab_events import append, eventually, new_sandbox

pytestmark = [
    pytest.mark.backend,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


def expected_fold(sandbox):
    rows = StoredEvent.objects.filter(sandbox=sandbox).order_by("position")
    events = [(r.position, r.version, decode(r.event_type, r.schema_version, r.payload)) for r in rows]
    return projection.fold_balance(events)


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000.00"), places=2)
event_lists = st.lists(
    st.tuples(st.sampled_from(["Deposited", "Withdrew"]), amounts, st.sampled_from([1, 2])), max_size=40
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=event_lists, batch=st.integers(min_value=1, max_value=17))
def test_the_read_model_after_projection_equals_the_fold_of_the_events(events, batch):
    sandbox = new_sandbox()
    for kind, amount, schema in events:
        append(sandbox, kind, amount, schema=schema if kind == "Deposited" else 1)
    projector.drain([sandbox.pk], batch=batch)
    state, lines = expected_fold(sandbox)
    read = queries.read_side(sandbox)
    assert (read.balance, read.version, read.behind) == (state.amount, state.version, 0)
    assert [(h.position, h.version, h.kind, h.amount, h.balance_after) for h in read.history] == [
        (line.position, line.version, line.kind, line.amount, line.balance_after) for line in lines
    ][-queries.HISTORY_LIMIT :]


def test_a_query_reports_both_versions_so_staleness_is_explicit():
    sandbox = new_sandbox()
    append(sandbox, "Deposited", "50.00")
    projector.drain([sandbox.pk])
    append(sandbox, "Withdrew", "20.00")
    answer = queries.query(sandbox)
    assert (answer.balance, answer.read_version, answer.write_version, answer.stale) == (
        Decimal("50.00"),
        1,
        2,
        True,
    )
    assert queries.read_side(sandbox).behind == 1


async def test_read_your_writes_waits_until_the_projector_reaches_the_version(running):
    sandbox = await sync_to_async(new_sandbox)(lag_ms=400)
    running()
    await sync_to_async(append)(sandbox, "Deposited", "50.00")
    wake_projector(sandbox.pk)
    answer = await queries.aquery(sandbox, 1, timeout_s=5)
    assert answer.read_version == 1 and not answer.stale
    assert answer.balance == Decimal("50.00")
    assert answer.waited_ms >= 250  # it really waited for the lag, woken by the projector's push


async def test_read_your_writes_gives_up_after_its_timeout_and_says_it_is_stale(running):
    sandbox = await sync_to_async(new_sandbox)()
    await sync_to_async(controls.pause_projection)(sandbox)
    running()
    await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    answer = await queries.aquery(sandbox, 1, timeout_s=0.3)
    assert answer.stale and answer.read_version == 0 and answer.write_version == 1
    assert 300 <= answer.waited_ms < 3000


async def test_read_your_writes_without_a_version_answers_at_once():
    sandbox = await sync_to_async(new_sandbox)()
    await sync_to_async(append)(sandbox)
    answer = await queries.aquery(sandbox, None)
    assert answer.stale and answer.waited_ms == 0


async def test_the_retroactive_model_catches_up_from_position_zero_while_the_balance_keeps_serving(running):
    sandbox = await sync_to_async(new_sandbox)()
    for amount in ["5.00", "70.00", "12.00", "70.00"]:
        await sync_to_async(append)(sandbox, "Deposited", amount)
    await sync_to_async(append)(sandbox, "Withdrew", "1.00")
    running(batch=2)
    wake_projector(sandbox.pk)
    await eventually(lambda: queries.query(sandbox).read_version == 5)
    before = await sync_to_async(queries.retro_model)(sandbox)
    assert not before.enabled and before.largest_deposit is None
    await sync_to_async(controls.enable_retro_model)(sandbox)
    view = await eventually(lambda: (v := queries.retro_model(sandbox)).progress.done == 5 and v)
    second = await sync_to_async(lambda: StoredEvent.objects.filter(sandbox=sandbox).order_by("position")[1])()
    assert view.largest_deposit == Decimal("70.00")
    assert view.largest_deposit_position == second.position  # the first time the maximum was reached
    assert view.deposits_seen == 4
    assert not view.progress.running
    assert (await sync_to_async(queries.query)(sandbox)).balance == Decimal("156.00")


async def test_a_rebuild_swaps_in_atomically_while_queries_keep_answering(running):
    sandbox = await sync_to_async(new_sandbox)()
    await sync_to_async(lambda: [append(sandbox, "Deposited", "1.00") for _ in range(600)])()
    await sync_to_async(projector.drain)([sandbox.pk])
    answers: list[tuple[Decimal, int]] = []
    stop = asyncio.Event()

    async def keep_querying():
        while not stop.is_set():
            a = await sync_to_async(queries.query)(sandbox)
            answers.append((a.balance, a.read_version))
            await asyncio.sleep(0)

    querying = asyncio.ensure_future(keep_querying())
    running(rebuild_batch=25)
    progress = await sync_to_async(controls.start_rebuild)(sandbox)
    assert progress.running and progress.total == 600
    assert (await sync_to_async(queries.projector_status)(sandbox)).state == "rebuilding"
    seen_progress = set()

    def finished():
        p = queries.rebuild_progress(sandbox)
        seen_progress.add(p.done)
        return not p.running

    await eventually(finished, timeout=30, interval=0.005)
    stop.set()
    await querying
    assert answers and all(a == (Decimal("600.00"), 600) for a in answers)
    assert len(seen_progress) > 2  # progress was visible on the way
    fresh = await sync_to_async(lambda: type(sandbox).objects.get(pk=sandbox.pk))()
    assert (fresh.live_generation, fresh.rebuilding_generation) == (2, None)
    generations = await sync_to_async(
        lambda: set(HistoryLine.objects.filter(sandbox=sandbox).values_list("generation", flat=True))
    )()
    assert generations == {2}
    assert await sync_to_async(queries.rebuild_progress)(sandbox) == Progress(600, 600, False)


def test_rebuilds_are_capped_and_the_refusal_is_a_clear_message():
    sandboxes = [new_sandbox() for _ in range(rebuild.MAX_CONCURRENT_REBUILDS + 1)]
    for s in sandboxes[:-1]:
        controls.start_rebuild(s)
    with pytest.raises(controls.RebuildBusy, match="try again"):
        controls.start_rebuild(sandboxes[-1])
    assert controls.start_rebuild(sandboxes[0]).running  # asking again for a running one is not a new rebuild


def test_a_sandbox_reset_in_the_middle_of_its_rebuild_does_not_hold_a_rebuild_slot():
    abandoned = [new_sandbox() for _ in range(rebuild.MAX_CONCURRENT_REBUILDS)]
    for s in abandoned:
        controls.start_rebuild(s)
    Sandbox.objects.filter(pk__in=[s.pk for s in abandoned]).update(retired_at=timezone.now())  # as a reset does
    assert controls.start_rebuild(new_sandbox()).running


def test_a_rebuild_chases_a_live_model_that_keeps_moving():
    sandbox = new_sandbox()
    for _ in range(30):
        append(sandbox)
    projector.drain([sandbox.pk])
    controls.start_rebuild(sandbox)
    rebuild.rebuild_step(sandbox.pk, limit=10)
    for _ in range(5):
        append(sandbox)
    projector.drain([sandbox.pk], batch=3)
    assert queries.rebuild_progress(sandbox) == Progress(35, 35, False)
    assert queries.query(sandbox).read_version == 35
    state, _ = expected_fold(sandbox)
    assert queries.query(sandbox).balance == state.amount


async def test_a_command_through_the_write_side_wakes_the_projector_and_read_your_writes_sees_it(running):
    sandbox = await sync_to_async(new_sandbox)(lag_ms=200)
    running(fallback_poll_s=60.0)  # only the append path's wake-up can bring the event in time
    await asyncio.sleep(0.1)  # past the start-up scan
    outcome = await sync_to_async(commands.send_command)(sandbox, "deposit", "50")
    assert outcome.accepted
    answer = await queries.aquery(sandbox, outcome.write_version, timeout_s=5)
    assert (answer.balance, answer.read_version, answer.stale) == (Decimal("50.00"), outcome.write_version, False)
    assert answer.waited_ms < 5000
    history = (await sync_to_async(queries.read_side)(sandbox)).history
    assert [(h.position, h.kind, h.amount) for h in history] == [(outcome.last_position, "deposit", Decimal("50.00"))]
