from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import commands, controls, live, store, timeline
from lab.engine import decider
from lab.engine.messages import Deposited
from lab.engine.snapshots import fingerprint
from lab.engine.upcasting import UnreadableEvent
from lab.models import CommandRecord, LoadReport, Sandbox, Snapshot, StoredEvent

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


@pytest.fixture
def sandbox():
    return Sandbox.objects.create(session_key="s1")


def deposit(sandbox, amount="50", **kwargs):
    return commands.send_command(sandbox, "deposit", amount, **kwargs)


def test_a_deposit_is_stored_and_reported_with_its_new_version(sandbox):
    outcome = deposit(sandbox, "50")
    assert outcome.accepted
    assert outcome.message == "Deposited $50.00 → v=1"
    assert outcome.write_version == 1
    assert [e.version for e in outcome.events] == [1]
    assert outcome.last_position == outcome.events[0].position
    row = StoredEvent.objects.get(sandbox_id=sandbox.pk)
    assert (row.event_type, row.schema_version, row.payload) == ("Deposited", 1, {"amount": "50.00"})
    assert timeline.write_side(sandbox).balance == Decimal("50.00")


def test_an_overdraft_is_rejected_names_its_rule_and_appends_nothing(sandbox):
    deposit(sandbox, "10")
    outcome = commands.send_command(sandbox, "withdraw", "10.01")
    assert not outcome.accepted
    assert outcome.rule == "no-overdraft"
    assert outcome.message == "Rejected: would overdraw the account"
    assert outcome.write_version == 1
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 1


@pytest.mark.parametrize("text", ["-1", "0", "NaN", "Infinity", "1e9999", "1.001", "abc", "10000.01"])
def test_bad_amount_text_is_rejected_without_an_event(sandbox, text):
    outcome = deposit(sandbox, text)
    assert not outcome.accepted
    assert outcome.rule in {"amount-positive", "amount-cents", "amount-max"}
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()


def test_the_same_command_id_twice_returns_the_first_outcome_and_appends_once(sandbox):
    first = deposit(sandbox, "50", command_id="cmd-1")
    again = deposit(sandbox, "50", command_id="cmd-1")
    assert again.replayed and not first.replayed
    assert (again.accepted, again.message, again.write_version) == (first.accepted, first.message, 1)
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 1


def test_a_rejection_is_remembered_for_its_command_id_too(sandbox):
    first = commands.send_command(sandbox, "withdraw", "5", command_id="w-1")
    deposit(sandbox, "100")
    again = commands.send_command(sandbox, "withdraw", "5", command_id="w-1")
    assert not first.accepted and not again.accepted and again.replayed
    assert again.rule == "no-overdraft"
    assert CommandRecord.objects.filter(sandbox=sandbox).count() == 2


def test_a_stale_expected_version_is_a_concurrency_outcome_not_an_error(sandbox):
    deposit(sandbox, "50")
    deposit(sandbox, "50")
    outcome = deposit(sandbox, "50", expected_version=1)
    assert not outcome.accepted
    assert outcome.rule == "concurrency"
    assert outcome.message == "The account changed meanwhile (now v=2): retry."
    assert outcome.write_version == 2
    assert deposit(sandbox, "50", expected_version=2).accepted


def test_a_concurrency_refusal_is_not_remembered_so_the_same_id_can_retry(sandbox):
    deposit(sandbox, "50")
    assert deposit(sandbox, "5", command_id="c", expected_version=0).rule == "concurrency"
    assert deposit(sandbox, "5", command_id="c", expected_version=1).accepted


@override_settings(LAB_MAX_EVENTS_PER_SANDBOX=3)
def test_a_full_sandbox_refuses_more_events_with_a_clear_message(sandbox):
    for _ in range(3):
        assert deposit(sandbox, "1").accepted
    outcome = deposit(sandbox, "1")
    assert (outcome.accepted, outcome.rule) == (False, "limit")
    assert outcome.message == "This sandbox is full (3 events): reset it to start again."
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 3


@override_settings(LAB_MAX_EVENTS_PER_SANDBOX=1000)
def test_the_limit_message_groups_thousands(sandbox):
    store.append(sandbox, [Deposited(amount=Decimal("1.00"))] * 1000, 0, "bulk")
    outcome = deposit(sandbox, "1")
    assert outcome.message == "This sandbox is full (1,000 events): reset it to start again."


