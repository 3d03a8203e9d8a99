"""CQRS without event sourcing (lab.modes, lab.copying): a state-only sandbox keeps only its current state, the
projector copies it to the read model after the lag (stale reads remain), and everything that needs a log refuses
with its reason. Switching mode is a reset to a fresh sandbox, so Undo works; switching back appends events again."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.utils import timezone

from lab import commands, controls, exchange, modes, queries, sandboxes, timeline
from lab.copying import copy_state
from lab.models import BalanceView, HistoryLine, Sandbox, StoredEvent
from lab.projector import step
from lab.store import pending_sandboxes
from tests.integration.lab_events import eventually, new_sandbox, visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def learner() -> Client:
    return visitor(CONCEPT)


def current(client: Client) -> Sandbox:
    return Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX])


def text(response) -> str:
    return html.unescape(response.content.decode())


def state_only(**fields) -> Sandbox:
    return new_sandbox(mode=modes.STATE_ONLY, **fields)


def row(sandbox: Sandbox) -> Sandbox:
    return Sandbox.objects.get(pk=sandbox.pk)


# --- The switch -----------------------------------------------------------------------------------------------


def test_switching_mode_starts_a_fresh_sandbox_in_that_mode_and_undo_brings_the_old_one_back(learner):
    old = current(learner)
    commands.send_command(old, "deposit", "50")
    response = learner.post("/lab/mode/", {"mode": "state-only"})
    assert response.status_code == 303 and response["Location"].endswith("#lab-reset-section")
    fresh = current(learner)
    assert fresh.pk != old.pk and fresh.mode == "state-only" and fresh.state_version == 0
    assert row(old).retired_at is not None
    assert "Started a fresh sandbox in state-only mode" in text(learner.get(response["Location"]))
    assert learner.post("/lab/reset/undo/", **HX).status_code == 200
    assert current(learner).pk == old.pk and current(learner).mode == "event-sourced"
    assert timeline.write_side(current(learner)).balance == Decimal("50.00")


def test_a_switch_without_javascript_comes_back_to_the_page_without_the_old_sandboxs_positions(learner):
    commands.send_command(current(learner), "deposit", "5")
    response = learner.post("/lab/mode/", {"mode": "state-only", "next": f"{CONCEPT}?replay=1&tt=1"})
    assert response.status_code == 303 and response["Location"] == f"{CONCEPT}#lab-reset-section"
    assert learner.get(response["Location"]).status_code == 200


def test_an_htmx_switch_answers_with_the_whole_panel_and_its_undo_offer(learner):
    response = learner.post("/lab/mode/", {"mode": "state-only"}, **HX)
    assert response.status_code == 200
    body = text(response)
    assert 'data-testid="lab"' in body and "Started a fresh sandbox in state-only mode" in body
    assert sandboxes.undo_offer(learner.session) is not None


def test_the_same_mode_again_changes_nothing(learner):
    sandbox = current(learner)
    response = learner.post("/lab/mode/", {"mode": "event-sourced"}, **HX)
    assert response.status_code == 200
    assert "already runs event-sourced: nothing changed" in text(response)
    assert current(learner).pk == sandbox.pk and Sandbox.objects.count() == 1


@pytest.mark.parametrize("mode", ["", "state_only", "crud", "EVENT-SOURCED"])
def test_an_unknown_mode_is_a_400_and_changes_nothing(learner, mode):
    sandbox = current(learner)
    response = learner.post("/lab/mode/", {"mode": mode}, **HX)
    assert response.status_code == 400
    assert "The mode must be event-sourced or state-only." in text(response)
    assert current(learner).pk == sandbox.pk and Sandbox.objects.count() == 1


def test_csrf_is_enforced_on_the_mode_switch():
    client = visitor(CONCEPT, enforce_csrf_checks=True)
    assert client.post("/lab/mode/", {"mode": "state-only"}, **HX).status_code == 403
    assert Sandbox.objects.count() == 1
    token = client.cookies["csrftoken"].value
    assert client.post("/lab/mode/", {"mode": "state-only"}, HTTP_X_CSRFTOKEN=token, **HX).status_code == 200
    assert current(client).mode == "state-only"


def test_switching_back_appends_events_again(learner):
    learner.post("/lab/mode/", {"mode": "state-only"}, **HX)
    commands.send_command(current(learner), "deposit", "5")
    assert learner.post("/lab/mode/", {"mode": "event-sourced"}, **HX).status_code == 200
    sandbox = current(learner)
    assert sandbox.mode == "event-sourced"
    outcome = commands.send_command(sandbox, "deposit", "7")
    assert outcome.accepted and outcome.last_position is not None
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 1
    assert timeline.write_side(sandbox).balance == Decimal("7.00")


# --- Commands: the same rules, a row updated in place -----------------------------------------------------------


def test_a_command_updates_the_row_and_appends_nothing():
    sandbox = state_only()
    outcome = commands.send_command(sandbox, "deposit", "1405")
    assert outcome.accepted and outcome.write_version == 1 and outcome.events == [] and outcome.last_position is None
    assert outcome.message == "Deposited $1,405.00 → v=1 (the row now holds $1,405.00)"
    assert commands.send_command(sandbox, "withdraw", "5").accepted
    fresh = row(sandbox)
    assert (fresh.state_balance, fresh.state_version) == (Decimal("1400.00"), 2)
    assert fresh.state_pending_since is not None
    assert StoredEvent.objects.count() == 0
    assert timeline.write_side(sandbox).balance == Decimal("1400.00") and timeline.write_side(sandbox).version == 2


@pytest.mark.parametrize(
    ("kind", "amount", "rule"),
    [("withdraw", "80", "no-overdraft"), ("deposit", "10000.01", "amount-max"), ("deposit", "-1", "amount-positive")],
)
def test_the_write_models_rules_still_hold(kind, amount, rule):
    sandbox = state_only()
    commands.send_command(sandbox, "deposit", "50")
    outcome = commands.send_command(sandbox, kind, amount)
    assert not outcome.accepted and outcome.rule == rule and outcome.message.startswith("Rejected: ")
    fresh = row(sandbox)
    assert (fresh.state_balance, fresh.state_version) == (Decimal("50.00"), 1)


def test_a_repeated_command_id_applies_once_and_a_stale_version_is_a_conflict():
    sandbox = state_only()
    first = commands.send_command(sandbox, "deposit", "10", command_id="same")
    again = commands.send_command(sandbox, "deposit", "10", command_id="same")
    assert first.accepted and again.replayed and again.write_version == 1
    conflict = commands.send_command(sandbox, "deposit", "10", expected_version=0)
    assert not conflict.accepted and conflict.rule == "concurrency"
    assert row(sandbox).state_balance == Decimal("10.00")


def test_an_htmx_deposit_in_state_only_mode_answers_like_any_command(learner):
    learner.post("/lab/mode/", {"mode": "state-only"}, **HX)
    response = learner.post("/lab/command/", {"kind": "deposit", "amount": "50"}, **HX)
    assert response.status_code == 200
    assert "Deposited $50.00 → v=1" in text(response)
    assert learner.get("/lab/").status_code == 200  # the whole page renders in state-only mode


# --- The copy: the lag and stale reads remain -------------------------------------------------------------------


def test_the_read_model_lags_and_catches_up_with_a_copy_of_the_latest_state():
    sandbox = state_only(lag_ms=5000)
    for amount in ("10", "20", "30"):
        commands.send_command(sandbox, "deposit", amount)
    assert sandbox.pk in pending_sandboxes()
    early = step(sandbox.pk)
    assert early.applied == 0 and early.next_due is not None
    stale = queries.query(sandbox)
    assert (stale.balance, stale.read_version, stale.write_version, stale.stale) == (Decimal("0.00"), 0, 3, True)
    assert queries.lab_state(sandbox).read.behind == 3
    # Once the oldest change is as old as the lag, one copy carries the latest state: v=0 to v=3 at once.
    pending = row(sandbox).state_pending_since
    assert early.next_due == pytest.approx((pending + dt.timedelta(seconds=5)).timestamp())
    out = copy_state(sandbox.pk, lag=dt.timedelta(seconds=5), now=pending + dt.timedelta(seconds=5))
    assert out.applied == 1 and out.version == 3
    fresh = queries.query(sandbox)
    assert (fresh.balance, fresh.read_version, fresh.stale) == (Decimal("60.00"), 3, False)
    assert row(sandbox).state_pending_since is None and sandbox.pk not in pending_sandboxes()
    assert HistoryLine.objects.filter(sandbox_id=sandbox.pk).count() == 0  # no events, so no history to list


def test_the_copy_waits_for_the_oldest_change_not_the_newest():
    sandbox = state_only(lag_ms=1000)
    commands.send_command(sandbox, "deposit", "10")
    first = row(sandbox).state_pending_since
    commands.send_command(sandbox, "deposit", "5")
    assert row(sandbox).state_pending_since == first  # a later change does not push the copy back
    assert copy_state(sandbox.pk, lag=dt.timedelta(seconds=1), now=first + dt.timedelta(milliseconds=999)).applied == 0
    assert copy_state(sandbox.pk, lag=dt.timedelta(seconds=1), now=first + dt.timedelta(seconds=1)).applied == 1
    assert queries.query(sandbox).balance == Decimal("15.00")


def test_a_paused_projector_copies_nothing_until_resumed():
    sandbox = state_only()
    controls.pause_projection(sandbox)
    commands.send_command(sandbox, "deposit", "10")
    assert step(sandbox.pk).applied == 0
    assert queries.query(sandbox).stale
    controls.resume_projection(sandbox)
    assert step(sandbox.pk).applied == 1
    assert queries.query(sandbox).read_version == 1


def test_the_panel_state_says_the_mode_what_it_cannot_do_and_when_the_copy_is_due():
    sandbox = state_only(lag_ms=3000)
    before = timezone.now()
    commands.send_command(sandbox, "deposit", "25")
    state = queries.lab_state(sandbox)
    assert state.state_only and state.mode == "state-only"
    assert state.unavailable == modes.UNAVAILABLE
    assert state.copy_due_at is not None and state.copy_due_at >= before + dt.timedelta(seconds=3)
    assert (state.write.balance, state.write.version, state.read.version) == (Decimal("25.00"), 1, 0)
    assert state.in_flight == [] and state.event_count == 1
    es = queries.lab_state(new_sandbox())
    assert not es.state_only and es.unavailable == {} and es.copy_due_at is None


@pytest.mark.django_db(transaction=True)
async def test_the_running_projector_copies_after_the_lag(running, close_thread_connections):
    sandbox = await Sandbox.objects.acreate(mode=modes.STATE_ONLY, lag_ms=300)
    running()
    started = timezone.now()
    await _deposit(sandbox, "42")
    view = await eventually(lambda: BalanceView.objects.filter(sandbox_id=sandbox.pk, version=1).first())
    assert view.amount == Decimal("42.00")
    assert timezone.now() - started >= dt.timedelta(milliseconds=300)


async def _deposit(sandbox: Sandbox, amount: str) -> None:
    await sync_to_async(commands.send_command)(sandbox, "deposit", amount)


# --- What needs a log refuses, with its reason ------------------------------------------------------------------

REFUSALS = {
    "replay": lambda s: timeline.replay_frame(s, 1),
    "time_travel": lambda s: timeline.state_at(s, 2),
    "log": timeline.all_events,
    "rebuild": controls.start_rebuild,
    "retro": controls.enable_retro_model,
    "snapshot": commands.take_snapshot,
    "poison": controls.append_poison_event,
    "schema": lambda s: controls.set_deposit_schema(s, 2),
    "export": exchange.export_log,
}


@pytest.mark.parametrize("feature", list(REFUSALS))
def test_each_service_that_needs_a_log_raises_with_its_reason(feature):
    sandbox = state_only()
    for amount in ("10", "5", "1"):
        commands.send_command(sandbox, "deposit", amount)
    with pytest.raises(modes.ModeUnavailable) as refused:
        REFUSALS[feature](sandbox)
    assert str(refused.value) == modes.UNAVAILABLE[feature] and refused.value.feature == feature
    fresh = row(sandbox)
    assert (fresh.rebuilding_generation, fresh.retro_model_enabled, fresh.deposit_schema_version) == (None, False, 1)
    assert StoredEvent.objects.count() == 0


def test_time_travel_in_state_only_mode_has_the_present_only():
    sandbox = state_only()
    for amount in ("10", "5", "1"):
        commands.send_command(sandbox, "deposit", amount)
    assert (timeline.state_at(sandbox, 3).balance, timeline.state_at(sandbox, 3).version) == (Decimal("16.00"), 3)
    assert (timeline.state_at(sandbox, 0).balance, timeline.state_at(sandbox, 0).version) == (Decimal("0.00"), 0)
    for version in (1, 2, 4):
        with pytest.raises(modes.ModeUnavailable, match="There is no past to travel to"):
            timeline.state_at(sandbox, version)


def test_the_replay_refusal_says_there_is_no_log():
    assert modes.UNAVAILABLE["replay"] == (
        "There is no event log to replay in state-only mode: the write model keeps only its current state."
    )


@pytest.mark.parametrize(
    ("url", "feature"),
    [
        ("/lab/replay/?replay=1", "replay"),
        ("/lab/time-travel/?tt=0", "time_travel"),
        ("/lab/time-travel/?at=12:00:00", "time_travel"),
        ("/lab/log/", "log"),
        ("/lab/export/", "export"),
    ],
)
def test_the_log_endpoints_answer_409_with_the_reason(learner, url, feature):
    learner.post("/lab/mode/", {"mode": "state-only"}, **HX)
    response = learner.get(url, **HX)
    assert response.status_code == 409
    assert text(response) == modes.UNAVAILABLE[feature]


@pytest.mark.parametrize(
    ("url", "data", "feature"),
    [
        ("/lab/rebuild/", {}, "rebuild"),
        ("/lab/retro/", {}, "retro"),
        ("/lab/snapshot/", {}, "snapshot"),
        ("/lab/projector/", {"action": "poison"}, "poison"),
    ],
)
def test_the_log_controls_answer_409_with_the_reason(learner, url, data, feature):
    learner.post("/lab/mode/", {"mode": "state-only"}, **HX)
    response = learner.post(url, data, **HX)
    assert response.status_code == 409
    assert modes.UNAVAILABLE[feature] in text(response)
    no_js = learner.post(url, data)
    assert no_js.status_code == 409 and modes.UNAVAILABLE[feature] in text(no_js)


def test_in_event_sourced_mode_the_same_endpoints_still_work(learner):
    commands.send_command(current(learner), "deposit", "10")
    assert learner.get("/lab/replay/?replay=1", **HX).status_code == 200
    assert learner.get("/lab/time-travel/?tt=1", **HX).status_code == 200
    assert learner.get("/lab/log/", **HX).status_code == 200
    assert learner.post("/lab/retro/", {}, **HX).status_code == 200
