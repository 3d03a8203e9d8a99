"""Missions: each check is false before its steps and true after them, through the real commands, controls,
queries and projector; progress outlives a reset, follows a visitor to the account, and stays cheap."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from lab import commands, controls, facts, queries
from lab.missions import MISSIONS, mission_progress
from lab.models import MissionDone, Sandbox, SandboxFact
from lab.projector import drain
from lab.scenarios.apply import apply_setup
from lab.scenarios.catalog import get
from lab.tools import CORE_TOOLS
from tests.integration.lab_events import eventually, new_sandbox, visitor

pytestmark = [pytest.mark.backend]


def done(sandbox: Sandbox) -> set[str]:
    return {m.id for m in mission_progress(sandbox).missions if m.done}


def deposit(sandbox: Sandbox, amount: str = "50") -> None:
    assert commands.send_command(sandbox, "deposit", amount).accepted


def sandbox_of(client) -> Sandbox:
    """The client's current sandbox, at lag 0 so that `drain` applies its events at once."""
    sandbox = Sandbox.objects.get(pk=client.session["lab_sandbox_id"])
    controls.set_lag(sandbox, 0)
    return sandbox


def test_there_are_seven_to_nine_missions_in_order_each_with_a_goal_a_hint_and_tools():
    assert 7 <= len(MISSIONS) <= 9
    assert len({m.id for m in MISSIONS}) == len(MISSIONS)
    assert all(m.goal and m.hint and m.tools for m in MISSIONS)


@pytest.mark.django_db
def test_watch_it_trail_is_met_once_the_read_model_caught_up_with_a_deposit():
    sandbox = new_sandbox()
    assert "watch-it-trail" not in done(sandbox)
    deposit(sandbox)
    assert "watch-it-trail" not in done(sandbox)  # written, not yet projected: the read model trails
    drain([sandbox.pk])
    assert "watch-it-trail" in done(sandbox)


@pytest.mark.django_db
def test_a_stale_read_counts_only_under_a_lag_of_five_seconds_or_more():
    sandbox = new_sandbox(lag_ms=2000)
    deposit(sandbox)
    assert queries.query(sandbox).stale
    assert "stale-read" not in done(sandbox)
    controls.set_lag(sandbox, 5)
    assert queries.query(Sandbox.objects.get(pk=sandbox.pk)).stale  # still behind, now under a 5 s lag
    assert "stale-read" in done(sandbox)
    assert SandboxFact.objects.get(sandbox=sandbox, name=facts.STALE_READ).value == 5000


@pytest.mark.django_db
def test_a_fresh_query_never_counts_as_a_stale_read():
    sandbox = new_sandbox(lag_ms=6000)
    controls.set_lag(sandbox, 6)
    assert not queries.query(sandbox).stale  # nothing written yet: fresh
    assert "stale-read" not in done(sandbox)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_read_your_writes_is_met_when_the_query_waited_for_the_projector_and_came_back_fresh(running):
    sandbox = await sync_to_async(new_sandbox)(lag_ms=400)
    running()
    await sync_to_async(deposit)(sandbox)
    assert "read-your-writes" not in await sync_to_async(done)(sandbox)
    answer = await queries.aquery(sandbox, 1, timeout_s=5)  # waits out the 400 ms lag for the projector's push
    assert not answer.stale
    assert "read-your-writes" in await sync_to_async(done)(sandbox)
    other = await sync_to_async(new_sandbox)(lag_ms=0)
    await sync_to_async(deposit)(other)
    await eventually(lambda: queries.read_side(other).version == 1)  # the running projector applies it
    answer = await queries.aquery(other, 1, timeout_s=5)  # caught up already: no wait
    assert not answer.stale
    assert "read-your-writes" not in await sync_to_async(done)(other)


@pytest.mark.django_db
def test_crash_is_met_once_a_command_after_the_crash_was_applied_after_the_restart():
    sandbox = new_sandbox()
    deposit(sandbox)
    drain([sandbox.pk])
    controls.crash_projector(sandbox, 0.3)
    assert "crash" not in done(sandbox)  # nothing happened while it was down
    deposit(sandbox)
    drain([sandbox.pk])  # still crashed: applies nothing
    assert Sandbox.objects.get(pk=sandbox.pk).projector_crashed_until is not None
    assert "crash" not in done(sandbox)
    time.sleep(0.35)
    drain([sandbox.pk])  # the restart: from the checkpoint, what it missed
    assert Sandbox.objects.get(pk=sandbox.pk).projector_crashed_until is None
    assert "crash" in done(sandbox)


@pytest.mark.django_db
def test_rebuild_is_met_only_once_the_new_generation_swapped_in():
    sandbox = new_sandbox()
    for amount in ("10", "20", "30"):
        deposit(sandbox, amount)
    drain([sandbox.pk])
    assert "rebuild" not in done(sandbox)
    controls.start_rebuild(sandbox)
    assert "rebuild" not in done(sandbox)  # started, not completed
    drain([sandbox.pk])
    assert Sandbox.objects.get(pk=sandbox.pk).live_generation == 2
    assert "rebuild" in done(sandbox)


@pytest.mark.django_db
def test_retro_model_is_met_once_it_caught_up_over_the_deposits_made_before_it():
    sandbox = new_sandbox()
    deposit(sandbox, "10")
    deposit(sandbox, "70")
    drain([sandbox.pk])
    assert "retro-model" not in done(sandbox)
    controls.enable_retro_model(sandbox)
    assert "retro-model" not in done(sandbox)  # enabled, still at event 0
    drain([sandbox.pk])
    assert "retro-model" in done(sandbox)


