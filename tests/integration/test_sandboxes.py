"""Each visitor works in their own sandbox; reset, sign-in and purging move or remove whole sandboxes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from django.utils import timezone

from lab import commands, sandboxes, timeline
from lab.models import (
    BalanceView,
    Checkpoint,
    CommandRecord,
    HistoryLine,
    LoadReport,
    PurgePermit,
    Sandbox,
    Snapshot,
    StoredEvent,
)

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


def visit(session=None, user=None):
    request = RequestFactory().get("/")
    request.session = session if session is not None else SessionStore()
    request.user = user or AnonymousUser()
    return request


def test_a_first_visit_creates_a_sandbox_and_gives_the_session_a_key():
    request = visit()
    sandbox = sandboxes.sandbox_for_request(request)
    assert request.session.session_key
    assert sandbox.session_key == request.session.session_key and sandbox.user is None
    assert sandboxes.sandbox_for_request(visit(request.session)) == sandbox


def test_two_visitors_get_two_sandboxes():
    assert sandboxes.sandbox_for_request(visit()) != sandboxes.sandbox_for_request(visit())


def test_the_sandbox_survives_the_session_key_rotating():
    request = visit()
    sandbox = sandboxes.sandbox_for_request(request)
    request.session.cycle_key()
    assert sandboxes.sandbox_for_request(visit(request.session)) == sandbox


def test_reset_retires_the_old_sandbox_and_starts_an_empty_one():
    request = visit()
    old = sandboxes.sandbox_for_request(request)
    commands.send_command(old, "deposit", "50")
    fresh = sandboxes.reset_sandbox(request)
    assert fresh != old
    assert Sandbox.objects.get(pk=old.pk).retired_at is not None
    assert sandboxes.sandbox_for_request(visit(request.session)) == fresh
    assert timeline.write_side(fresh).version == 0


@override_settings(LAB_MAX_SANDBOXES_PER_SESSION=3)
def test_resets_past_the_session_limit_recycle_the_oldest_sandbox_instead_of_refusing():
    # A reset never locks a learner out: the session keeps at most its limit of sandboxes by purging the oldest
    # retired one (tests/integration/test_reset_undo.py covers what is kept and the events that go).
    request = visit()
    first = sandboxes.sandbox_for_request(request)
    sandboxes.reset_sandbox(request)
    sandboxes.reset_sandbox(request)
    last = sandboxes.reset_sandbox(request)
    assert sandboxes.sandbox_for_request(visit(request.session)) == last
    assert not Sandbox.objects.filter(pk=first.pk).exists()
    assert Sandbox.objects.filter(session_key=request.session.session_key).count() == 3


def test_signing_in_hands_the_sessions_sandbox_to_an_account_that_has_none(alice):
    request = visit()
    anonymous = sandboxes.sandbox_for_request(request)
    request.session.cycle_key()  # what login() does before user_logged_in fires
    adopted = sandboxes.adopt_session_sandbox(request, alice)
    assert adopted == anonymous
    assert Sandbox.objects.get(pk=anonymous.pk).user == alice
    assert sandboxes.sandbox_for_request(visit(request.session, alice)) == anonymous


def test_the_sandbox_follows_the_account_across_sign_out_and_sign_in(alice):
    first_visit = visit()
    mine = sandboxes.sandbox_for_request(first_visit)
    sandboxes.adopt_session_sandbox(first_visit, alice)
    commands.send_command(mine, "deposit", "42")

    later = visit()  # signed out: a new session with its own anonymous sandbox
    stranger_view = sandboxes.sandbox_for_request(later)
    assert stranger_view != mine
    sandboxes.adopt_session_sandbox(later, alice)
    current = sandboxes.sandbox_for_request(visit(later.session, alice))
    assert current == mine
    assert timeline.write_side(current).balance == Decimal("42.00")


def test_a_signed_out_session_never_sees_the_accounts_sandbox(alice):
    request = visit()
    sandbox = sandboxes.sandbox_for_request(request)
    sandboxes.adopt_session_sandbox(request, alice)
    assert sandboxes.sandbox_for_request(visit(request.session)) != sandbox


def test_another_users_sandbox_named_in_the_session_is_never_adopted(alice, bob):
    request = visit()
    alices = sandboxes.sandbox_for_request(request)
    sandboxes.adopt_session_sandbox(request, alice)
    assert sandboxes.adopt_session_sandbox(request, bob) is None
    assert Sandbox.objects.get(pk=alices.pk).user == alice


def test_activity_is_touched_only_when_it_is_minutes_old():
    request = visit()
    sandbox = sandboxes.sandbox_for_request(request)
    an_hour_ago = timezone.now() - dt.timedelta(hours=1)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=an_hour_ago)
    sandboxes.sandbox_for_request(visit(request.session))
    touched = Sandbox.objects.get(pk=sandbox.pk).last_active_at
    assert touched > an_hour_ago
    sandboxes.sandbox_for_request(visit(request.session))
    assert Sandbox.objects.get(pk=sandbox.pk).last_active_at == touched


def busy_sandbox(days_idle):
    sandbox = Sandbox.objects.create(snapshot_interval=2)
    for _ in range(3):
        commands.send_command(sandbox, "deposit", "10")
    BalanceView.objects.create(sandbox=sandbox, amount=Decimal("30.00"), version=3)
    Checkpoint.objects.create(sandbox=sandbox, projection="balance", position=3, version=3)
    HistoryLine.objects.create(
        sandbox=sandbox, position=1, version=1, kind="deposit", amount=1, balance_after=1, recorded_at=timezone.now()
    )
    Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=timezone.now() - dt.timedelta(days=days_idle))
    return sandbox


def test_purging_removes_idle_sandboxes_with_every_row_they_own_and_keeps_active_ones():
    idle, active = busy_sandbox(40), busy_sandbox(1)
    assert sandboxes.purge_idle(30) == 1
    assert not Sandbox.objects.filter(pk=idle.pk).exists()
    for model in (StoredEvent, Snapshot, CommandRecord, LoadReport, BalanceView, Checkpoint, HistoryLine):
        assert not model.objects.filter(sandbox_id=idle.pk).exists(), model.__name__
        assert model.objects.filter(sandbox_id=active.pk).exists(), model.__name__
    assert not PurgePermit.objects.exists()


def test_the_purge_command_reports_how_many_it_removed():
    busy_sandbox(10)
    out = StringIO()
    call_command("purge_sandboxes", "--idle-days", "7", stdout=out)
    assert out.getvalue().strip() == "Purged 1 idle sandbox."
    assert not StoredEvent.objects.exists()


def test_the_purge_command_refuses_a_negative_or_nan_age():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("purge_sandboxes", "--idle-days", "-1")
    with pytest.raises(CommandError):
        call_command("purge_sandboxes", "--idle-days", "nan")
