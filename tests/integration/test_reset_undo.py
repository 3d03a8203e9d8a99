"""Reset with Undo, and never a lock-out: a reset can be undone for a few seconds (the old sandbox comes back with
its events, balance and settings, and the projector picks it up again); past the deadline, or for a sandbox that
is not this visitor's, the undo is a 409 that says why and nothing changes; at the per-session cap a reset
recycles the oldest retired sandboxes (events purged) instead of refusing, never the current or the undo one."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.test import RequestFactory, override_settings

from lab import commands, controls, queries, sandboxes, timeline
from lab.models import PurgePermit, Sandbox, Snapshot, StoredEvent
from lab.projector import step
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}
UNDO = "/lab/reset/undo/"


def visit(session=None, user=None):
    request = RequestFactory().post("/lab/reset/")
    request.session = session if session is not None else SessionStore()
    request.user = user or AnonymousUser()
    return request


def expire_undo(session) -> None:
    offer = dict(session[sandboxes.SESSION_UNDO])
    offer["until_ms"] = sandboxes.undo_offer(session).until_ms - (sandboxes.UNDO_WINDOW_S + 1) * 1000
    session[sandboxes.SESSION_UNDO] = offer


def events_of(sandbox_id) -> int:
    return StoredEvent.objects.filter(sandbox_id=sandbox_id).count()


# --- The service: sandboxes.reset_sandbox / undo_reset ----------------------------------------------------------


def test_undo_within_the_deadline_brings_back_the_old_sandbox_with_its_events_balance_and_settings():
    request = visit()
    old = sandboxes.sandbox_for_request(request)
    for amount in ("1000", "405"):
        commands.send_command(old, "deposit", amount)
    controls.set_lag(old, "4.5")
    controls.set_snapshot_interval(old, 3)
    fresh = sandboxes.reset_sandbox(request)
    offer = sandboxes.undo_offer(request.session)
    assert offer is not None and offer.previous_id == old.pk and offer.fresh_id == fresh.pk
    assert 1 <= offer.seconds_left() <= sandboxes.UNDO_WINDOW_S

    restored = sandboxes.undo_reset(request)

    assert restored == old and restored.retired_at is None
    assert Sandbox.objects.get(pk=fresh.pk).retired_at is not None
    assert sandboxes.sandbox_for_request(visit(request.session)) == old
    assert timeline.write_side(restored).balance == Decimal("1405.00") and timeline.write_side(restored).version == 2
    assert (restored.lag_ms, restored.snapshot_interval) == (4500, 3)
    assert sandboxes.undo_offer(request.session) is None  # one undo per reset
    with pytest.raises(sandboxes.UndoUnavailable, match="Nothing to undo"):
        sandboxes.undo_reset(request)


def test_the_projector_skips_the_retired_sandbox_and_projects_it_again_once_restored():
    request = visit()
    old = sandboxes.sandbox_for_request(request)
    Sandbox.objects.filter(pk=old.pk).update(lag_ms=0)
    commands.send_command(Sandbox.objects.get(pk=old.pk), "deposit", "70")  # not projected yet: no projector ran
    sandboxes.reset_sandbox(request)
    assert step(old.pk).applied == 0  # retired: skipped
    assert queries.query(old).read_version == 0

    sandboxes.undo_reset(request)

    assert step(old.pk).applied == 1
    answer = queries.query(Sandbox.objects.get(pk=old.pk))
    assert (answer.balance, answer.read_version, answer.stale) == (Decimal("70.00"), 1, False)


def test_undo_after_the_deadline_is_refused_and_nothing_changes():
    request = visit()
    old = sandboxes.sandbox_for_request(request)
    commands.send_command(old, "deposit", "5")
    fresh = sandboxes.reset_sandbox(request)
    expire_undo(request.session)
    assert sandboxes.undo_offer(request.session) is None  # the page no longer offers it

    with pytest.raises(sandboxes.UndoUnavailable, match=r"^Too late to undo: .*15 s"):
        sandboxes.undo_reset(request)

    assert Sandbox.objects.get(pk=old.pk).retired_at is not None
    assert Sandbox.objects.get(pk=fresh.pk).retired_at is None
    assert sandboxes.sandbox_for_request(visit(request.session)) == fresh
    assert events_of(old.pk) == 1


def test_undo_is_refused_once_the_lab_moved_on_from_the_fresh_sandbox():
    request = visit()
    sandboxes.sandbox_for_request(request)
    fresh = sandboxes.reset_sandbox(request)
    offer = request.session[sandboxes.SESSION_UNDO]
    newest = sandboxes.reset_sandbox(request)  # another reset (another tab): only the latest can be undone
    request.session[sandboxes.SESSION_UNDO] = offer  # even if an older offer were still in hand
    with pytest.raises(sandboxes.UndoUnavailable, match="Too late to undo: the lab moved on"):
        sandboxes.undo_reset(request)
    assert sandboxes.sandbox_for_request(visit(request.session)) == newest
    assert Sandbox.objects.get(pk=fresh.pk).retired_at is not None


def test_another_visitors_sandbox_can_never_be_restored_even_if_a_session_named_it():
    alices_request = visit()
    alices_old = sandboxes.sandbox_for_request(alices_request)
    commands.send_command(alices_old, "deposit", "9")
    sandboxes.reset_sandbox(alices_request)

    mallory = visit()
    with pytest.raises(sandboxes.UndoUnavailable, match="Nothing to undo"):
        sandboxes.undo_reset(mallory)  # the offer lives in Alice's session, not in a request parameter
    mine = sandboxes.sandbox_for_request(mallory)
    forged = dict(alices_request.session[sandboxes.SESSION_UNDO], fresh=str(mine.pk))
    mallory.session[sandboxes.SESSION_UNDO] = forged
    with pytest.raises(sandboxes.UndoUnavailable, match="Too late to undo: the previous sandbox is gone"):
        sandboxes.undo_reset(mallory)

    assert Sandbox.objects.get(pk=alices_old.pk).retired_at is not None
    assert sandboxes.sandbox_for_request(visit(mallory.session)) == mine


def test_a_signed_in_learner_can_undo_and_another_account_cannot(alice, bob):
    request = visit(user=alice)
    old = sandboxes.sandbox_for_request(request)
    sandboxes.reset_sandbox(request)
    stolen = dict(request.session[sandboxes.SESSION_UNDO])

    bobs = visit(user=bob)
    stolen["fresh"] = str(sandboxes.sandbox_for_request(bobs).pk)
    bobs.session[sandboxes.SESSION_UNDO] = stolen
    with pytest.raises(sandboxes.UndoUnavailable, match="Too late to undo"):
        sandboxes.undo_reset(bobs)
    assert Sandbox.objects.get(pk=old.pk).retired_at is not None

    assert sandboxes.undo_reset(request) == old
    assert sandboxes.sandbox_for_request(visit(request.session, alice)) == old


@override_settings(LAB_MAX_SANDBOXES_PER_SESSION=3)
def test_at_the_cap_a_reset_recycles_the_oldest_retired_sandbox_and_purges_its_events():
    request = visit()
    made = [sandboxes.sandbox_for_request(request)]
    for _ in range(3):
        commands.send_command(made[-1], "deposit", "10")
        commands.take_snapshot(made[-1])
        made.append(sandboxes.reset_sandbox(request))  # the third reset is the one past the cap
    first, second, third, fourth = made
    assert events_of(first.pk) == 0 and not Snapshot.objects.filter(sandbox_id=first.pk).exists()
    assert not Sandbox.objects.filter(pk=first.pk).exists()
    assert not PurgePermit.objects.exists()
    assert [events_of(s.pk) for s in (second, third, fourth)] == [1, 1, 0]
    assert Sandbox.objects.filter(session_key=request.session.session_key).count() == 3
    assert sandboxes.sandbox_for_request(visit(request.session)) == fourth
    assert sandboxes.undo_reset(request) == third  # the one held for Undo survived the recycling


@override_settings(LAB_MAX_SANDBOXES_PER_SESSION=2)
def test_recycling_never_purges_the_current_sandbox_or_the_one_held_for_undo():
    request = visit()
    current = sandboxes.sandbox_for_request(request)
    for _ in range(6):
        commands.send_command(current, "deposit", "1")
        held = current
        current = sandboxes.reset_sandbox(request)
        assert Sandbox.objects.filter(pk=held.pk).exists() and events_of(held.pk) == 1
        assert sandboxes.undo_offer(request.session).previous_id == held.pk
        # The cap, plus at most the one held for Undo: the database stays bounded.
        assert Sandbox.objects.filter(session_key=request.session.session_key).count() <= 3
    assert sandboxes.undo_reset(request) == held


@override_settings(LAB_MAX_SANDBOXES_PER_SESSION=2)
def test_recycling_counts_only_this_visitors_sandboxes():
    others = [sandboxes.sandbox_for_request(visit()) for _ in range(3)]
    request = visit()
    sandboxes.sandbox_for_request(request)
    for _ in range(4):
        sandboxes.reset_sandbox(request)
    assert all(Sandbox.objects.filter(pk=s.pk).exists() for s in others)


def test_a_socket_of_the_session_follows_the_reset_and_the_undo():
    request = visit()
    old = sandboxes.sandbox_for_request(request)
    fresh = sandboxes.reset_sandbox(request)
    request.session.save()
    assert sandboxes.sandbox_for_session_key(request.session.session_key) == fresh
    sandboxes.undo_reset(request)
    request.session.save()
    assert sandboxes.sandbox_for_session_key(request.session.session_key) == old


# --- The endpoint: lab:reset-undo -------------------------------------------------------------------------------


@pytest.fixture
def learner():
    return visitor(CONCEPT)


def current_of(client) -> Sandbox:
    return Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX])


def test_an_htmx_reset_offers_undo_and_an_htmx_undo_answers_with_the_restored_panel(learner):
    learner.post("/lab/command/", {"kind": "deposit", "amount": "1405"}, **HX)
    old = current_of(learner)
    reset = learner.post("/lab/reset/", {}, **HX)
    assert reset.status_code == 200
    assert "Started a fresh sandbox" in reset.content.decode()
    assert sandboxes.undo_offer(learner.session).previous_id == old.pk

    undo = learner.post(UNDO, {}, **HX)

    assert undo.status_code == 200
    html = undo.content.decode()
    assert 'id="lab"' in html and 'data-testid="write-version"' in html
    assert "Reset undone: back to your previous sandbox at v=1, balance $1,405.00." in html
    assert current_of(learner) == old


def test_a_no_javascript_reset_and_undo_redirect_back_with_the_message(learner):
    old = current_of(learner)
    reset = learner.post("/lab/reset/", {"next": CONCEPT})
    assert reset.status_code == 303 and reset["Location"] == f"{CONCEPT}#lab-reset-section"
    flash = learner.session["lab_flash"]["controls"]
    assert flash["ok"] and 1 <= flash["undo_seconds"] <= sandboxes.UNDO_WINDOW_S
    assert flash["undo_until_ms"] == sandboxes.undo_offer(learner.session).until_ms

    undo = learner.post(UNDO, {"next": CONCEPT})

    assert undo.status_code == 303 and undo["Location"] == f"{CONCEPT}#lab-reset-section"
    assert "Reset undone" in learner.get(CONCEPT).content.decode()
    assert current_of(learner) == old


def test_an_undo_too_late_is_a_409_that_says_so_and_changes_nothing(learner):
    learner.post("/lab/reset/", {}, **HX)
    fresh = current_of(learner)
    session = learner.session
    expire_undo(session)
    session.save()

    late = learner.post(UNDO, {}, **HX)
    assert late.status_code == 409
    assert late["HX-Retarget"] == "#lab-reset-result"
    assert "Too late to undo" in late.content.decode()
    assert current_of(learner) == fresh

    no_js = learner.post(UNDO, {"next": CONCEPT})
    assert no_js.status_code == 409 and "<html" in no_js.content.decode()
    assert "Nothing to undo" in no_js.content.decode()
    assert current_of(learner) == fresh


def test_undo_from_another_browser_finds_nothing_to_undo(learner):
    learner.post("/lab/reset/", {}, **HX)
    fresh = current_of(learner)
    stranger = visitor(CONCEPT)
    assert stranger.post(UNDO, {}, **HX).status_code == 409
    assert current_of(learner) == fresh


def test_undo_needs_a_csrf_token_and_a_post():
    client = visitor(CONCEPT, enforce_csrf_checks=True)
    token = client.cookies["csrftoken"].value
    assert client.post("/lab/reset/", {}, HTTP_X_CSRFTOKEN=token, **HX).status_code == 200
    fresh = current_of(client)
    assert client.post(UNDO, {}, **HX).status_code == 403
    assert current_of(client) == fresh
    assert client.get(UNDO).status_code == 405
    assert client.post(UNDO, {}, HTTP_X_CSRFTOKEN=token, **HX).status_code == 200
    assert current_of(client) != fresh


@override_settings(LAB_MAX_SANDBOXES_PER_SESSION=2)
def test_resetting_past_the_cap_is_never_refused(learner):
    for _ in range(5):
        assert learner.post("/lab/reset/", {}, **HX).status_code == 200
    assert Sandbox.objects.filter(session_key=learner.session.session_key).count() <= 3
