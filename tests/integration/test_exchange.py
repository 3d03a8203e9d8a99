"""Export and import of a sandbox's log (lab.exchange): the download, the round trip into a fresh (undoable)
sandbox, and every refused file a 400 that names its first problem and changes nothing."""

from __future__ import annotations

import html
import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory

from lab import commands, controls, exchange, queries, sandboxes, timeline
from lab.models import CommandRecord, Sandbox, Snapshot, StoredEvent
from lab.projector import drain
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def learner() -> Client:
    return visitor(CONCEPT)


def current(client: Client) -> Sandbox:
    return Sandbox.objects.get(pk=client.session[sandboxes.SESSION_SANDBOX])


def upload(client: Client, data: bytes, **extra):
    return client.post("/lab/import/", {"log": SimpleUploadedFile("log.json", data, "application/json")}, **extra)


def text(response) -> str:
    return html.unescape(response.content.decode())


def document(*events: dict, version: object = 1) -> bytes:
    return json.dumps({"format": exchange.FORMAT, "version": version, "events": list(events)}).encode()


def event(number: int, kind: str = "Deposited", amount: str = "10.00", schema: int = 1, **changes) -> dict:
    payload = {"amount_cents": int(Decimal(amount) * 100), "currency": "USD"} if schema == 2 else {"amount": amount}
    item = {"version": number, "type": kind, "schema_version": schema, "payload": payload}
    return {**item, "recorded_at": "2026-11-30T12:00:00+00:00", **changes}


def everything() -> tuple[int, ...]:
    """Rows an import could add or change: sandboxes (and retired ones), events, snapshots, command records."""
    return (
        Sandbox.objects.count(),
        Sandbox.objects.filter(retired_at__isnull=False).count(),
        StoredEvent.objects.count(),
        Snapshot.objects.count(),
        CommandRecord.objects.count(),
    )


def stream(sandbox: Sandbox) -> list[tuple]:
    return [(e.version, e.event_type, e.schema_version, e.payload) for e in StoredEvent.objects.filter(
        sandbox_id=sandbox.pk).order_by("version")]  # fmt: skip


def fill(sandbox: Sandbox) -> None:
    """Deposits in both schemas, a withdrawal and a snapshot: what a learner's log may hold."""
    for amount in ("1000", "405.50"):
        commands.send_command(sandbox, "deposit", amount)
    controls.set_deposit_schema(sandbox, 2)
    commands.send_command(sandbox, "deposit", "20")
    commands.send_command(sandbox, "withdraw", "125.25")
    controls.set_deposit_schema(sandbox, 1)
    commands.send_command(sandbox, "deposit", "0.01")


# --- Export ---------------------------------------------------------------------------------------------------


