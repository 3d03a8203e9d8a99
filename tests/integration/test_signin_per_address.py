"""Sign-in is throttled per address too: guesses spread over many usernames from one address stop at
SIGNIN_FAILURES_PER_ADDRESS, while another address and the per-username lock work as before."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

ALICE_PASSWORD = "correct-horse-battery-1"


def sign_in(client: Client, username: str, password: str, ip: str):
    return client.post(reverse("accounts:login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_120_guesses_over_30_usernames_from_one_address_are_stopped_at_the_per_address_limit(client, settings):
    settings.SIGNIN_FAILURES_PER_ADDRESS = 30
    statuses = [sign_in(client, f"user{i % 30}", f"guess{i}", ip="10.1.0.1").status_code for i in range(120)]
    # Four guesses a username stay under the per-username lock (5); the 30th failure from the address trips its own.
    assert statuses[:29] == [200] * 29
    assert statuses[29:] == [429] * 91
    assert "too many unsuccessful sign-in attempts" in sign_in(client, "user0", "x", ip="10.1.0.1").content.decode()


def test_an_address_at_its_limit_refuses_even_the_right_password_but_another_address_signs_in(client, alice, settings):
    settings.SIGNIN_FAILURES_PER_ADDRESS = 6
    for i in range(5):
        assert sign_in(client, f"someone{i}", "guess", ip="10.1.0.2").status_code == 200
    assert sign_in(client, "someone5", "guess", ip="10.1.0.2").status_code == 429  # the sixth failure trips it
    assert sign_in(client, "alice", ALICE_PASSWORD, ip="10.1.0.2").status_code == 429
    assert "_auth_user_id" not in client.session
    assert sign_in(Client(), "alice", ALICE_PASSWORD, ip="10.1.0.3").status_code == 302
