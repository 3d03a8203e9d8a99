"""Sign up, sign in, sign out, change password; same-site `next` only; CSRF; django-axes throttling."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

ALICE_PASSWORD = "correct-horse-battery-1"
GENERIC_LOGIN_ERROR = "Please enter a correct username and password"


def sign_in(client: Client, username: str, password: str, ip: str = "10.0.0.1", **extra):
    return client.post(reverse("accounts:login"), {"username": username, "password": password, **extra}, REMOTE_ADDR=ip)


def test_sign_up_asks_for_username_and_password_with_djangos_labels_and_email_is_optional(client):
    html = client.get(reverse("accounts:signup")).content.decode()
    for label in ("Username", "Password", "Password confirmation"):
        assert f">{label}</label>" in html
    assert ">Email (optional)</label>" in html


def test_signing_up_creates_the_account_signs_in_and_returns_to_the_page(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "carol",
            "password1": "plum-orbit-lantern-7",
            "password2": "plum-orbit-lantern-7",
            "next": "/concepts/cqrs-event-sourcing/#notes",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/concepts/cqrs-event-sourcing/#notes"
    carol = User.objects.get(username="carol")
    assert carol.email == ""
    assert client.session["_auth_user_id"] == str(carol.pk)


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/", "https:///evil.example", "javascript:x"])
def test_sign_up_ignores_an_off_site_next(client, evil):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "dave", "password1": "plum-orbit-lantern-7", "password2": "plum-orbit-lantern-7", "next": evil},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("concepts:catalog")


def test_sign_up_refuses_a_taken_username_whatever_its_case(client, alice):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "ALICE", "password1": "plum-orbit-lantern-7", "password2": "plum-orbit-lantern-7"},
    )
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert User.objects.count() == 1


def test_sign_up_refuses_mismatched_or_weak_passwords_without_crashing(client):
    mismatch = client.post(
        reverse("accounts:signup"), {"username": "erin", "password1": "plum-orbit-7", "password2": "other-pass-8"}
    )
    weak = client.post(reverse("accounts:signup"), {"username": "erin", "password1": "123", "password2": "123"})
    assert mismatch.status_code == weak.status_code == 200
    assert "marked below" in weak.content.decode()
    assert not User.objects.filter(username="erin").exists()


def test_sign_in_honours_a_same_site_next(client, alice):
    response = sign_in(client, "alice", ALICE_PASSWORD, next="/notes/")
    assert response.status_code == 302
    assert response["Location"] == "/notes/"


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/", "\\\\evil.example"])
def test_sign_in_ignores_an_off_site_next(client, alice, evil):
    response = sign_in(client, "alice", ALICE_PASSWORD, next=evil)
    assert response.status_code == 302
    assert response["Location"] == reverse("concepts:catalog")


def test_sign_in_gives_a_new_session_key(client, alice):
    client.get(reverse("accounts:login"))
    session = client.session
    session["seen"] = True
    session.save()
    before = session.session_key
    sign_in(client, "alice", ALICE_PASSWORD)
    assert client.session.session_key != before


def test_a_wrong_password_and_an_unknown_user_get_the_same_generic_error(client, alice):
    wrong = sign_in(client, "alice", "nope").content.decode()
    unknown = sign_in(client, "nobody-here", "nope").content.decode()
    assert GENERIC_LOGIN_ERROR in wrong
    assert GENERIC_LOGIN_ERROR in unknown


def test_sign_out_is_a_post_and_ends_the_session(alice_client):
    assert alice_client.get(reverse("accounts:logout")).status_code == 405
    response = alice_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in alice_client.session
    assert alice_client.get(reverse("notes:mine")).status_code == 302


def test_changing_the_password_keeps_this_session_and_the_new_password_works(alice_client, alice):
    response = alice_client.post(
        reverse("accounts:password-change"),
        {"old_password": ALICE_PASSWORD, "new_password1": "new-plum-orbit-9", "new_password2": "new-plum-orbit-9"},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password-change-done")
    assert alice_client.get(reverse("notes:mine")).status_code == 200
    alice.refresh_from_db()
    assert alice.check_password("new-plum-orbit-9")


def test_changing_the_password_needs_the_old_one(alice_client, alice):
    response = alice_client.post(
        reverse("accounts:password-change"),
        {"old_password": "wrong", "new_password1": "new-plum-orbit-9", "new_password2": "new-plum-orbit-9"},
    )
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(ALICE_PASSWORD)


def test_changing_the_password_needs_sign_in(client):
    response = client.get(reverse("accounts:password-change"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("name", ["accounts:login", "accounts:signup", "accounts:logout"])
def test_account_forms_refuse_a_post_without_a_csrf_token(alice, name):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse(name), {"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 403
    assert "_auth_user_id" not in client.session


def test_the_password_change_form_refuses_a_post_without_a_csrf_token(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(
        reverse("accounts:password-change"),
        {"old_password": ALICE_PASSWORD, "new_password1": "new-plum-orbit-9", "new_password2": "new-plum-orbit-9"},
    )
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.check_password(ALICE_PASSWORD)


def test_after_five_failures_that_username_is_locked_out_from_that_address_even_with_the_right_password(
    client, alice, settings
):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert sign_in(client, "alice", "guess", ip="10.0.0.9").status_code == 200
    assert sign_in(client, "alice", "guess", ip="10.0.0.9").status_code == 429  # the fifth failure trips it
    locked = sign_in(client, "alice", ALICE_PASSWORD, ip="10.0.0.9")
    assert locked.status_code == 429
    html = locked.content.decode()
    assert "too many unsuccessful sign-in attempts" in html
    assert "alice" not in html  # generic: the page says nothing about the account
    assert "_auth_user_id" not in client.session


def test_a_lockout_does_not_lock_the_same_user_out_from_another_address(alice):
    attacker = Client()
    for _ in range(6):
        sign_in(attacker, "alice", "guess", ip="10.0.0.9")
    real_alice = Client()
    response = sign_in(real_alice, "alice", ALICE_PASSWORD, ip="192.0.2.7")
    assert response.status_code == 302
    assert real_alice.session["_auth_user_id"] == str(alice.pk)


def test_a_lockout_for_one_username_does_not_lock_another_user_on_the_same_address(alice, bob):
    client = Client()
    for _ in range(6):
        sign_in(client, "alice", "guess", ip="10.0.0.9")
    response = sign_in(client, "bob", "correct-horse-battery-2", ip="10.0.0.9")
    assert response.status_code == 302


def test_fewer_failures_than_the_limit_do_not_lock_anyone_out(client, alice):
    for _ in range(4):
        sign_in(client, "alice", "guess", ip="10.0.0.9")
    assert sign_in(client, "alice", ALICE_PASSWORD, ip="10.0.0.9").status_code == 302


def _anonymous_sandbox(client: Client):
    from lab.models import Sandbox
    from lab.sandboxes import SESSION_SANDBOX

    session = client.session
    session.save()
    sandbox = Sandbox.objects.create(session_key=session.session_key)
    session[SESSION_SANDBOX] = str(sandbox.pk)
    session.save()
    return sandbox


def test_signing_in_hands_the_visitors_lab_sandbox_to_the_account_and_it_comes_back_next_time(client, alice):
    from lab.sandboxes import SESSION_SANDBOX

    sandbox = _anonymous_sandbox(client)
    assert sign_in(client, "alice", ALICE_PASSWORD).status_code == 302
    sandbox.refresh_from_db()
    assert sandbox.user_id == alice.pk
    client.post(reverse("accounts:logout"))

    elsewhere = Client()
    sign_in(elsewhere, "alice", ALICE_PASSWORD, ip="192.0.2.7")
    assert elsewhere.session[SESSION_SANDBOX] == str(sandbox.pk)


def test_signing_up_keeps_the_sandbox_the_visitor_was_using(client):
    sandbox = _anonymous_sandbox(client)
    client.post(
        reverse("accounts:signup"),
        {"username": "frank", "password1": "plum-orbit-lantern-7", "password2": "plum-orbit-lantern-7"},
    )
    sandbox.refresh_from_db()
    assert sandbox.user == User.objects.get(username="frank")


def test_signing_in_never_takes_over_another_accounts_sandbox(client, alice, bob):
    from lab.models import Sandbox
    from lab.sandboxes import SESSION_SANDBOX

    bobs = Sandbox.objects.create(user=bob)
    session = client.session
    session[SESSION_SANDBOX] = str(bobs.pk)
    session.save()
    sign_in(client, "alice", ALICE_PASSWORD)
    bobs.refresh_from_db()
    assert bobs.user_id == bob.pk
