"""Nothing grows from a page view: a sandbox is created by a learner's first command (or setting, scenario, import,
mode), never by a GET; first sandboxes are capped per client address and in all (429 with Retry-After and a
message the lab shows); idle sandboxes are purged on a schedule by the projector's loop, never an active one.

Issue 13 measured 300 sandboxes (and 300 sessions) from 300 cookie-less GETs in 9.7 s; here no GET creates either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client, override_settings
from django.utils import timezone

from lab import queries, sandboxes, store
from lab.clients import address_group, client_key
from lab.models import Sandbox, StoredEvent
from lab.projector import Projector
from tests.integration.lab_events import append, eventually, new_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}
GETS = (
    "/",
    CONCEPT,
    "/lab/",
    "/lab/state/",
    "/lab/log/",
    "/lab/log/?log_type=Deposited",
    "/lab/time-travel/?tt=0",
    "/lab/time-travel/?at=12:00",
    "/lab/replay/?replay=0",
    "/lab/query/",
    "/lab/query/?read_your_writes=1",
    "/lab/predict/?moment=stale-query&choice=0.00",
    "/lab/export/",
    f"{CONCEPT}?tt=2&lab_query=1&read_your_writes=1",
)


def rows() -> tuple[int, int]:
    return Sandbox.objects.count(), Session.objects.count()


def deposit(client: Client, amount: str = "5", **extra) -> object:
    return client.post("/lab/command/", {"kind": "deposit", "amount": amount}, **HX, **extra)


# --- A page view creates nothing ----------------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_no_get_creates_a_sandbox_or_a_session(htmx):
    for path in GETS:
        response = Client().get(path, **(HX if htmx else {}))
        assert response.status_code == 200, (path, response.status_code)
        assert rows() == (0, 0), path
        assert "sessionid" not in response.cookies, path


def test_300_cookie_less_gets_create_nothing():
    """Issue 13's measure: 300 visits without a cookie made 300 sandboxes and 300 sessions."""
    for _ in range(300):
        assert Client().get("/lab/").status_code == 200
    assert rows() == (0, 0)


def test_the_blank_lab_renders_the_same_state_as_a_new_sandbox():
    blank = sandboxes.sandbox_to_show(_request())
    assert sandboxes.is_blank(blank)
    created = Sandbox.objects.create()
    shown, made = queries.lab_state(blank), queries.lab_state(created)
    same = {"sandbox": None, "stamp": 0, "server_now": None}
    assert dataclasses.replace(shown, **same) == dataclasses.replace(made, **same)


def test_the_lab_page_looks_the_same_before_and_after_the_first_sandbox():
    client = Client()
    before = _comparable(client.get("/lab/").content.decode())
    assert client.post("/lab/lag/", {"lag": "2"}, **HX).status_code == 200  # the default lag: a new sandbox
    after = _comparable(client.get("/lab/").content.decode())
    assert Sandbox.objects.count() == 1
    assert before == after


def test_a_signed_in_visitor_without_a_sandbox_sees_a_blank_one(alice_client):
    assert alice_client.get(CONCEPT).status_code == 200
    assert Sandbox.objects.count() == 0


# --- The first action creates exactly one ---------------------------------------------------------------------


def test_the_first_command_creates_exactly_one_sandbox_and_one_session():
    client = Client()
    client.get("/lab/")
    assert rows() == (0, 0)
    assert deposit(client).status_code == 200
    assert rows() == (1, 1)
    assert deposit(client, "7").status_code == 200
    assert rows() == (1, 1)
    sandbox = Sandbox.objects.get()
    assert StoredEvent.objects.filter(sandbox=sandbox).count() == 2
    assert sandbox.client == client_key("127.0.0.1")


