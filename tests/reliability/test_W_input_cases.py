"""W5, W6 and W7 of the failure catalogue (tests/reliability/CATALOGUE.md): what a browser may send the write model.

Through the real middleware stack, with CSRF enforced where the case is about it. Each asserts the status, the
message, that nothing was appended, and that nothing reached the error log (a 4xx is an answer, not a failure).
Marked `backend`: NUL bytes and long text are where SQLite and PostgreSQL differ (PostgreSQL text cannot hold NUL).
"""

from __future__ import annotations

import html
import json
import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from lab import exchange, sandboxes
from lab.models import Sandbox, StoredEvent
from notes.models import Note
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "lab-command-result"}
FORM = "application/x-www-form-urlencoded"


def events() -> int:
    return StoredEvent.objects.count()


def text(response) -> str:
    return html.unescape(response.content.decode())


def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """No record at ERROR or above: a bad request is the visitor's mistake, not the site's."""
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not loud, [r.getMessage() for r in loud]


# --- W5: unknown command type, missing or extra fields, wrong content type, a JSON body on a form endpoint -------


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ("kind=transfer&amount=5", FORM, "Choose deposit or withdraw."),
        ("kind=deposit", FORM, "Enter an amount, for example 50."),
        ("amount=5", FORM, "This field is required."),
        ('{"kind": "deposit", "amount": "5"}', "application/json", "This field is required."),
        ("kind=deposit&amount=5", "text/plain", "This field is required."),
        ("kind=deposit&amount=5", "application/x-www-form-urlencoded; charset=utf-16", "in UTF-8"),
    ],
    ids=["unknown-kind", "no-amount", "no-kind", "json-body", "text-plain", "utf-16"],
)
def test_W5_a_malformed_command_is_a_400_naming_what_is_wrong_and_appends_nothing(caplog, body, content_type, message):
    client = visitor()
    caplog.set_level(logging.INFO)
    before = events()
    for extra in ({}, HX):
        response = client.post("/lab/command/", body, content_type=content_type, **extra)
        assert response.status_code == 400, response.content[:300]
        assert message in text(response)
    assert events() == before
    quiet(caplog)


def test_W5_extra_fields_are_ignored_as_a_browsers_form_sends_them_and_the_command_counts_once(caplog):
    # A form sends csrfmiddlewaretoken and next besides the command's fields; an unknown field is not an error.
    client = visitor()
    response = client.post("/lab/command/", {"kind": "deposit", "amount": "5", "colour": "red", "admin": "1"}, **HX)
    assert response.status_code == 200
    assert events() == 1
    quiet(caplog)


# --- W6: long text, NUL, bidi overrides, emoji, Arabic-Indic digits --------------------------------------------

HOSTILE = {
    "ten-kB": "9" * 10_000,
    "nul": "5\x00",
    "bidi": "\u202e05",
    "emoji": "5\U0001f4b0",
    "arabic-indic": "\u0665\u0660",
    "markup": "<script>alert(1)</script>",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_W6_hostile_text_in_any_command_field_is_a_400_never_echoed_and_nothing_is_appended(caplog, name):
    client = visitor()
    value = HOSTILE[name]
    for fields in ({"kind": "deposit", "amount": value}, {"kind": value, "amount": "5"},
                   {"kind": "deposit", "amount": "5", "command_id": value},
                   {"kind": "deposit", "amount": "5", "expected_version": value}):  # fmt: skip
        for extra in ({}, HX):
            response = client.post("/lab/command/", fields, **extra)
            assert response.status_code == 400, (fields, response.status_code)
            body = response.content.decode()
            assert "<script>" not in body
            if len(value) > 100:
                assert value not in body  # a 10 kB value is not sent back
    assert events() == 0
    quiet(caplog)


def test_W6_a_note_refuses_a_nul_byte_keeps_bidi_and_emoji_and_shows_markup_escaped(caplog, alice_client, alice):
    url = "/notes/concept/cqrs-event-sourcing/"
    hostile = "\u202eevil <img src=x onerror=alert(1)> \U0001f4b0 \u0665"
    refused = alice_client.post(url, {"body": hostile + "\x00"}, **HX)
    assert refused.status_code == 422  # refused, never a PostgreSQL 500 (its text cannot hold NUL)
    assert not Note.objects.filter(owner=alice).exists()
    assert alice_client.post(url, {"body": hostile}, **HX).status_code == 200
    assert Note.objects.get(owner=alice).body == hostile
    page = alice_client.get(url).content.decode()
    assert "\u202eevil" in page and "\U0001f4b0" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    quiet(caplog)


def imported(client: Client, payload: dict):
    item = {"version": 1, "type": "Deposited", "schema_version": 1, "payload": payload,
            "recorded_at": "2026-11-30T12:00:00+00:00"}  # fmt: skip
    data = json.dumps({"format": exchange.FORMAT, "version": 1, "events": [item]}).encode()
    return client.post("/lab/import/", {"log": SimpleUploadedFile("log.json", data, "application/json")}, **HX)


@pytest.mark.parametrize(
    "payload",
    [{"amount": "5\x00"}, {"amount": "9" * 10_000}, {"amount": "\u202e10.00"}, {"amount": "10.00\U0001f4b0"}],
    ids=["nul", "ten-kB", "bidi", "emoji"],
)
def test_W6_the_json_path_an_imported_log_refuses_hostile_amounts_whole(caplog, payload):
    client = visitor()
    sandbox = Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX])
    response = imported(client, payload)
    assert response.status_code == 400, text(response)[:300]
    assert "event 1" in text(response) and "9" * 200 not in text(response)
    assert events() == 0 and Sandbox.objects.count() == 1
    assert Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX]) == sandbox
    quiet(caplog)


@pytest.mark.parametrize(
    "payload", [{"amount": "\u0661\u0660.00"}, {"amount": "10.00", "note": "x" * 10_000}], ids=["arabic-indic", "extra"]
)
def test_W6_the_json_path_stores_only_what_the_engine_decoded_never_the_raw_payload(caplog, payload):
    # The import decodes each event and encodes it again: what is stored is the engine's own form of the event
    # (ASCII digits, known fields only), so neither foreign digits nor an extra 10 kB field reach the store.
    client = visitor()
    assert imported(client, payload).status_code == 200
    (event,) = StoredEvent.objects.all()
    assert event.payload == {"amount": "10.00"}
    quiet(caplog)


# --- W7: a POST naming another visitor's sandbox ------------------------------------------------------------------


def test_W7_naming_another_visitors_sandbox_in_a_post_acts_on_ones_own_and_never_theirs(caplog):
    alice, mallory = visitor(), visitor()
    alices = Sandbox.objects.get(pk=alice.session[sandboxes.SESSION_SANDBOX])
    assert alice.post("/lab/command/", {"kind": "deposit", "amount": "50"}, **HX).status_code == 200
    for field in ("sandbox", "sandbox_id", "stream_id"):
        for value in (str(alices.pk), str(alices.stream_id)):
            mallory.post("/lab/command/", {"kind": "withdraw", "amount": "50", field: value}, **HX)
            mallory.post("/lab/reset/", {field: value}, **HX)
            mallory.post("/lab/reset/undo/", {field: value, "sandbox": value}, **HX)
    alices.refresh_from_db()
    assert alices.retired_at is None
    assert [e.event_type for e in StoredEvent.objects.filter(sandbox=alices)] == ["Deposited"]
    assert not StoredEvent.objects.filter(sandbox=alices, event_type="Withdrew").exists()
    quiet(caplog)
