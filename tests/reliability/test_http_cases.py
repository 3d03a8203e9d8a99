"""Catalogue cases answered by one request each (tests/reliability/CATALOGUE.md): A5, H3, R2, R4 and the issue's I12.

Through the real middleware stack. Each asserts the status, the message, that nothing was appended or lost, and
that nothing reached the error log.
"""

from __future__ import annotations

import logging
import time

import pytest
from django.test import Client

from lab import controls, sandboxes, timeline
from lab.models import Sandbox, Snapshot, StoredEvent
from tests.integration.lab_events import append_many, visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "lab-command-result"}


def quiet(caplog: pytest.LogCaptureFixture, *, allowed: tuple[str, ...] = ()) -> None:
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name not in allowed]
    assert not loud, [f"{r.name}: {r.getMessage()}" for r in loud]


def sandbox_of(client: Client) -> Sandbox:
    return Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX])


# --- A5 and H3: sessions, Host, methods -------------------------------------------------------------------------


def test_A5_an_old_session_cookie_is_useless_after_sign_out_and_an_off_site_next_is_ignored(caplog, alice):
    client = Client()
    client.get("/accounts/login/")
    signed_in = client.post(
        "/accounts/login/?next=https://evil.example/", {"username": "alice", "password": "correct-horse-battery-1"}
    )
    assert signed_in.status_code == 302 and not signed_in["Location"].startswith("https://evil.example")
    old_cookie = client.cookies["sessionid"].value
    assert client.get("/notes/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    replay = Client()
    replay.cookies["sessionid"] = old_cookie
    answer = replay.get("/notes/")
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]  # signed out: asked to sign in
    quiet(caplog)


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/lab/", "/notes/"])
def test_A5_H3_a_forged_host_header_is_a_400_on_every_page(caplog, path):
    response = Client().get(path, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "evil.example" not in response.content.decode()  # the 400 page does not repeat the forged Host
    # Django logs a DisallowedHost at ERROR under django.security; that line is the only one allowed.
    quiet(caplog, allowed=("django.security.DisallowedHost",))


@pytest.mark.parametrize("path", ["/lab/command/", "/lab/reset/", "/lab/snapshot/", "/lab/rebuild/", "/lab/import/"])
def test_H3_a_get_on_a_mutating_url_is_a_405_and_changes_nothing(caplog, path):
    client = visitor()
    before = (StoredEvent.objects.count(), Sandbox.objects.count())
    assert client.get(path).status_code == 405
    assert (StoredEvent.objects.count(), Sandbox.objects.count()) == before
    quiet(caplog)


# --- R2: many fields ------------------------------------------------------------------------------------------


def test_R2_ten_thousand_fields_are_a_fast_400_and_nothing_is_appended(caplog):
    client = visitor()
    body = "kind=deposit&amount=5&" + "&".join(f"f{i}=1" for i in range(10_000))
    assert len(body.encode()) < 128 * 1024  # under the body cap only with short fields: the field cap is what refuses
    started = time.monotonic()
    response = client.post("/lab/command/", body[: 60 * 1024], content_type="application/x-www-form-urlencoded")
    assert time.monotonic() - started < 5
    assert response.status_code == 400
    assert StoredEvent.objects.count() == 0
    quiet(caplog, allowed=("django.security.TooManyFieldsSent",))


# --- R4 and I12: snapshots and replays of a full or poisoned sandbox --------------------------------------------


def test_R4_a_snapshot_and_a_replay_of_a_full_sandbox_answer_within_their_budget(caplog, settings):
    settings.LAB_MAX_EVENTS_PER_SANDBOX = 600
    client = visitor()
    sandbox = sandbox_of(client)
    sandbox.snapshot_interval = 0  # the worst case: no snapshot to start from
    sandbox.save(update_fields=["snapshot_interval"])
    append_many(sandbox, [("Deposited", "1.00")] * 600)
    full = client.post("/lab/command/", {"kind": "deposit", "amount": "1"}, **HX)
    assert full.status_code == 422 and "reset" in full.content.decode().lower()
    started = time.monotonic()
    snapshot = client.post("/lab/snapshot/", {}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lab-snapshot-result")
    replay = client.get("/lab/replay/?replay=600", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lab-replay")
    travel = client.get("/lab/time-travel/?version=599", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lab-time-travel")
    elapsed = time.monotonic() - started
    assert (snapshot.status_code, replay.status_code, travel.status_code) == (200, 200, 200)
    assert "Snapshot taken at v=600." in snapshot.content.decode()
    assert 'data-version="600"' in replay.content.decode()
    assert 'data-testid="replay-balance">$600.00<' in replay.content.decode()
    assert elapsed < 10, f"a snapshot, a replay frame and a time travel over 600 events took {elapsed:.1f} s"
    assert StoredEvent.objects.filter(sandbox=sandbox).count() == 600
    quiet(caplog)


def test_I12_a_snapshot_of_a_sandbox_with_a_poison_event_is_taken_and_nothing_is_lost(caplog):
    client = visitor()
    sandbox = sandbox_of(client)
    assert client.post("/lab/command/", {"kind": "deposit", "amount": "10"}, **HX).status_code == 200
    controls.append_poison_event(sandbox)
    assert client.post("/lab/command/", {"kind": "deposit", "amount": "5"}, **HX).status_code == 200
    before = list(StoredEvent.objects.filter(sandbox=sandbox).values_list("position", "event_type"))
    response = client.post("/lab/snapshot/", {}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="lab-snapshot-result")
    assert response.status_code == 200, response.content[:300]
    assert "Snapshot taken at v=3." in response.content.decode()
    assert Snapshot.objects.filter(sandbox=sandbox, version=3).exists()
    assert list(StoredEvent.objects.filter(sandbox=sandbox).values_list("position", "event_type")) == before
    assert timeline.write_side(sandbox).version == 3
    quiet(caplog)