def test_snapshots_are_taken_every_interval_and_used_on_load(sandbox):
    controls.set_snapshot_interval(sandbox, 4)
    for _ in range(10):
        deposit(sandbox, "1")
    assert list(Snapshot.objects.filter(sandbox=sandbox).order_by("version").values_list("version", flat=True)) == [
        4,
        8,
    ]
    write = timeline.write_side(sandbox)
    assert (write.version, write.balance) == (10, Decimal("10.00"))
    assert write.load.summary == "snapshot at v8 + 2 events; 10 without"
    report = LoadReport.objects.get(sandbox=sandbox)
    assert (report.snapshot_version, report.events_replayed, report.events_without_snapshot) == (8, 1, 9)


def test_an_interval_of_zero_takes_no_snapshots(sandbox):
    controls.set_snapshot_interval(sandbox, 0)
    for _ in range(12):
        deposit(sandbox, "1")
    assert not Snapshot.objects.filter(sandbox=sandbox).exists()
    assert timeline.write_side(sandbox).load.summary == "no snapshot: 12 events replayed"


@pytest.mark.parametrize("bad", [-1, 1001, 2.5, "10", True])
def test_a_snapshot_interval_out_of_range_is_refused(sandbox, bad):
    with pytest.raises(ValueError, match="from 0 to 1000"):
        controls.set_snapshot_interval(sandbox, bad)


def test_a_snapshot_with_another_fingerprint_is_ignored_and_replaced(sandbox):
    controls.set_snapshot_interval(sandbox, 0)
    for _ in range(5):
        deposit(sandbox, "2")
    Snapshot.objects.create(
        sandbox=sandbox,
        stream_id=sandbox.stream_id,
        version=5,
        state={"balance": "999.00", "version": 5, "deposits": 5, "withdrawals": 0},
        fingerprint="0" * 64,
    )
    write = timeline.write_side(sandbox)
    assert write.balance == Decimal("10.00")
    assert write.load.snapshot_version is None
    assert [s.valid for s in timeline.snapshots(sandbox)] == [False]
    deposit(sandbox, "2")
    replaced = Snapshot.objects.get(sandbox=sandbox, version=5)
    assert replaced.fingerprint == fingerprint() and replaced.reason == "replaced"
    assert replaced.state["balance"] == "10.00"
    assert timeline.write_side(sandbox).load.snapshot_version == 5


def test_take_snapshot_on_demand_and_refuse_it_on_an_empty_stream(sandbox):
    with pytest.raises(ValueError, match="no events"):
        commands.take_snapshot(sandbox)
    deposit(sandbox, "7")
    view = commands.take_snapshot(sandbox)
    assert (view.version, view.reason, view.valid) == (1, "manual", True)
    assert view.state["balance"] == "7.00"


def test_the_event_page_is_newest_first_and_filters_by_type(sandbox):
    for _ in range(3):
        deposit(sandbox, "10")
    commands.send_command(sandbox, "withdraw", "5")
    page = timeline.event_page(sandbox, page=1, per_page=3)
    assert [e.version for e in page.events] == [4, 3, 2]
    assert (page.page, page.pages, page.total) == (1, 2, 4)
    assert [e.version for e in timeline.event_page(sandbox, page=99, per_page=3).events] == [1]
    only = timeline.event_page(sandbox, event_type="Withdrew")
    assert [(e.event_type, e.version) for e in only.events] == [("Withdrew", 4)]


def test_old_deposits_stay_v1_and_show_upcast_after_switching_schema(sandbox):
    deposit(sandbox, "50")
    controls.set_deposit_schema(sandbox, 2)
    deposit(sandbox, "12.34")
    old, new = timeline.all_events(sandbox)
    assert (old.schema_version, old.raw_payload) == (1, {"amount": "50.00"})
    assert old.upcast_payload == {"amount_cents": 5000, "currency": "USD"} and old.was_upcast
    assert (new.schema_version, new.raw_payload) == (2, {"amount_cents": 1234, "currency": "USD"})
    assert not new.was_upcast
    assert timeline.write_side(sandbox).balance == Decimal("62.34")


@pytest.mark.parametrize("bad", [0, 3, True, "2"])
def test_a_deposit_schema_other_than_1_or_2_is_refused(sandbox, bad):
    with pytest.raises(ValueError, match="1 or 2"):
        controls.set_deposit_schema(sandbox, bad)


