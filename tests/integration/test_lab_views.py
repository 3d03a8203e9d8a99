"""The lab's HTTP endpoints: full page vs htmx partial, CSRF, the no-JavaScript path, and bad input never a 500."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from lab.models import Sandbox, StoredEvent
from tests.integration.lab_events import visitor

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


class _TextOf(HTMLParser):
    """The text inside the first element carrying data-testid=<testid>, nested elements included."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "source", "option"}

    def __init__(self, testid: str) -> None:
        super().__init__()
        self.testid, self.depth, self.found, self.parts = testid, 0, False, []

    def handle_starttag(self, tag, attrs):
        if self.depth:
            self.depth += tag not in self.VOID
        elif not self.found and ("data-testid", self.testid) in attrs:
            self.found, self.depth = True, 0 if tag in self.VOID else 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.parts.append(data)


def text_of(html: str, testid: str) -> str:
    parser = _TextOf(testid)
    parser.feed(html)
    assert parser.found, f"no data-testid={testid} in the response"
    return " ".join(" ".join(parser.parts).split())


def write_version(client: Client) -> int:
    return int(text_of(client.get("/lab/").content.decode(), "write-version"))


def deposit(client: Client, amount: str = "50", **extra: str):
    return client.post("/lab/command/", {"kind": "deposit", "amount": amount, **extra}, **HX)


@pytest.fixture
def learner() -> Client:
    return visitor(CONCEPT)


def test_the_concept_page_renders_the_lab_with_every_test_id(learner):
    html = learner.get(CONCEPT).content.decode()
    for testid in (
        "lab", "amount", "deposit", "withdraw", "query", "command-result", "write-version", "write-balance",
        "read-version", "read-balance", "query-result", "lag", "event-log", "take-snapshot", "rebuild",
        "time-travel", "time-travel-state", "reset",
    ):  # fmt: skip
        assert f'data-testid="{testid}"' in html, testid
    assert re.search(r'<form[^>]+action="/lab/command/"', html)
    assert 'hx-ext="ws"' in html and 'ws-connect="/ws/lab/"' in html
    assert re.search(r'<input type="range"[^>]+data-testid="lag"', html)
    assert re.search(r'<input type="range"[^>]+data-testid="time-travel"', html)


def test_an_htmx_deposit_answers_with_partials_not_a_page(learner):
    response = deposit(learner, "50")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Deposited" in text_of(html, "command-result") or "Deposited" in html
    assert 'hx-swap-oob="true"' in html
    assert text_of(html, "write-version") == "1"
    assert StoredEvent.objects.count() == 1


def live_deposit(client: Client, amount: str, **data: str):
    """A deposit from a page whose WebSocket is open (lab.js adds the header)."""
    return client.post("/lab/command/", {"kind": "deposit", "amount": amount, **data}, HTTP_X_LAB_LIVE="1", **HX)


def test_with_a_live_socket_a_deposit_answers_with_its_outcome_only_and_the_version_it_left(learner):
    deposit(learner, "5")
    response = live_deposit(learner, "50")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Deposited $50.00" in text_of(html, "command-result")
    ids = re.findall(r'\bid="(lab-[\w-]+)"', html)
    assert ids == ["lab-command-result", "lab-command-id", "lab-expected-version"]
    assert re.search(r'id="lab-expected-version" name="expected_version" value="2"', html)
    # The next command from this tab names v=2 and goes through (no "changed meanwhile").
    assert live_deposit(learner, "1", expected_version="2").status_code == 200
    assert StoredEvent.objects.count() == 3


def test_a_command_writes_nothing_to_the_session(learner):
    # A session save after each command was a second write transaction, taking SQLite's write lock just when
    # the projector wanted it for that very command (read your writes waits for the stream's head instead).
    from django.conf import settings

    assert deposit(learner, "5").status_code == 200
    response = live_deposit(learner, "5")
    assert response.status_code == 200
    assert settings.SESSION_COOKIE_NAME not in response.cookies