def test_a_refused_command_creates_nothing():
    client = Client()
    client.get("/lab/")
    assert client.post("/lab/command/", {"kind": "deposit", "amount": "-3"}, **HX).status_code == 400
    assert client.post("/lab/lag/", {"lag": "99"}, **HX).status_code == 400
    assert client.post("/lab/reset/undo/", {}, **HX).status_code == 409
    assert client.post("/lab/mode/", {"mode": "event-sourced"}, **HX).status_code == 200  # already: nothing
    assert rows() == (0, 0)


def test_a_setting_changed_before_the_first_command_sticks():
    client = Client()
    client.get(CONCEPT)
    assert client.post("/lab/lag/", {"lag": "4.5"}, **HX).status_code == 200
    assert client.post("/lab/snapshot-interval/", {"interval": "3"}, **HX).status_code == 200
    assert deposit(client).status_code == 200
    sandbox = Sandbox.objects.get()
    assert (sandbox.lag_ms, sandbox.snapshot_interval) == (4500, 3)
    assert 'data-lag="4.5"' in client.get("/lab/").content.decode()


def test_a_first_command_from_a_page_whose_socket_is_open_gets_the_whole_panel_back():
    """The short answer relies on the page's socket, which is only being told of the new sandbox."""
    client = Client()
    client.get("/lab/")
    first = deposit(client, HTTP_X_LAB_LIVE="1").content.decode()
    assert 'id="lab-event-log"' in first
    second = deposit(client, HTTP_X_LAB_LIVE="1").content.decode()
    assert 'id="lab-event-log"' not in second


# --- The caps ------------------------------------------------------------------------------------------------


@override_settings(LAB_MAX_SANDBOXES_PER_ADDRESS=2)
def test_first_sandboxes_per_address_are_capped_with_a_429_and_retry_after():
    for _ in range(2):
        assert deposit(Client()).status_code == 200
    refused_client = Client()
    refused = deposit(refused_client)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 60
    text = refused.content.decode()
    assert 'id="lab-command-result"' in text and "2 sandboxes have already been started from your network" in text
    assert refused["HX-Retarget"] == "#lab-command-result"
    assert rows() == (2, 2)  # neither a sandbox nor a session for the refused one
    assert "sessionid" not in refused.cookies
    # Another address still gets one; the learners who have one go on.
    assert deposit(Client(), REMOTE_ADDR="192.0.2.7").status_code == 200
    # A control answers beside itself, and without JavaScript the page comes back with the message.
    lag = refused_client.post("/lab/lag/", {"lag": "3"}, **HX)
    assert lag.status_code == 429 and lag["HX-Retarget"] == "#lab-projector-result"
    page = refused_client.post("/lab/scenario/", {"scenario": "stale-reads"})
    assert page.status_code == 429 and "from your network" in page.content.decode() and page["Retry-After"]


@override_settings(LAB_MAX_SANDBOXES=2)
def test_sandboxes_in_total_are_capped():
    assert deposit(Client(), REMOTE_ADDR="192.0.2.1").status_code == 200
    assert deposit(Client(), REMOTE_ADDR="192.0.2.2").status_code == 200
    refused = deposit(Client(), REMOTE_ADDR="192.0.2.3")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 60
    assert "The lab is full" in refused.content.decode()
    assert Sandbox.objects.count() == 2


@override_settings(LAB_MAX_SANDBOXES=1)
def test_at_the_cap_a_learner_with_a_sandbox_still_resets_switches_mode_and_loads_scenarios():
    client = Client()
    assert deposit(client).status_code == 200
    assert client.post("/lab/reset/", {}, **HX).status_code == 200
    assert client.post("/lab/mode/", {"mode": "state-only"}, **HX).status_code == 200
    assert client.post("/lab/scenario/", {"scenario": "stale-reads"}, **HX).status_code == 200
    assert deposit(client).status_code == 200
    assert Sandbox.objects.filter(retired_at__isnull=True).count() == 1