@pytest.mark.parametrize(("text", "ms"), [("0", 0), ("2", 2000), ("0.1", 100), ("10", 10000), (" 2.5 ", 2500)])
def test_the_lag_is_set_in_tenths_of_a_second(sandbox, text, ms):
    assert controls.set_lag(sandbox, text) == ms
    assert Sandbox.objects.get(pk=sandbox.pk).lag_ms == ms


@pytest.mark.parametrize("text", ["-1", "1e9", "abc", "NaN", "inf", "10.1", "0.05", "", "-0.1"])
def test_a_lag_outside_0_to_10_s_or_finer_than_tenths_is_refused(sandbox, text):
    with pytest.raises(ValueError, match="from 0 to 10"):
        controls.set_lag(sandbox, text)
    assert Sandbox.objects.get(pk=sandbox.pk).lag_ms == 2000


def test_time_travel_uses_the_nearest_snapshot_at_or_below_the_version(sandbox):
    controls.set_snapshot_interval(sandbox, 3)
    for i in range(1, 8):
        deposit(sandbox, str(i))
    view = timeline.state_at(sandbox, 5)
    assert (view.version, view.balance, view.snapshot_version, view.events_applied) == (5, Decimal("15.00"), 3, 2)
    assert timeline.state_at(sandbox, 2).snapshot_version is None
    assert timeline.state_at(sandbox, 0).balance == Decimal("0.00")
    assert timeline.state_at(sandbox, 99).version == 7


def test_time_travel_by_time_picks_the_last_event_recorded_before(sandbox):
    deposit(sandbox, "1")
    deposit(sandbox, "2")
    StoredEvent.objects.filter(sandbox_id=sandbox.pk).order_by("position")  # read only
    first_at = StoredEvent.objects.get(sandbox_id=sandbox.pk, version=1).recorded_at
    assert timeline.state_at_time(sandbox, first_at).version == 1
    assert timeline.state_at_time(sandbox, first_at - dt.timedelta(seconds=1)).version == 0


def test_a_replay_frame_shows_the_event_at_k_and_the_state_after_it(sandbox):
    deposit(sandbox, "10")
    commands.send_command(sandbox, "withdraw", "4")
    frame = timeline.replay_frame(sandbox, 2)
    assert frame.event is not None and frame.event.event_type == "Withdrew"
    assert (frame.state.version, frame.state.balance, frame.at_end) == (2, Decimal("6.00"), True)
    assert frame.amount == Decimal("4.00")
    controls.set_deposit_schema(sandbox, 2)
    deposit(sandbox, "12.50")
    assert timeline.replay_frame(sandbox, 3).amount == Decimal("12.50")  # stored as cents, shown as money
    start = timeline.replay_frame(sandbox, 0)
    state, event = start
    assert event is None and state.version == 0 and not start.at_end


def poison(sandbox, version):
    StoredEvent.objects.create(
        sandbox=sandbox,
        stream_id=sandbox.stream_id,
        version=version,
        event_type="Deposited",
        schema_version=1,
        payload={"amount": "lots"},
        command_id="poison",
        correlation_id=uuid.uuid4(),
        causation_id=uuid.uuid4(),
        recorded_at=timezone.now(),
    )


def test_a_poison_event_is_reported_as_unreadable_and_never_crashes_the_write_side(sandbox):
    deposit(sandbox, "10")
    poison(sandbox, 2)
    with pytest.raises(UnreadableEvent, match="lots"):
        store.domain_event(StoredEvent.objects.get(sandbox_id=sandbox.pk, version=2))
    outcome = deposit(sandbox, "5")
    assert (outcome.accepted, outcome.rule) == (False, "unreadable")
    assert "v=2" in outcome.message
    write = timeline.write_side(sandbox)
    assert (write.version, write.balance) == (1, Decimal("10.00"))
    newest = timeline.event_page(sandbox).events[0]
    assert newest.raw_payload == {"amount": "lots"} and "unreadable" in newest.upcast_payload
    assert timeline.state_at(sandbox, 2).version == 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=0, max_value=5),
    st.lists(st.tuples(st.sampled_from(["deposit", "withdraw"]), st.integers(1, 5000)), max_size=25),
)
def test_the_stored_write_model_equals_the_fold_of_its_events_whatever_the_snapshots(interval, sent):
    sandbox = Sandbox.objects.create(snapshot_interval=interval)
    for kind, cents in sent:
        commands.send_command(sandbox, kind, f"{cents / 100:.2f}")
    events = [store.domain_event(row) for row in store.read_stream(sandbox)]
    folded = decider.fold(events)
    write = timeline.write_side(sandbox)
    assert (write.version, write.balance) == (folded.version, folded.balance)
    assert folded.balance >= 0
    for k in range(folded.version + 1):
        assert timeline.state_at(sandbox, k).balance == decider.fold(events[:k]).balance


