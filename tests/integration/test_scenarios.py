"""Scenarios and shared links: every scenario file loads into the learner's own sandbox and reaches the state it
describes; `manage.py check` names a malformed file; a shared link round-trips, changes nothing on GET and never
reaches another learner's sandbox."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from lab import controls, store
from lab.models import Sandbox, StoredEvent
from lab.scenarios import catalog
from lab.scenarios.checks import check_scenario_files
from lab.share import SharedState, landing
from lab.tools import TOOLS
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.backend]

PAGE = "/concepts/cqrs-event-sourcing/"
HTMX = {"HX-Request": "true"}
SCENARIOS = sorted(catalog.catalog())


def current(client: Client) -> Sandbox:
    return Sandbox.objects.get(pk=client.session["lab_sandbox_id"])


def events_of(sandbox: Sandbox) -> list[StoredEvent]:
    return list(StoredEvent.objects.filter(sandbox_id=sandbox.pk).order_by("version"))


def test_there_is_one_scenario_for_each_of_the_thirteen_claims_and_the_check_is_clean():
    assert len(SCENARIOS) == 13
    assert len({(s.section, s.item) for s in catalog.catalog().values()}) == 13
    assert check_scenario_files() == []


@pytest.mark.django_db
@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_each_scenario_loads_into_a_fresh_sandbox_and_reaches_the_state_it_describes(scenario_id):
    scenario = catalog.get(scenario_id)
    client = visitor(PAGE)
    before = current(client)
    controls.set_lag(before, 0)
    response = client.post(reverse("lab:scenario"), {"scenario": scenario_id, "next": PAGE}, headers=HTMX)
    assert response.status_code == 200
    assert escape(scenario.notice) in response.content.decode()
    sandbox = current(client)
    assert sandbox.pk != before.pk and Sandbox.objects.get(pk=before.pk).retired_at is not None  # Undo can restore
    events = events_of(sandbox)
    assert len(events) == scenario.events
    assert sandbox.mode == scenario.mode
    if scenario.mode == "state-only":  # CQRS without event sourcing: the commands updated a row, the log is empty
        assert sandbox.state_version == len(scenario.commands) and events == []
        signed = [s.amount if s.kind == "deposit" else -s.amount for s in scenario.commands]
        assert sandbox.state_balance == sum(signed)
        return
    kinds = ["Deposited" if s.kind == "deposit" else "Withdrew" for s in scenario.commands]
    assert [e.event_type for e in events] == kinds + (["InterestPaid"] if scenario.poison else [])
    amounts = [store.domain_event(e).amount for e in events[: len(scenario.commands)]]
    assert amounts == [s.amount for s in scenario.commands]
    wanted_v2 = [i for i, s in enumerate(scenario.commands) if s.schema == 2]
    assert [i for i, e in enumerate(events) if e.schema_version == 2] == wanted_v2
    assert sandbox.lag_ms == (scenario.lag_ms if scenario.lag_ms is not None else 2000)
    assert sandbox.projector_paused == (scenario.projector == "paused")
    assert (sandbox.projector_crashed_until is not None) == (scenario.projector == "crashed")
    assert sandbox.deposit_schema_version == scenario.schema
    assert sandbox.retro_model_enabled == scenario.retro_model
    if scenario.snapshot_interval is not None:
        assert sandbox.snapshot_interval == scenario.snapshot_interval
        every = scenario.snapshot_interval
        assert sorted(sandbox.snapshots.values_list("version", flat=True)) == (
            list(range(every, len(events) + 1, every)) if every else []
        )
    if scenario.replay_rate is not None:
        assert sandbox.replay_rate == scenario.replay_rate


def test_every_scenario_opens_a_tool_of_the_lab():
    for scenario in catalog.catalog().values():
        assert scenario.tool in TOOLS and scenario.tools <= set(TOOLS)


@pytest.mark.django_db
def test_a_scenario_without_javascript_redirects_to_the_tool_to_look_at_with_its_time_travel_version():
    client = visitor(PAGE)
    response = client.post(reverse("lab:scenario"), {"scenario": "audit-trail", "next": PAGE})
    assert response.status_code == 303
    assert response["Location"] == f"{PAGE}?tt=3#lab-time-travel"
    flash = client.session["lab_flash"]  # what the page shows once, in the scenario's slot
    assert flash["slot"] == "lab-scenario-result" and flash["controls"]["text"] == catalog.get("audit-trail").notice


@pytest.mark.django_db
def test_an_unknown_scenario_is_a_404_and_nothing_changes():
    client = visitor(PAGE)
    before = current(client)
    response = client.post(reverse("lab:scenario"), {"scenario": "no-such-thing"}, headers=HTMX)
    assert response.status_code == 404
    assert "no-such-thing" in response.content.decode()
    assert current(client).pk == before.pk and Sandbox.objects.get(pk=before.pk).retired_at is None


@pytest.mark.django_db
def test_the_scenario_endpoint_wants_a_post_with_a_csrf_token():
    assert visitor(PAGE).get(reverse("lab:scenario"), {"scenario": "stale-reads"}).status_code == 405
    strict = visitor(PAGE, enforce_csrf_checks=True)
    assert strict.post(reverse("lab:scenario"), {"scenario": "stale-reads"}).status_code == 403


@pytest.mark.django_db
def test_undo_after_a_scenario_brings_back_the_learners_own_sandbox():
    client = visitor(PAGE)
    before = current(client)
    client.post(reverse("lab:scenario"), {"scenario": "stale-reads"}, headers=HTMX)
    assert current(client).pk != before.pk
    assert client.post(reverse("lab:reset-undo"), headers=HTMX).status_code == 200
    assert current(client).pk == before.pk


# --- manage.py check ---------------------------------------------------------------------------------------------


def good_data(**changes) -> dict:
    data = json.loads((catalog.DEFAULT_DIR / "stale-reads.json").read_text(encoding="utf-8"))
    data["setup"] = {**data["setup"], **changes.pop("setup", {})}
    data.update(changes)
    return data


BAD = {
    "overdraft": (good_data(setup={"commands": [{"kind": "withdraw", "amount": "5"}]}), "overdraw"),
    "amount": (good_data(setup={"commands": [{"kind": "deposit", "amount": "1e9"}]}), "amount"),
    "too-much": (good_data(setup={"commands": [{"kind": "deposit", "amount": "10000.01"}]}), "10,000.00"),
    "lag": (good_data(setup={"lag_s": "11"}), "lag"),
    "unknown-key": (good_data(setup={"lagg": "5"}), "lagg"),
    "projector": (good_data(setup={"projector": "exploded"}), "projector"),
    "tool": (good_data(look={"tool": "laser"}), "laser"),
    "tt": (good_data(look={"tool": "time-travel", "tt": 9}), "look.tt"),
    "claim": (good_data(claim={"section": "gotchas", "item": "Nobody ever said this."}), "is not an item"),
    "mode": (good_data(setup={"mode": "half-sourced"}), "setup.mode must be one of"),
    "mode-needs-a-log": (good_data(setup={"mode": "state-only", "poison": True}), "state-only has no log"),
}


@pytest.mark.parametrize("problem", sorted(BAD))
def test_the_check_names_a_malformed_scenario_file_and_its_problem(problem, tmp_path, settings):
    data, words = BAD[problem]
    (tmp_path / "stale-reads.json").write_text(json.dumps({**data, "id": "stale-reads"}), encoding="utf-8")
    settings.LAB_SCENARIO_DIR = tmp_path
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    message = str(raised.value)
    assert "stale-reads.json" in message and words in message


def test_the_check_names_a_file_that_is_not_json_or_whose_id_is_not_its_name(tmp_path, settings):
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    (tmp_path / "renamed.json").write_text(json.dumps(good_data()), encoding="utf-8")
    settings.LAB_SCENARIO_DIR = tmp_path
    found = [str(m) for m in check_scenario_files() if m.id == "lab.E001"]
    assert any("broken.json" in m and "not valid JSON" in m for m in found)
    assert any("renamed.json" in m and "file's name" in m for m in found)


# --- Shared links ------------------------------------------------------------------------------------------------


def test_a_shared_link_round_trips():
    state = SharedState(scenario="stale-reads", lag_ms=5000, tt=3, mission=2)
    link = state.link(PAGE)
    assert link == f"{PAGE}?scenario=stale-reads&lag=5&tt=3&mission=2#lab"
    found = landing(QueryDict(link.split("?")[1].split("#")[0]))
    assert found is not None and found.state == state and found.problems == []
    assert found.scenario is not None and found.scenario.id == "stale-reads"
    assert landing(QueryDict("log_page=2")) is None


def test_a_shared_link_leaves_out_bad_values_and_says_why():
    found = landing(QueryDict("scenario=nope&lag=99&tt=-1&mission=42"))
    assert found is not None and found.state is None and len(found.problems) == 4
    partly = landing(QueryDict("scenario=stale-reads&lag=abc&mission=2"))
    assert partly is not None and partly.state == SharedState(scenario="stale-reads", mission=2)
    assert partly.problems == [f"lag: {partly.problems[0].split(': ', 1)[1]}"] and "left out" in partly.problems[0]


@pytest.mark.django_db
def test_opening_a_shared_link_changes_nothing_until_the_learner_confirms():
    client = visitor(PAGE)
    before = current(client)
    link = SharedState(scenario="stale-reads", lag_ms=5000, tt=2, mission=2).link(PAGE)
    for _ in range(3):  # a reload, a prefetch: GETs only
        assert client.get(link.split("#")[0]).status_code == 200
    assert current(client).pk == before.pk and events_of(before) == []
    assert Sandbox.objects.get(pk=before.pk).lag_ms == 2000


@pytest.mark.django_db
def test_a_shared_link_loads_into_the_opening_learners_own_sandbox_never_the_senders(alice, bob, client_for):
    alice_client = client_for(alice)
    alice_client.post(reverse("lab:scenario"), {"scenario": "audit-trail"}, headers=HTMX)
    hers = current(alice_client)
    her_events = [e.pk for e in events_of(hers)]
    link = SharedState(scenario="audit-trail", lag_ms=5000, tt=3, mission=7)
    bob_client = client_for(bob)
    bob_client.post(reverse("lab:lag"), {"lag": "2"})  # his first action gives him a sandbox (a page view: none)
    his_before = current(bob_client)
    response = bob_client.post(reverse("lab:scenario"), {**link.params(), "next": PAGE})
    assert response.status_code == 303 and response["Location"] == f"{PAGE}?tt=3#lab-time-travel"
    his = current(bob_client)
    assert his.user_id == bob.pk and his.pk not in (hers.pk, his_before.pk)
    assert his.lag_ms == 5000 and len(events_of(his)) == catalog.get("audit-trail").events
    hers_now = Sandbox.objects.get(pk=hers.pk)
    assert hers_now.retired_at is None and current(alice_client).pk == hers.pk
    assert [e.pk for e in events_of(hers_now)] == her_events and hers_now.lag_ms == 0


@pytest.mark.django_db
def test_a_shared_link_without_a_scenario_sets_lag_and_mission_in_the_current_sandbox():
    client = visitor(PAGE)
    before = current(client)
    response = client.post(reverse("lab:scenario"), {"lag": "7.5", "mission": "3"}, headers=HTMX)
    assert response.status_code == 200
    assert current(client).pk == before.pk and current(client).lag_ms == 7500


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields", [{"scenario": "stale-reads", "lag": "11"}, {"scenario": "stale-reads", "mission": "99"}, {"tt": "-2"}, {}]
)
def test_a_shared_link_with_a_bad_value_is_a_400_that_changes_nothing(fields):
    client = visitor(PAGE)
    before = current(client)
    response = client.post(reverse("lab:scenario"), fields, headers=HTMX)
    assert response.status_code == 400 and response.content
    assert current(client).pk == before.pk and Sandbox.objects.get(pk=before.pk).lag_ms == 2000