@override_settings(LAB_MAX_SANDBOXES_PER_ADDRESS=1)
def test_an_ipv6_64_counts_as_one_address():
    assert address_group("2001:db8:1:2::5") == address_group("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_group("::ffff:192.0.2.1") == "192.0.2.1"
    assert deposit(Client(), REMOTE_ADDR="2001:db8:1:2::5").status_code == 200
    assert deposit(Client(), REMOTE_ADDR="2001:db8:1:2:ffff::9").status_code == 429
    assert deposit(Client(), REMOTE_ADDR="2001:db8:1:3::5").status_code == 200


def test_the_address_is_stored_only_as_a_keyed_hash():
    deposit(Client(), REMOTE_ADDR="198.51.100.23")
    stored = Sandbox.objects.get().client
    assert stored == client_key("198.51.100.23") and "198.51" not in stored and len(stored) == 32


# --- Purging idle sandboxes on a schedule ----------------------------------------------------------------------


def _idle_sandbox(days: float, **fields) -> Sandbox:
    sandbox = new_sandbox(**fields)
    append(sandbox)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=timezone.now() - dt.timedelta(days=days))
    return sandbox


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
@override_settings(LAB_IDLE_DAYS=7, LAB_ACCOUNT_IDLE_DAYS=60)
async def test_the_projectors_loop_purges_idle_sandboxes_with_their_events_and_never_an_active_one(running, alice):
    idle = await sync_to_async(_idle_sandbox)(8)
    active = await sync_to_async(_idle_sandbox)(0)
    recent = await sync_to_async(_idle_sandbox)(6)
    account = await sync_to_async(_idle_sandbox)(30, user=alice)  # an account's sandbox lasts longer
    projector = running(purge_every_s=0.2)
    await eventually(lambda: not Sandbox.objects.filter(pk=idle.pk).exists())
    await asyncio.sleep(0.5)  # a few more rounds of the schedule

    def left() -> tuple[set, int, int]:
        ids = set(Sandbox.objects.values_list("pk", flat=True))
        return ids, StoredEvent.objects.filter(sandbox_id=idle.pk).count(), StoredEvent.objects.count()

    ids, idle_events, events = await sync_to_async(left)()
    assert ids == {active.pk, recent.pk, account.pk}
    assert (idle_events, events) == (0, 3)
    assert projector.purged_total == 1


def test_a_sandbox_used_while_the_purge_runs_is_kept():
    sandbox = _idle_sandbox(30)
    idle = sandboxes.idle_condition(7)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=timezone.now())  # the learner came back
    assert store.purge_sandbox(sandbox.pk, only_if=idle) is False
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 1


@override_settings(LAB_IDLE_DAYS=7, LAB_ACCOUNT_IDLE_DAYS=60)
def test_the_scheduled_purge_goes_in_bounded_batches_oldest_first():
    oldest, older, old = _idle_sandbox(30), _idle_sandbox(20), _idle_sandbox(10)
    assert sandboxes.purge_idle_on_schedule(limit=2) == 2
    assert list(Sandbox.objects.values_list("pk", flat=True)) == [old.pk]
    assert not {oldest.pk, older.pk} & set(StoredEvent.objects.values_list("sandbox_id", flat=True))


@override_settings(LAB_PURGE_EVERY_S=900)
def test_the_worker_and_the_embedded_projector_purge_on_the_same_schedule():
    assert Projector().purge_every_s == 900.0  # `manage.py run_projector` builds the same loop
    assert Projector(purge_every_s=0).purge_every_s == 0.0


# --- helpers ----------------------------------------------------------------------------------------------------


def _request():
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    request = RequestFactory().get("/lab/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


_VOLATILE = [
    re.compile(r'data-stamp="\d+"'),
    re.compile(r'data-server-now="\d+"'),
    re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'),
    re.compile(r'"X-CSRFToken": "[^"]+"'),
    re.compile(r'name="command_id" value="[0-9a-f]{32}"'),
    re.compile(r"(now|since)&quot;: \d+"),
    re.compile(r'data-[a-z-]*ms="\d+"'),
]


def _comparable(html: str) -> str:
    for pattern in _VOLATILE:
        html = pattern.sub("…", html)
    return html
