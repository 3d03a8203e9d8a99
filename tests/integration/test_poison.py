"""The poison event a learner can append (InterestPaid: the write side knows it, the read side does not), and the
two ways out of the stall it causes: Retry (stalls again, same code) and Skip (to the dead-letter list: every read
model of the sandbox, a rebuild and the retroactive model included, passes over it for good)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from lab import commands, controls, projections, queries, store, timeline
from lab.engine import projection
from lab.live import wake_projector
from lab.models import LARGEST_DEPOSIT, RETRO_GENERATION, DeadLetter, HistoryLine, Sandbox, StoredEvent
from lab.projector import drain
from tests.integration.lab_events import append, eventually, new_sandbox, visitor

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]

NO_HANDLER = "the balance projection has no handler for InterestPaid"
HX = {"HTTP_HX_REQUEST": "true"}


def deposit(sandbox: Sandbox, amount: str) -> None:
    assert commands.send_command(sandbox, "deposit", amount).accepted


def poisoned(**fields) -> tuple[Sandbox, int]:
    """A sandbox holding deposit $10, the poison ($1 of interest), deposit $5; projected as far as it can go."""
    sandbox = new_sandbox(replay_rate=0, **fields)
    deposit(sandbox, "10")
    position = controls.append_poison_event(sandbox).position
    deposit(sandbox, "5")
    drain([sandbox.pk])
    return sandbox, position


def logged(sandbox: Sandbox) -> list[tuple[int, int, object]]:
    return [(row.position, row.version, store.domain_event(row)) for row in store.read_stream(sandbox)]


# --- The stall, and Retry ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("close_thread_connections")
async def test_a_poison_event_stalls_its_own_sandbox_with_the_reason_while_another_keeps_projecting(running):
    sick = await sync_to_async(new_sandbox)()
    healthy = await sync_to_async(new_sandbox)()
    running()
    await sync_to_async(deposit)(sick, "10")
    poison = await sync_to_async(controls.append_poison_event)(sick)  # its commit wakes the projector
    await sync_to_async(deposit)(sick, "5")
    status = await eventually(lambda: (s := queries.projector_status(sick)).state == "stalled" and s)
    assert (status.stalled_position, status.stalled_projection) == (poison.position, "balance")
    assert NO_HANDLER in status.stalled_reason
    assert [(d.position, d.version, d.event_type) for d in status.dead_letters] == [
        (poison.position, 2, "InterestPaid")
    ]
    assert status.can_resolve and status.read_version == 1  # the deposit before it, nothing after it
    for n in range(1, 4):
        await sync_to_async(append)(healthy)
        wake_projector(healthy.pk)
        await eventually(lambda n=n: queries.query(healthy).read_version == n)
    # Retry with the same code: it is tried again and fails the same way.
    assert await sync_to_async(controls.retry_dead_letter)(sick) == 1
    again = await eventually(lambda: (s := queries.projector_status(sick)).state == "stalled" and s)
    assert (again.stalled_position, again.stalled_reason) == (status.stalled_position, status.stalled_reason)
    assert await sync_to_async(lambda: queries.query(sick).read_version)() == 1
    # Skip: the projection passes over it and the deposit after it is applied.
    assert await sync_to_async(controls.skip_dead_letter)(sick) == [poison.position]
    await eventually(lambda: queries.query(sick).read_version == 3)
    answer = await sync_to_async(queries.query)(sick)
    assert (answer.balance, answer.write_version, answer.stale) == (Decimal("15.00"), 3, False)


def test_retry_resolves_the_dead_letter_and_the_next_batch_stalls_again_on_the_same_event():
    sandbox, position = poisoned()
    before = DeadLetter.objects.get(sandbox=sandbox)
    assert controls.retry_dead_letter(sandbox) == 1
    assert queries.projector_status(sandbox).state == "running"  # until the projector tries it again
    drain([sandbox.pk])
    after = DeadLetter.objects.get(sandbox=sandbox)  # the same row, open again: not a second one
    assert (after.pk, after.position, after.error, after.resolved_at, after.skipped_at) == (
        before.pk, position, before.error, None, None,
    )  # fmt: skip
    assert queries.projector_status(sandbox).state == "stalled"
    assert queries.query(sandbox).read_version == 1


# --- Skip -------------------------------------------------------------------------------------------------------


def test_skip_moves_the_checkpoint_past_it_and_the_read_model_says_what_it_left_out():
    sandbox, position = poisoned()
    assert controls.skip_dead_letter(sandbox) == [position]
    assert controls.skip_dead_letter(sandbox) == []  # nothing is stalled any more
    drain([sandbox.pk])
    status = queries.projector_status(sandbox)
    last = store.read_stream(sandbox)[-1].position
    assert (status.state, status.checkpoint_position, status.read_version) == ("running", last, 3)
    assert (status.dead_letters, status.stalled_reason, status.can_resolve) == ([], None, False)
    assert [(s.position, s.version, s.event_type) for s in status.skipped] == [(position, 2, "InterestPaid")]
    assert NO_HANDLER in status.skipped[0].error and status.skipped[0].skipped_at is not None
    # Honest: the read model leaves the skipped $1.00 out, so it differs from the write model.
    read, write = queries.read_side(sandbox), timeline.write_side(sandbox)
    assert (read.balance, read.version, read.behind) == (Decimal("15.00"), 3, 0)
    assert (write.balance, write.version) == (Decimal("16.00"), 3)
    assert [(h.version, h.kind) for h in read.history] == [(1, "deposit"), (3, "deposit")]
    deposit(sandbox, "4")
    drain([sandbox.pk])
    assert (queries.query(sandbox).balance, queries.query(sandbox).read_version) == (Decimal("19.00"), 4)
    assert set(HistoryLine.objects.filter(sandbox=sandbox).values_list("applied_count", flat=True)) == {1}


def test_a_rebuild_after_a_skip_completes_and_equals_the_fold_of_the_log_without_the_skipped_event():
    sandbox, position = poisoned()
    controls.skip_dead_letter(sandbox)
    drain([sandbox.pk])
    deposit(sandbox, "2")
    drain([sandbox.pk])
    before = queries.read_side(sandbox)
    controls.start_rebuild(sandbox)
    drain([sandbox.pk])
    assert not queries.rebuild_progress(sandbox).running
    assert Sandbox.objects.get(pk=sandbox.pk).live_generation == 2
    balance, lines = projection.fold_balance(logged(sandbox), skipped={position})
    after = queries.read_side(sandbox)
    assert (after.balance, after.version) == (balance.amount, balance.version) == (Decimal("17.00"), 4)
    assert [(h.position, h.amount, h.balance_after) for h in after.history] == [
        (x.position, x.amount, x.balance_after) for x in lines
    ]
    assert [(h.position, h.balance_after) for h in after.history] == [
        (h.position, h.balance_after) for h in before.history
    ]


def test_the_retroactive_model_stalls_on_it_too_and_a_skip_lets_both_models_pass_over_it():
    sandbox, position = poisoned()
    deposit(sandbox, "50")
    controls.enable_retro_model(sandbox)
    drain([sandbox.pk])
    status = queries.projector_status(sandbox)
    assert [(d.projection, d.position) for d in status.dead_letters] == [
        ("balance", position), (LARGEST_DEPOSIT, position),
    ]  # fmt: skip
    assert status.stalled_projection == "balance"
    assert "the largest-deposit projection has no handler for InterestPaid" in status.dead_letters[1].error
    assert controls.skip_dead_letter(sandbox) == [position]
    drain([sandbox.pk])
    events = logged(sandbox)
    largest = projection.fold_largest_deposit(events, skipped={position})
    retro = queries.retro_model(sandbox)
    assert (retro.largest_deposit, retro.deposits_seen, retro.progress.done) == (Decimal("50.00"), 3, 4)
    assert (largest.amount, largest.position, largest.deposits_seen) == (
        retro.largest_deposit, retro.largest_deposit_position, retro.deposits_seen,
    )  # fmt: skip
    assert [s.position for s in queries.projector_status(sandbox).skipped] == [position]  # one line per event


def test_a_retroactive_model_enabled_after_the_skip_passes_over_it_without_stalling():
    sandbox, _ = poisoned()
    controls.skip_dead_letter(sandbox)
    controls.enable_retro_model(sandbox)
    drain([sandbox.pk])
    retro = queries.retro_model(sandbox)
    assert (retro.largest_deposit, retro.deposits_seen, retro.progress.done) == (Decimal("10.00"), 2, 3)
    assert not DeadLetter.objects.filter(sandbox=sandbox, projection=LARGEST_DEPOSIT).exists()


def test_a_stalled_retroactive_model_shows_in_the_status_while_the_balance_keeps_running():
    sandbox = new_sandbox()
    deposit(sandbox, "10")
    position = controls.append_poison_event(sandbox).position
    controls.enable_retro_model(sandbox)
    out = projections.project(sandbox.pk, LARGEST_DEPOSIT, RETRO_GENERATION, lag=None, limit=100)
    assert out.stalled and out.poison[0] == position
    status = queries.projector_status(sandbox)
    assert (status.state, status.stalled_projection, status.stalled_position) == ("running", LARGEST_DEPOSIT, position)
    assert [d.projection for d in status.dead_letters] == [LARGEST_DEPOSIT]


# --- The write side keeps working ---------------------------------------------------------------------------------


def test_commands_time_travel_replay_and_the_log_work_with_the_poison_in_the_log():
    sandbox = new_sandbox(snapshot_interval=2)
    deposit(sandbox, "10")
    poison = controls.append_poison_event(sandbox)
    assert (poison.event_type, poison.version, poison.raw_payload, poison.upcast_payload) == (
        "InterestPaid", 2, {"amount": "1.00"}, {"amount": "1.00"},
    )  # fmt: skip
    assert [s.version for s in timeline.snapshots(sandbox) if s.valid] == [2]  # crossed the interval: one was due
    deposit(sandbox, "5")
    assert timeline.write_side(sandbox).balance == Decimal("16.00")
    assert commands.send_command(sandbox, "withdraw", "16").accepted  # the write model counts the interest
    assert timeline.state_at(sandbox, 2).balance == Decimal("11.00")
    frame = timeline.replay_frame(sandbox, 2)
    assert (frame.event.event_type, frame.amount, frame.state.balance) == (
        "InterestPaid",
        Decimal("1.00"),
        Decimal("11.00"),
    )
    page = timeline.event_page(sandbox, event_type="InterestPaid")
    assert (page.total, [e.position for e in page.events]) == (1, [poison.position])
    assert timeline.write_side(sandbox).balance == Decimal("0.00")


def test_a_second_poison_is_refused_until_the_first_is_skipped():
    sandbox = new_sandbox()
    first = controls.append_poison_event(sandbox)
    with pytest.raises(ValueError, match=f"InterestPaid #{first.position} is not resolved yet"):
        controls.append_poison_event(sandbox)  # the projector has not even reached it
    drain([sandbox.pk])
    controls.retry_dead_letter(sandbox)
    with pytest.raises(ValueError, match="not resolved yet"):
        controls.append_poison_event(sandbox)  # retrying does not resolve it: the code has not changed
    drain([sandbox.pk])
    controls.skip_dead_letter(sandbox)
    second = controls.append_poison_event(sandbox)
    assert (second.version, StoredEvent.objects.filter(event_type="InterestPaid").count()) == (2, 2)
    drain([sandbox.pk])
    assert queries.projector_status(sandbox).stalled_position == second.position


def test_a_full_sandbox_refuses_the_poison_and_appends_nothing(settings):
    settings.LAB_MAX_EVENTS_PER_SANDBOX = 10
    sandbox = new_sandbox()
    for _ in range(10):
        append(sandbox)
    with pytest.raises(ValueError, match="full"):
        controls.append_poison_event(sandbox)
    assert store.head_version(sandbox) == 10


# --- The views ----------------------------------------------------------------------------------------------------


def sandbox_of_the_visitor() -> Sandbox:
    return Sandbox.objects.get(retired_at__isnull=True)


def test_poison_retry_and_skip_through_htmx():
    client = visitor()
    Sandbox.objects.update(lag_ms=0)
    assert client.post("/lab/command/", {"kind": "deposit", "amount": "10"}, **HX).status_code == 200
    response = client.post("/lab/projector/", {"action": "poison"}, **HX)
    poison = StoredEvent.objects.get(event_type="InterestPaid")
    assert response.status_code == 200
    assert f"Appended InterestPaid #{poison.position} (v=2)" in response.content.decode()
    refused = client.post("/lab/projector/", {"action": "poison"}, **HX)
    assert refused.status_code == 400 and "not resolved yet" in refused.content.decode()
    drain()
    response = client.post("/lab/projector/", {"action": "retry"}, **HX)
    assert response.status_code == 200 and "stalls again with the same reason" in response.content.decode()
    drain()
    response = client.post("/lab/projector/", {"action": "skip"}, **HX)
    assert response.status_code == 200
    assert f"Skipped event #{poison.position} to the dead-letter list" in response.content.decode()
    drain()
    assert queries.query(sandbox_of_the_visitor()).read_version == 2
    nothing = client.post("/lab/projector/", {"action": "skip"}, **HX)
    assert nothing.status_code == 200 and "Nothing to skip" in nothing.content.decode()


def test_poison_and_skip_without_javascript_redirect_back_and_a_refusal_is_a_400_page():
    client = visitor()
    response = client.post("/lab/projector/", {"action": "poison", "next": "/lab/"})
    assert response.status_code == 303 and response["Location"].startswith("/lab/#")
    assert StoredEvent.objects.filter(event_type="InterestPaid").count() == 1
    refused = client.post("/lab/projector/", {"action": "poison", "next": "/lab/"})
    assert refused.status_code == 400 and "<html" in refused.content.decode()
    assert "not resolved yet" in refused.content.decode()
    Sandbox.objects.update(lag_ms=0)
    drain()
    response = client.post("/lab/projector/", {"action": "skip", "next": "/lab/"})
    assert response.status_code == 303
    assert DeadLetter.objects.filter(skipped_at__isnull=False).count() == 1
    assert client.post("/lab/projector/", {"action": "skip-everything"}).status_code == 400