def test_a_stored_event_means_the_same_domain_event_whatever_schema_it_is_read_as(sandbox):
    deposit(sandbox, "50")
    controls.set_deposit_schema(sandbox, 2)
    deposit(sandbox, "50")
    for row in store.read_stream(sandbox):
        for target in (None, 1, 2):
            assert store.domain_event(row, target) == Deposited(amount=Decimal("50.00"))


@pytest.mark.parametrize("bad", ["x" * 65, "nul\x00id", "line\nbreak"])
def test_a_command_id_the_store_cannot_hold_is_refused_before_anything_is_written(sandbox, bad):
    with pytest.raises(ValueError, match="at most 64 printable"):
        deposit(sandbox, "5", command_id=bad)
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()


def test_an_unknown_command_kind_is_a_value_error(sandbox):
    with pytest.raises(ValueError, match="deposit or withdraw"):
        commands.send_command(sandbox, "transfer", "5")


def receive(layer, channel, count, timeout):
    """Up to `count` messages within `timeout` s, received in one event loop (a Redis channel is bound to one)."""

    async def collect():
        got = []
        try:
            while len(got) < count:
                got.append(await asyncio.wait_for(layer.receive(channel), timeout))
        except TimeoutError:
            pass
        return got

    return async_to_sync(collect)()


@pytest.fixture
def subscribe(sandbox):
    """A fresh listener on the sandbox's group, like an open lab page; call it, then call what it returns once."""
    layer = get_channel_layer()

    def listen():
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(live.group_name(sandbox.pk), channel)
        return lambda count=1, timeout=1.0: receive(layer, channel, count, timeout)

    return listen


def test_open_pages_hear_of_an_accepted_command_only_after_it_committed(
    sandbox, subscribe, django_capture_on_commit_callbacks
):
    before, after = subscribe(), subscribe()
    with django_capture_on_commit_callbacks() as callbacks:
        deposit(sandbox, "5")
        assert before(timeout=0.2) == []  # nothing is said before the commit
    for callback in callbacks:
        callback()
    assert after() == [{"type": "lab.changed", "reason": "command", "write_version": 1, "projects_at_once": False}]


@pytest.mark.parametrize(
    ("settings_", "at_once"),
    [
        ({"lag_ms": 2000}, False),
        ({"lag_ms": 0}, True),
        ({"lag_ms": 0, "projector_paused": True}, False),
        ({"lag_ms": 0, "projector_crashed_until": timezone.now() + dt.timedelta(seconds=5)}, False),
    ],
)
def test_a_commands_hint_says_whether_the_projector_applies_it_at_once(
    sandbox, subscribe, django_capture_on_commit_callbacks, settings_, at_once
):
    # Open pages hold the command's push for the projection only when it is due at once (LabConsumer).
    Sandbox.objects.filter(pk=sandbox.pk).update(**settings_)
    sandbox.refresh_from_db()
    page = subscribe()
    with django_capture_on_commit_callbacks(execute=True):
        deposit(sandbox, "5")
    assert page()[0]["projects_at_once"] is at_once


def test_a_rejected_command_tells_nobody(sandbox, subscribe, django_capture_on_commit_callbacks):
    page = subscribe()
    with django_capture_on_commit_callbacks(execute=True):
        commands.send_command(sandbox, "withdraw", "5")
    assert page(timeout=0.3) == []


def test_each_setting_change_is_announced_after_commit(sandbox, subscribe, django_capture_on_commit_callbacks):
    page = subscribe()
    with django_capture_on_commit_callbacks(execute=True):
        controls.set_lag(sandbox, "1.5")
        controls.set_snapshot_interval(sandbox, 5)
        controls.set_deposit_schema(sandbox, 2)
    assert [m["reason"] for m in page(count=3)] == ["settings"] * 3