def test_export_is_a_json_download_of_the_stream_in_order_without_any_id(learner):
    sandbox = current(learner)
    fill(sandbox)
    response = learner.get("/lab/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="reqflow-lab-log-')
    assert response["Content-Disposition"].endswith('.json"')
    body = text(response)
    data = json.loads(body)
    assert data["format"] == "reqflow-lab-log" and data["version"] == 1
    assert [(e["version"], e["type"], e["schema_version"], e["payload"]) for e in data["events"]] == stream(sandbox)
    assert all(set(e) == set(exchange.EVENT_KEYS) for e in data["events"])
    rows = StoredEvent.objects.filter(sandbox_id=sandbox.pk)
    ids = {str(sandbox.pk), sandbox.session_key, *(str(r.event_id) for r in rows), *(r.command_id for r in rows)}
    ids |= {str(r.correlation_id) for r in rows}
    assert not [i for i in ids if i and i in body]


def test_an_empty_sandbox_exports_an_empty_log_that_imports(learner):
    response = learner.get("/lab/export/")
    assert json.loads(response.content)["events"] == []
    assert upload(learner, response.content, **HX).status_code == 200


# --- Round trip -----------------------------------------------------------------------------------------------


def test_export_then_import_gives_a_fresh_sandbox_with_the_same_events_and_balances(learner):
    old = current(learner)
    controls.set_lag(old, 0)
    fill(old)
    drain([old.pk])
    exported = learner.get("/lab/export/").content
    response = upload(learner, exported, **HX)
    assert response.status_code == 200
    assert "Imported 5 events into a fresh sandbox: balance $1,300.26 at v=5." in text(response)
    new = current(learner)
    assert new.pk != old.pk
    assert stream(new) == stream(old)
    assert timeline.write_side(new).balance == timeline.write_side(old).balance == Decimal("1300.26")
    controls.set_lag(new, 0)  # a fresh sandbox has the default lag; the events are due at once now
    drain([new.pk])
    assert queries.query(new).balance == queries.query(old).balance == Decimal("1300.26")
    assert queries.query(new).read_version == 5
    # The old sandbox is kept for Undo, with its log.
    assert Sandbox.objects.get(pk=old.pk).retired_at is not None and len(stream(old)) == 5
    assert learner.post("/lab/reset/undo/", **HX).status_code == 200
    assert current(learner).pk == old.pk
    # And the import's file exports again as the same events.
    again = json.loads(learner.get("/lab/export/").content)["events"]
    assert [{k: e[k] for k in ("version", "type", "schema_version", "payload")} for e in again] == [
        {k: e[k] for k in ("version", "type", "schema_version", "payload")} for e in json.loads(exported)["events"]
    ]


def test_an_import_without_javascript_redirects_back_with_the_outcome(learner):
    response = upload(learner, document(event(1), event(2, "Withdrew", "4.00")))
    assert response.status_code == 303
    assert response["Location"].endswith("#lab-reset-section")
    page = text(learner.get(response["Location"]))
    assert "Imported 2 events into a fresh sandbox: balance $6.00 at v=2." in page
    assert timeline.write_side(current(learner)).version == 2


def test_imported_events_are_stamped_with_the_time_of_the_import_and_kept_in_order(learner):
    upload(learner, document(event(1, recorded_at="2001-01-01T00:00:00+00:00"), event(2, amount="2.00")), **HX)
    rows = list(StoredEvent.objects.filter(sandbox_id=current(learner).pk).order_by("position"))
    assert [r.version for r in rows] == [1, 2]
    assert all(r.recorded_at.year > 2001 for r in rows)


# --- Refused files --------------------------------------------------------------------------------------------

FOUR_OVER_THE_LIMIT = document(event(1), event(2), event(3), event(4, amount="20000.00"))
BAD_FILES = {
    "malformed JSON": (
        b'{"format": "reqflow-lab-log", "version": 1, "events": [',
        "The file is not valid JSON (line 1",
    ),
    "not UTF-8": (b"\xff\xfe{}", "The file is not UTF-8 text"),
    "not an object": (b"[1, 2]", "The file must hold a JSON object"),
    "another format": (json.dumps({"format": "csv", "version": 1, "events": []}).encode(), "not a Reqflow lab log"),
    "wrong version": (document(event(1), version=2), "The file's format version is 2; this lab reads version 1."),
    "no events": (json.dumps({"format": exchange.FORMAT, "version": 1}).encode(), 'The file has no "events" list.'),
    "unknown type": (document(event(1), event(2, "Refunded")), "event 2: unknown event type 'Refunded'"),
    "unknown schema": (document(event(1, schema=3)), "event 1: Deposited has no schema version 3 (it has 1, 2)."),
    "out of order": (document(event(1), event(3)), "event 2: version 3 is out of order (expected 2"),
    "missing key": (document({"version": 1, "type": "Deposited"}), "event 1: missing 'schema_version', 'payload'"),
    "bad time": (document(event(1, recorded_at="yesterday")), "event 1: recorded_at 'yesterday' is not an ISO 8601"),
    "unreadable payload": (document(event(1, amount="-5")), "event 1: its payload cannot be read"),
    "over the limit": (FOUR_OVER_THE_LIMIT, "event 4: amount 20000.00 is above the $10,000.00 limit."),
    "overdraft": (
        document(event(1), event(2, "Withdrew", "20.00")),
        "event 2: withdrawing $20.00 would overdraw the account (the balance before it is $10.00)",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_refused_file_is_a_400_naming_its_first_problem_and_changes_nothing(learner, name):
    data, message = BAD_FILES[name]
    before, sandbox = everything(), current(learner)
    response = upload(learner, data, **HX)
    assert response.status_code == 400
    assert message in text(response)
    assert everything() == before
    assert current(learner).pk == sandbox.pk
    assert sandboxes.undo_offer(learner.session) is None


def test_a_refused_file_without_javascript_re_renders_the_page_with_the_message(learner):
    before = everything()
    response = upload(learner, FOUR_OVER_THE_LIMIT)
    assert response.status_code == 400
    assert "event 4: amount 20000.00 is above the $10,000.00 limit." in text(response)
    assert everything() == before


def test_the_first_problem_is_the_one_named():
    data = document(event(1, amount="20000.00"), event(5, "Refunded"))
    with pytest.raises(exchange.ImportRefused, match=r"^event 1: amount 20000.00 is above"):
        exchange.parse_log(data)


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(learner):
    cap = exchange.max_bytes()
    assert cap == 62 * 1024  # the site's 64 KiB body cap less the upload's envelope
    data = document(event(1))
    data = data[:-1] + b" " * (cap + 1 - len(data)) + data[-1:]
    assert len(data) == cap + 1 and json.loads(data)
    before = everything()
    response = upload(learner, data, **HX)
    assert response.status_code == 400
    assert "The file is 62.0 KiB; an import takes at most 62 KiB." in text(response)
    assert everything() == before
    # One byte less is a file like any other.
    assert upload(learner, data[:-2] + data[-1:], **HX).status_code == 200


def test_a_file_with_more_events_than_a_sandbox_holds_is_refused(learner, settings):
    settings.LAB_MAX_EVENTS_PER_SANDBOX = 10
    before = everything()
    response = upload(learner, document(*(event(n) for n in range(1, 12))), **HX)
    assert response.status_code == 400
    assert "The file holds 11 events; a sandbox holds at most 10." in text(response)
    assert everything() == before
    assert upload(learner, document(*(event(n) for n in range(1, 11))), **HX).status_code == 200


@pytest.mark.parametrize("post", [{}, {"log": "not a file"}])
def test_a_post_without_a_file_is_a_400_that_says_what_to_send(learner, post):
    before = everything()
    response = learner.post("/lab/import/", post, **HX)
    assert response.status_code == 400
    assert "Choose a log file to import" in text(response)
    assert everything() == before


def test_an_empty_file_is_a_400(learner):
    response = upload(learner, b"", **HX)
    assert response.status_code == 400
    assert "The file is empty" in text(response)


def test_csrf_is_enforced_on_import():
    client = visitor(CONCEPT, enforce_csrf_checks=True)
    before = everything()
    assert upload(client, document(event(1)), **HX).status_code == 403
    assert everything() == before
    token = client.cookies["csrftoken"].value
    assert upload(client, document(event(1)), HTTP_X_CSRFTOKEN=token, **HX).status_code == 200
    assert timeline.write_side(current(client)).version == 1


def test_get_on_import_and_post_on_export_are_405(learner):
    assert learner.get("/lab/import/").status_code == 405
    assert learner.post("/lab/export/").status_code == 405


def test_an_import_is_all_or_nothing_when_the_store_fails_midway(learner, monkeypatch):
    """Fault injection: the second append (the run of v2 deposits) fails; the first run and the reset roll back."""
    sandbox = current(learner)
    data = document(event(1), event(2, schema=2), event(3))
    real_append, calls = exchange.store.append, []

    def failing_append(*args, **kwargs):
        calls.append(kwargs.get("deposit_schema"))
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(exchange.store, "append", failing_append)
    before = everything()
    request = RequestFactory().post("/lab/import/")
    request.session, request.user = learner.session, AnonymousUser()
    with pytest.raises(RuntimeError):
        exchange.import_log(request, data)
    assert calls == [1, 2]
    assert everything() == before
    # The session still names the sandbox it had, and offers no Undo of a reset that never happened.
    assert request.session[sandboxes.SESSION_SANDBOX] == str(sandbox.pk)
    assert sandboxes.undo_offer(request.session) is None