@pytest.mark.django_db
def test_time_travel_is_met_by_travelling_to_v3_by_version_or_by_time():
    client = visitor()
    sandbox = sandbox_of(client)
    for amount in ("10", "20", "30", "40"):
        deposit(sandbox, amount)
    assert client.get(reverse("lab:time-travel"), {"tt": 2}, headers={"HX-Request": "true"}).status_code == 200
    assert "time-travel" not in done(sandbox)
    assert client.get(reverse("lab:time-travel"), {"tt": 3}, headers={"HX-Request": "true"}).status_code == 200
    assert "time-travel" in done(sandbox)
    other = visitor()
    mine = sandbox_of(other)
    for amount in ("10", "20", "30"):
        deposit(mine, amount)
    assert other.get(reverse("lab:time-travel"), {"tt": 9}).status_code == 200  # clamped to the head: v=3
    assert "time-travel" in done(mine)


@pytest.mark.django_db
def test_schema_v2_needs_a_v1_deposit_in_the_log():
    fresh = new_sandbox()
    controls.set_deposit_schema(fresh, 2)
    deposit(fresh)
    assert "schema-v2" not in done(fresh)  # v2 shipped, but every deposit is v2: no old event to read
    sandbox = new_sandbox()
    deposit(sandbox)
    assert "schema-v2" not in done(sandbox)
    controls.set_deposit_schema(sandbox, 2)
    assert "schema-v2" in done(sandbox)


@pytest.mark.django_db
def test_poison_is_met_once_the_event_was_skipped_and_the_read_model_flows_again():
    sandbox = new_sandbox()
    deposit(sandbox)
    controls.append_poison_event(sandbox)
    deposit(sandbox)
    drain([sandbox.pk])
    assert queries.projector_status(sandbox).state == "stalled"
    controls.retry_dead_letter(sandbox)
    drain([sandbox.pk])
    assert "poison" not in done(sandbox)
    assert controls.skip_dead_letter(sandbox)
    assert "poison" not in done(sandbox)  # skipped, the events after it not yet applied
    drain([sandbox.pk])
    assert "poison" in done(sandbox)


@pytest.mark.django_db
def test_progress_costs_three_queries_and_one_insert_when_a_mission_is_first_met(django_assert_num_queries):
    client = visitor()
    sandbox = sandbox_of(client)
    with django_assert_num_queries(3):
        mission_progress(sandbox)
    deposit(sandbox)
    drain([sandbox.pk])
    with django_assert_num_queries(4):  # the three reads, and keeping watch-it-trail for the session
        assert mission_progress(sandbox).missions[0].done
    with django_assert_num_queries(3):
        mission_progress(sandbox)


@pytest.mark.django_db
def test_a_visitors_missions_survive_a_reset_and_follow_them_to_their_account(alice):
    client = visitor()
    sandbox = sandbox_of(client)
    deposit(sandbox)
    drain([sandbox.pk])
    assert mission_progress(sandbox).missions[0].done
    client.post(reverse("lab:reset"))
    fresh = sandbox_of(client)
    assert fresh.pk != sandbox.pk
    progress = mission_progress(fresh)
    assert progress.missions[0].done and progress.current is not None and progress.current.id == "stale-read"
    assert "watch-it-trail" not in {m.id for m in mission_progress(new_sandbox()).missions if m.done}
    client.force_login(alice)
    assert MissionDone.objects.filter(user=alice, mission="watch-it-trail").exists()
    assert not MissionDone.objects.filter(user__isnull=True).exists()
    assert mission_progress(sandbox_of(client)).missions[0].done


@pytest.mark.django_db
def test_missions_met_by_one_account_are_not_another_accounts(alice, bob, client_for):
    alice_client = client_for(alice)
    alice_client.post(reverse("lab:lag"), {"lag": "2"})  # her first action gives her a sandbox (a page view: none)
    hers = sandbox_of(alice_client)
    deposit(hers)
    drain([hers.pk])
    assert mission_progress(hers).missions[0].done
    bob_client = client_for(bob)
    bob_client.post(reverse("lab:lag"), {"lag": "2"})
    assert not mission_progress(Sandbox.objects.get(user=bob, retired_at__isnull=True)).missions[0].done


@pytest.mark.django_db
def test_tools_appear_with_their_mission_and_with_a_scenario_or_a_focused_mission():
    sandbox = new_sandbox()
    first = mission_progress(sandbox)
    assert first.current is not None and first.current.number == 1
    assert first.revealed_tools == CORE_TOOLS | set(MISSIONS[0].tools)
    assert "lag" not in first.revealed_tools and first.done_count == 0 and first.percent == 0
    deposit(sandbox)
    drain([sandbox.pk])
    second = mission_progress(sandbox)
    assert "lag" in second.revealed_tools and "rebuild" not in second.revealed_tools
    facts.note(sandbox.pk, facts.MISSION_FOCUS, value=5, keep=facts.KEEP_LAST)
    assert {"rebuild", "projector"} <= mission_progress(sandbox).revealed_tools
    scenario = get("document-snapshots")
    assert scenario is not None
    other = new_sandbox()
    apply_setup(other, scenario)
    facts.note(other.pk, facts.SCENARIO, detail=scenario.id, keep=facts.KEEP_LAST)
    shown = mission_progress(other)
    assert {"time-travel", "snapshots"} <= shown.revealed_tools and shown.scenario == "document-snapshots"