def test_read_your_writes_waits_for_the_version_of_the_last_command(learner):
    deposit(learner, "5")
    deposit(learner, "6")
    # No projector runs here: the bounded wait runs out and the answer says which version it waited for.
    response = learner.get("/lab/query/", {"read_your_writes": "1", "lab_query": "1"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "stale" in html.split('data-testid="query-result"')[1].split("</div>")[0]
    assert re.search(r"Waited \d+\.\d s for v=2\.", text_of(html, "query-result"))


def test_with_a_live_socket_a_rejection_still_says_why(learner):
    response = live_deposit(learner, "0")
    assert response.status_code == 400
    assert "Rejected" in text_of(response.content.decode(), "command-result") or "amount" in response.content.decode()
    response = learner.post("/lab/command/", {"kind": "withdraw", "amount": "10"}, HTTP_X_LAB_LIVE="1", **HX)
    assert "Rejected" in text_of(response.content.decode(), "command-result")
    assert StoredEvent.objects.count() == 0


def test_a_deposit_without_javascript_redirects_back_to_the_concept_page_and_shows_the_outcome(learner):
    response = learner.post("/lab/command/", {"kind": "deposit", "amount": "25.50", "next": CONCEPT})
    assert response.status_code == 303
    assert response["Location"] == f"{CONCEPT}#lab-write"
    page = learner.get(response["Location"]).content.decode()
    assert "Deposited" in page
    assert text_of(page, "write-balance") == "$25.50"
    # The outcome is shown once, not on every later visit.
    assert "Deposited $25.50" not in text_of(learner.get(CONCEPT).content.decode(), "command-result")


def test_a_no_javascript_post_never_redirects_off_the_site(learner):
    response = learner.post("/lab/command/", {"kind": "deposit", "amount": "5", "next": "https://evil.example/"})
    assert response.status_code == 303
    assert response["Location"].startswith("/lab/")


def test_csrf_is_enforced_on_commands():
    client = visitor(CONCEPT, enforce_csrf_checks=True)
    refused = client.post("/lab/command/", {"kind": "deposit", "amount": "50"}, **HX)
    assert refused.status_code == 403
    assert StoredEvent.objects.count() == 0
    token = client.cookies["csrftoken"].value
    accepted = client.post("/lab/command/", {"kind": "deposit", "amount": "50"}, HTTP_X_CSRFTOKEN=token, **HX)
    assert accepted.status_code == 200
    assert StoredEvent.objects.count() == 1


@pytest.mark.parametrize("amount", ["abc", "", "-5", "0", "1.234", "1e9999", "NaN", "Infinity", "10000.01", "1\x00"])
def test_a_bad_amount_is_a_400_with_a_clear_message_and_appends_nothing(learner, amount):
    response = deposit(learner, amount)
    assert response.status_code == 400
    result = text_of(response.content.decode(), "command-result")
    assert "amount" in result.lower()
    assert StoredEvent.objects.count() == 0


def test_a_bad_amount_without_javascript_re_renders_the_page_with_the_message(learner):
    response = learner.post("/lab/command/", {"kind": "deposit", "amount": "lots", "next": CONCEPT})
    html = response.content.decode()
    assert response.status_code == 400
    assert "<html" in html and 'data-testid="lab"' in html
    assert 'aria-invalid="true"' in html
    assert "Enter a valid amount" in html


def test_an_overdraft_is_rejected_with_the_rule_and_appends_nothing(learner):
    deposit(learner, "10")
    response = learner.post("/lab/command/", {"kind": "withdraw", "amount": "30"}, **HX)
    result = text_of(response.content.decode(), "command-result")
    assert response.status_code == 200
    assert "Rejected" in result and "overdraw" in result
    assert StoredEvent.objects.count() == 1


def test_a_command_from_a_tab_that_missed_a_change_is_a_409_changed_meanwhile(learner):
    deposit(learner, "10", expected_version="0")
    response = deposit(learner, "10", expected_version="0")
    assert response.status_code == 409
    assert "changed meanwhile" in response.content.decode()
    assert StoredEvent.objects.count() == 1


def test_a_repeated_command_id_appends_once(learner):
    first = deposit(learner, "10", command_id="cmd-1")
    again = deposit(learner, "10", command_id="cmd-1")
    assert first.status_code == again.status_code == 200
    assert StoredEvent.objects.count() == 1


@pytest.mark.parametrize(
    "url",
    [
        "/lab/command/", "/lab/lag/", "/lab/snapshot-interval/", "/lab/schema/", "/lab/projector/",
        "/lab/snapshot/", "/lab/rebuild/", "/lab/retro/", "/lab/reset/",
    ],
)  # fmt: skip
def test_get_on_a_mutating_url_is_405(learner, url):
    assert learner.get(url).status_code == 405


@pytest.mark.parametrize("lag", ["abc", "-1", "10.1", "1e9", "nan", ""])
def test_a_bad_lag_is_a_400_with_a_message(learner, lag):
    response = learner.post("/lab/lag/", {"lag": lag}, **HX)
    assert response.status_code == 400
    assert "lag" in response.content.decode().lower()


def test_a_lag_takes_effect_at_once(learner):
    response = learner.post("/lab/lag/", {"lag": "1.5"}, **HX)
    assert response.status_code == 200
    assert Sandbox.objects.get(retired_at__isnull=True).lag_ms == 1500
    assert 'data-lag="1.5"' in response.content.decode()


@pytest.mark.parametrize("interval", ["-1", "x", "1001", "2.5"])
def test_a_bad_snapshot_interval_is_a_400(learner, interval):
    assert learner.post("/lab/snapshot-interval/", {"interval": interval}, **HX).status_code == 400


def test_a_bad_control_without_javascript_re_renders_the_page(learner):
    response = learner.post("/lab/lag/", {"lag": "soon", "next": CONCEPT})
    assert response.status_code == 400
    assert "<html" in response.content.decode()


def test_a_query_before_the_projection_caught_up_is_marked_stale(learner):
    deposit(learner, "50")
    response = learner.get("/lab/query/", **HX)
    answer = text_of(response.content.decode(), "query-result")
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "stale" in response.content.decode().split('data-testid="query-result"')[1].split("</div>")[0]
    assert "$0.00" in answer


def test_a_query_without_javascript_renders_on_the_concept_page(learner):
    page = learner.get(CONCEPT, {"lab_query": "1"}).content.decode()
    assert "from read model" in page


def test_the_event_log_partial_for_htmx_and_the_whole_page_without(learner):
    for amount in ("1", "2", "3"):
        deposit(learner, amount)
    partial = learner.get("/lab/log/", {"log_page": "1"}, **HX).content.decode()
    assert "<html" not in partial
    rows = re.findall(r'data-testid="event-row" data-position="(\d+)" data-version="(\d+)" data-type="(\w+)"', partial)
    assert [int(v) for _, v, _ in rows] == [3, 2, 1]  # newest first
    assert "<html" in learner.get("/lab/log/").content.decode()
    assert learner.get("/lab/log/", {"log_page": "x"}, **HX).status_code == 400


def test_the_event_log_filters_by_type(learner):
    deposit(learner, "10")
    learner.post("/lab/command/", {"kind": "withdraw", "amount": "5"}, **HX)
    partial = learner.get("/lab/log/", {"log_type": "Withdrew"}, **HX).content.decode()
    assert re.findall(r'data-type="(\w+)"', partial) == ["Withdrew"]


def test_time_travel_shows_the_balance_at_a_version(learner):
    for amount in ("10", "20", "30"):
        deposit(learner, amount)
    html = learner.get("/lab/time-travel/", {"tt": "2"}, **HX).content.decode()
    state = text_of(html, "time-travel-state")
    assert "v=2" in state and "$30.00" in state


def test_replay_steps_one_event_at_a_time(learner):
    deposit(learner, "10")
    deposit(learner, "20")
    frame = learner.get("/lab/replay/", {"replay": "1"}, **HX).content.decode()
    assert 'data-version="1"' in frame and "$10.00" in frame
    frame = learner.get("/lab/replay/", {"replay": "2"}, **HX).content.decode()
    assert 'data-version="2"' in frame and "$30.00" in frame


def test_a_replayed_deposit_shows_its_amount_whatever_its_schema(learner):
    deposit(learner, "10")
    assert learner.post("/lab/schema/", {"version": "2"}, **HX).status_code == 200
    deposit(learner, "1234.50")  # stored as schema v2: amount_cents, no "amount" field
    frame = text_of(learner.get("/lab/replay/", {"replay": "2"}, **HX).content.decode(), "replay-frame")
    # The step shows its arithmetic with the v2 deposit's amount (stored in cents): "$10.00 + $1,234.50 = $1,244.50".
    assert "Deposited" in frame and "$10.00 + $1,234.50 = $1,244.50" in frame
    frame = text_of(learner.get("/lab/replay/", {"replay": "1"}, **HX).content.decode(), "replay-frame")
    assert "$0.00 + $10.00 = $10.00" in frame


def test_the_event_log_shows_each_events_stream(learner):
    deposit(learner, "10")
    sandbox = Sandbox.objects.get()
    partial = learner.get("/lab/log/", **HX).content.decode()
    assert f"<dt>Stream</dt><dd><code>{sandbox.stream_id}</code></dd>" in partial
    assert f"&quot;stream_id&quot;: &quot;{sandbox.stream_id}&quot;" in partial  # in the JSON the copy button copies


def test_reset_starts_a_fresh_sandbox(learner):
    deposit(learner, "10")
    response = learner.post("/lab/reset/", {}, **HX)
    assert response.status_code == 200
    assert text_of(response.content.decode(), "write-version") == "0"
    assert write_version(learner) == 0


def test_the_polling_endpoint_returns_every_live_partial_out_of_band(learner):
    html = learner.get("/lab/state/", **HX).content.decode()
    for part in ("lab-versions", "lab-write-model", "lab-read-model", "lab-event-log", "lab-projection"):
        assert f'id="{part}"' in html
    assert html.count('hx-swap-oob="true"') >= 5


def test_a_full_sandbox_is_a_422_that_says_to_reset(learner, settings):
    settings.LAB_MAX_EVENTS_PER_SANDBOX = 10
    for _ in range(10):
        assert deposit(learner, "1").status_code == 200
    response = deposit(learner, "1")
    assert response.status_code == 422
    assert "full" in text_of(response.content.decode(), "command-result")
    assert StoredEvent.objects.count() == 10


def test_projector_controls_answer_with_the_new_state(learner):
    html = learner.post("/lab/projector/", {"action": "pause"}, **HX).content.decode()
    assert "Resume projection" in html and "paused" in html
    html = learner.post("/lab/projector/", {"action": "resume"}, **HX).content.decode()
    assert "Pause projection" in html
    assert learner.post("/lab/projector/", {"action": "explode"}, **HX).status_code == 400
