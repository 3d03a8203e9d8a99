"""A domain lab survives sign-in: Django gives the session a new key when a learner signs in (against session
fixation), and a domain sandbox is found by that key, so without lab.domain_labs.domain_sandboxes_follow_session
the ledger, order book or document a visitor built would vanish the moment they signed in."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from lab.models import Sandbox
from tests.integration.test_accounts import sign_in
from tests.integration.test_domain_views import send, write_version

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

PASSWORD = "correct-horse-battery-1"


def test_a_visitors_domain_labs_follow_the_session_through_sign_in(client):
    User.objects.create_user("alice", password=PASSWORD)
    assert send(client, "ledger", kind="open", account="alice").status_code == 200
    edit = {"kind": "insert", "position": "0", "text": "hi", "base_version": "0", "tab": "A"}
    assert send(client, "document", **edit).status_code == 200
    before = {(s.domain, s.pk) for s in Sandbox.objects.all()}
    old_key = client.session.session_key

    assert sign_in(client, "alice", PASSWORD).status_code == 302
    assert client.session.session_key != old_key  # the key did change: the case this guards

    assert write_version(client, "ledger") == 1 and write_version(client, "document") == 1
    assert {(s.domain, s.pk) for s in Sandbox.objects.all()} == before  # the same sandboxes, none new
    assert set(Sandbox.objects.values_list("session_key", flat=True)) == {client.session.session_key}


def test_signing_in_elsewhere_takes_no_one_elses_domain_lab(client):
    User.objects.create_user("bob", password=PASSWORD)
    visitor = Client()
    assert send(visitor, "ledger", kind="open", account="carol").status_code == 200

    assert sign_in(client, "bob", PASSWORD).status_code == 302
    assert write_version(client, "ledger") == 0  # bob's fresh session has no ledger of its own
    assert write_version(visitor, "ledger") == 1  # and the visitor keeps theirs
