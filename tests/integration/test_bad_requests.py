"""Every bad request is a clear 4xx, never a 500, and no answer echoes what was sent.

A form in UTF-16, a field sent twice, a command id in Arabic-Indic digits, one command id reused for another
command, hostile text in a query string: each through the real middleware stack (CSRF enforced where it matters).
"""

from __future__ import annotations

import pytest
from django.test import Client

from lab.models import StoredEvent
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true"}
HOSTILE = '<b id="x">&amp;"\'</b>'


def events_of(client: Client) -> int:
    return StoredEvent.objects.filter(sandbox__session_key=client.session.session_key).count()


def test_a_form_in_utf16_is_a_400_that_says_so_even_through_the_csrf_check():
    client = visitor(enforce_csrf_checks=True)
    token = client.cookies["csrftoken"].value
    body = f"csrfmiddlewaretoken={token}&kind=deposit&amount=5"
    for extra in ({}, HX):
        response = client.post(
            "/lab/command/", body, content_type="application/x-www-form-urlencoded; charset=utf-16", **extra
        )
        assert response.status_code == 400, response.content[:300]
        assert "send it URL-encoded or as multipart/form-data, in UTF-8" in response.content.decode()
    assert events_of(client) == 0


def test_the_400_handler_renders_for_htmx_as_an_escaped_partial_that_keeps_the_targets_id():
    client = visitor(enforce_csrf_checks=True)
    response = client.post(
        "/lab/command/",
        "kind=deposit",
        content_type="application/x-www-form-urlencoded; charset=utf-16",
        HTTP_HX_TARGET="lab-command-result",
        **HX,
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert html.startswith('<div id="lab-command-result" class="lab-result lab-result--bad" role="alert">')
    hostile = client.post(
        "/lab/command/", "kind=deposit", content_type="application/x-www-form-urlencoded; charset=utf-16",
        HTTP_HX_TARGET='x"><script>', **HX,
    )  # fmt: skip
    assert "<script>" not in hostile.content.decode() and hostile.content.decode().startswith("<p ")


def test_a_field_sent_twice_is_a_400_and_nothing_is_appended():
    client = visitor()
    for extra in ({}, HX):
        response = client.post(
            "/lab/command/", "kind=deposit&kind=withdraw&amount=5", content_type="application/x-www-form-urlencoded",
            **extra,
        )  # fmt: skip
        assert response.status_code == 400
        assert "Send each field once: kind came more than once." in response.content.decode()
    assert client.post("/lab/lag/", "lag=1&lag=2", content_type="application/x-www-form-urlencoded").status_code == 400
    assert events_of(client) == 0


@pytest.mark.parametrize("command_id", ["\u0661\u0662\u0663", "\uff11\uff12\uff13", "abc\u200bdef", "\u00e9"])
def test_a_command_id_outside_ascii_letters_digits_dash_and_underscore_is_a_400(command_id):
    client = visitor()
    response = client.post("/lab/command/", {"kind": "deposit", "amount": "5", "command_id": command_id}, **HX)
    assert response.status_code == 400
    assert events_of(client) == 0


def test_one_command_id_reused_for_a_different_command_is_a_409_that_says_so():
    client = visitor()
    first = client.post("/lab/command/", {"kind": "deposit", "amount": "5", "command_id": "c-1"}, **HX)
    assert first.status_code == 200
    retry = client.post("/lab/command/", {"kind": "deposit", "amount": "5.00", "command_id": "c-1"}, **HX)
    assert retry.status_code == 200  # the same command again: its first outcome
    for other in ({"kind": "deposit", "amount": "6"}, {"kind": "withdraw", "amount": "5"}):
        reused = client.post("/lab/command/", {**other, "command_id": "c-1"}, **HX)
        assert reused.status_code == 409
        html = reused.content.decode()
        assert "this command id was already used for another command (deposit $5.00)" in html
    assert events_of(client) == 1


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/lab/log/", {"log_type": HOSTILE}),
        ("/lab/log/", {"log_page": HOSTILE}),
        ("/lab/time-travel/", {"tt": HOSTILE}),
        ("/lab/time-travel/", {"at": HOSTILE}),
        ("/lab/replay/", {"replay": HOSTILE}),
    ],
)
def test_a_bad_read_is_a_400_that_never_echoes_its_input(path, params):
    client = visitor()
    plain = client.get(path, params)
    assert plain.status_code == 400
    assert plain["Content-Type"].startswith("text/plain")
    partial = client.get(path, params, HTTP_HX_TARGET="lab-event-log", **HX)
    assert partial.status_code == 400
    assert partial.content.decode().startswith('<div id="lab-event-log" class="lab-result lab-result--bad"')
    for response in (plain, partial):
        text = response.content.decode()
        assert "<b" not in text and "x&quot;" not in text and 'id="x"' not in text, text
