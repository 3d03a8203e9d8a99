"""reqflow.session_store reads a session exactly as Django's database store does, in one plain statement."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reqflow.session_store import SessionStore

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


def saved(**data) -> str:
    store = SessionStore()
    store.update(data)
    store.save()
    return store.session_key


def test_it_is_the_sites_session_engine(settings):
    assert settings.SESSION_ENGINE == "reqflow.session_store"


def test_a_session_reads_back_as_djangos_store_reads_it_in_one_query():
    key = saved(lab_sandbox="abc", n=3, nested={"a": [1, 2]})
    with CaptureQueriesContext(connection) as captured:
        ours = SessionStore(key).load()
    assert ours == db.SessionStore(key).load() == {"lab_sandbox": "abc", "n": 3, "nested": {"a": [1, 2]}}
    assert len(captured.captured_queries) == 1


def test_an_expired_session_is_empty_and_its_key_forgotten():
    key = saved(lab_sandbox="abc")
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    store = SessionStore(key)
    assert store.load() == {}
    assert store.session_key is None
    assert db.SessionStore(key).load() == {}


def test_an_unknown_or_malformed_key_is_empty():
    for key in ("x" * 32, "short", "'; DROP TABLE django_session; --" + "x" * 8):
        store = SessionStore(key)
        assert store.get("lab_sandbox") is None
        assert store.session_key is None
    assert Session.objects.count() == 0  # nothing was created, and the table is still there


def test_a_session_that_expires_later_still_reads():
    key = saved(lab_sandbox="abc")
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + dt.timedelta(seconds=30))
    assert SessionStore(key).load() == {"lab_sandbox": "abc"}
