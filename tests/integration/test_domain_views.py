"""The domain labs' HTTP endpoints (lab.domain_views): pages, htmx answers and the no-JavaScript path, CSRF, bad input
a 400 that reaches no sandbox, and a visitor's sandbox out of every other visitor's reach."""

from __future__ import annotations

import re

import pytest
from django.test import Client, override_settings

from lab.models import Sandbox, StoredEvent
from tests.integration.test_lab_views import text_of

CONCEPT = "/concepts/cqrs-event-sourcing/"
HX = {"HTTP_HX_REQUEST": "true"}
DOMAINS = ("ledger", "orderbook", "document")

pytestmark = [pytest.mark.django_db, pytest.mark.backend]


def page(client: Client, domain: str) -> str:
    response = client.get(f"/lab/{domain}/")
    assert response.status_code == 200
    return response.content.decode()


def send(client: Client, domain: str, **fields: str):
    return client.post(f"/lab/{domain}/command/", fields, **HX)


def write_version(client: Client, domain: str) -> int:
    return int(text_of(page(client, domain), "write-version"))


def events_of(domain: str) -> int:
    return StoredEvent.objects.filter(stream_id__startswith=f"{domain}-").count()


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_lab_page_shows_its_domain_and_looking_creates_nothing(client, domain):
    html = page(client, domain)
    assert re.search(rf'data-testid="architecture-lab" data-domain="{domain}"', html)
    for testid in ("event-log", "write-version", "read-version", "lag", "rebuild", "time-travel"):
        assert f'data-testid="{testid}"' in html, testid
    assert 'href="/concepts/cqrs-event-sourcing/#architectures"' in html  # the way back to the cards
    assert "What to do here" in html  # a first visit says what to do
    assert text_of(html, "write-version") == "0"
    assert not Sandbox.objects.exists()
    assert "sessionid" not in client.cookies


def test_each_part_of_the_contract_is_on_its_own_lab(client):
    assert 'data-testid="restart-exchange"' in page(client, "orderbook")
    assert 'data-testid="order-book"' in page(client, "orderbook")
    assert 'data-testid="ledger-total"' in page(client, "ledger")
    assert 'data-testid="document-text"' in page(client, "document")
    assert 'data-testid="restart-exchange"' not in page(client, "ledger")


def test_the_three_cards_of_the_concept_page_link_their_labs(client):
    html = client.get(CONCEPT).content.decode()
    cards = re.search(r'<section id="architectures".*?</section>', html, re.S).group(0)
    links = re.findall(r'href="(/lab/[a-z]+/)" data-testid="architecture-try-it" data-domain="([a-z]+)"', cards)
    assert links == [(f"/lab/{d}/", d) for d in DOMAINS]
    for domain in DOMAINS:
        assert client.get(f"/lab/{domain}/").status_code == 200


def test_an_unknown_lab_is_a_404_and_a_get_of_a_command_a_405(client):
    assert client.get("/lab/bank/").status_code == 404
    assert client.post("/lab/ledger/restart/", **HX).status_code == 404  # only the exchange restarts
    assert client.get("/lab/ledger/command/").status_code == 405


@pytest.mark.parametrize("path", ["command/", "lag/", "snapshot/", "rebuild/", "read-model/"])
def test_every_post_needs_the_csrf_token(path):
    browser = Client(enforce_csrf_checks=True)
    browser.get("/lab/ledger/")
    response = browser.post(f"/lab/ledger/{path}", {"kind": "open", "account": "alice"}, **HX)
    assert response.status_code == 403
    token = browser.cookies["csrftoken"].value
    assert browser.post("/lab/ledger/command/", {"kind": "open", "account": "alice"}, HTTP_X_CSRFTOKEN=token,
                        **HX).status_code == 200  # fmt: skip


def test_a_ledger_command_appends_and_answers_beside_its_form(client):
    response = send(client, "ledger", kind="open", account="alice")
    assert response.status_code == 200
    html = response.content.decode()
    assert response["HX-Retarget"] == "#dlab-command-result"
    assert "✓" in text_of(html, "command-result") and "AccountOpened" in html
    assert 'id="dlab-log"' in html and 'hx-swap-oob="true"' in html  # the live parts come along
    assert send(client, "ledger", kind="deposit", account="alice", amount="100").status_code == 200
    assert write_version(client, "ledger") == 2 and events_of("ledger") == 2


def test_an_overdraw_is_refused_by_the_rule_and_nothing_is_appended(client):
    send(client, "ledger", kind="open", account="alice")
    send(client, "ledger", kind="open", account="bob")
    response = send(client, "ledger", kind="transfer", account="alice", to_account="bob", amount="5")
    assert response.status_code == 200  # a valid command the domain's rule refuses: the answer says why
    assert "✗" in text_of(response.content.decode(), "command-result")
    html = response.content.decode()
    assert re.search(r'id="dlab-transfer-amount"[^>]*value="5"', html)  # the form comes back as it was filled
    assert events_of("ledger") == 2


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"kind": "explode"}, "Choose one of the commands"),
        ({"kind": "open", "account": "a" * 300}, "too long"),
        ({"kind": "open", "account": "alice", "command_id": "no spaces allowed"}, "command id"),
    ],
)
def test_bad_command_input_is_a_400_that_reaches_no_sandbox(client, fields, said):
    response = send(client, "ledger", **fields)
    assert response.status_code == 400
    assert said in text_of(response.content.decode(), "command-result")
    assert not Sandbox.objects.exists() and events_of("ledger") == 0


def test_input_the_service_refuses_is_a_400_with_nothing_appended(client):
    send(client, "ledger", kind="open", account="alice")
    response = send(client, "ledger", kind="deposit", account="alice", amount="lots")
    assert response.status_code == 400
    assert "✗" in text_of(response.content.decode(), "command-result")
    assert events_of("ledger") == 1


@pytest.mark.parametrize(
    ("path", "data"),
    [("lag/", {"lag": "11"}), ("lag/", {"lag": "x"}), ("lag/", {"paused": "maybe"}), ("read-model/", {"model": "x"})],
)
def test_bad_control_input_is_a_400_beside_the_control(client, path, data):
    response = client.post(f"/lab/ledger/{path}", data, **HX)
    assert response.status_code == 400
    assert response["HX-Retarget"] in ("#dlab-lag-result", "#dlab-late-result")
    assert not Sandbox.objects.exists()


@pytest.mark.parametrize("query", ["version=-1", "version=abc", "at=25:00", "at=9", "version=1&at=09:12"])
def test_bad_time_travel_is_a_400(client, query):
    send(client, "ledger", kind="open", account="alice")
    assert client.get(f"/lab/ledger/time-travel/?{query}", **HX).status_code == 400
    assert client.get(f"/lab/ledger/?{query}").status_code == 400  # the no-JavaScript form


def test_time_travel_by_version_and_by_time_of_day(client):
    send(client, "ledger", kind="open", account="alice")
    send(client, "ledger", kind="deposit", account="alice", amount="40")
    send(client, "ledger", kind="deposit", account="alice", amount="2")
    at_two = client.get("/lab/ledger/time-travel/?version=2", **HX)
    assert at_two.status_code == 200 and "As of v=2" in at_two.content.decode()
    assert "40.00" in at_two.content.decode()
    recorded = StoredEvent.objects.order_by("position").last().recorded_at
    later = client.get(f"/lab/ledger/time-travel/?at={recorded:%H:%M:%S}&account=alice", **HX).content.decode()
    assert "As of v=" in later
    assert text_of(later, "balance-then").startswith("alice had 42.00 at ")  # "the balance of alice at 09:12"
    before = client.get("/lab/ledger/time-travel/?version=0&account=alice", **HX).content.decode()
    assert text_of(before, "balance-then") == "alice had no account yet (v=0)."
    nojs = client.get("/lab/ledger/?version=2&account=alice").content.decode()
    said = text_of(nojs, "balance-then")  # the moment of v=2's event is said too
    assert said.startswith("alice had 40.00 at ") and said.endswith(" UTC (v=2).")


def test_another_visitors_sandbox_is_not_reachable(client):
    send(client, "ledger", kind="open", account="alice")
    other = Client()
    assert write_version(other, "ledger") == 0  # sees a blank lab, not the first visitor's
    assert send(other, "ledger", kind="deposit", account="alice", amount="5").status_code == 200
    assert write_version(client, "ledger") == 1  # the other's command went to a sandbox of its own
    assert Sandbox.objects.count() == 2


def test_a_form_without_javascript_comes_back_to_the_page_with_its_answer(client):
    response = client.post("/lab/ledger/command/", {"kind": "open", "account": "alice"})
    assert response.status_code == 303 and response["Location"] == "/lab/ledger/#dlab-commands"
    html = page(client, "ledger")
    assert "✓" in text_of(html, "command-result")
    assert "✓" not in text_of(page(client, "ledger"), "command-result")  # shown once
    refused = client.post("/lab/ledger/command/", {"kind": "explode"})
    assert refused.status_code == 400 and "Choose one of the commands" in refused.content.decode()


def test_the_refresh_answers_204_when_nothing_changed(client):
    send(client, "ledger", kind="open", account="alice")
    first = client.get("/lab/ledger/state/", **HX)
    assert first.status_code == 200
    stamp = re.search(r'id="dlab-status"[^>]*data-stamp="([0-9a-f]+)"', first.content.decode()).group(1)
    assert client.get(f"/lab/ledger/state/?seen={stamp}", **HX).status_code == 204
    send(client, "ledger", kind="open", account="bob")
    assert client.get(f"/lab/ledger/state/?seen={stamp}", **HX).status_code == 200


def test_the_controls_answer_beside_themselves(client):
    for path, data, slot in (
        ("lag/", {"lag": "0.5"}, "#dlab-lag-result"),
        ("lag/", {"paused": "1"}, "#dlab-lag-result"),
        ("snapshot/", {}, "#dlab-snapshot-result"),
        ("rebuild/", {}, "#dlab-rebuild-result"),
        ("read-model/", {"model": "auditor"}, "#dlab-late-result"),
    ):
        response = client.post(f"/lab/ledger/{path}", data, **HX)
        assert response.status_code == 200, (path, response.content[:300])
        assert response["HX-Retarget"] == slot


def test_restarting_the_exchange_reports_the_replay(client):
    send(client, "orderbook", kind="place", side="sell", price="101", quantity="10")
    send(client, "orderbook", kind="place", side="buy", price="102", quantity="4")
    response = client.post("/lab/orderbook/restart/", **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="restart-report" data-equal="true"' in html
    assert "Time taken" in html and "Events replayed" in html


def test_a_document_edit_carries_its_tab_and_base_version(client):
    html = page(client, "document")
    tab = re.search(r'name="tab" value="(tab[0-9a-f]+)"', html).group(1)
    response = send(client, "document", kind="insert", tab=tab, base_version="0", position="0", text="Hi")
    assert response.status_code == 200 and "✓" in text_of(response.content.decode(), "command-result")
    assert f'name="tab" value="{tab}"' in response.content.decode()  # the forms come back with the same tab
    late = send(client, "document", kind="insert", tab="other", base_version="0", position="0", text="Yo")
    assert late.status_code == 200, late.content.decode()[:300]  # same base version: rebased, not refused
    assert "this edit was rebased over it" in text_of(late.content.decode(), "rebase-note")
    assert write_version(client, "document") == 2


@override_settings(LAB_MAX_SANDBOXES_PER_ADDRESS=1)
def test_past_the_sandbox_cap_a_command_is_a_429_with_retry_after_beside_the_form(client):
    assert send(client, "ledger", kind="open", account="alice").status_code == 200
    response = send(Client(), "ledger", kind="open", account="bob")  # another browser, the same address
    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert response["HX-Retarget"] == "#dlab-command-result"
    assert "✗" in text_of(response.content.decode(), "command-result")
    assert Sandbox.objects.count() == 1


def test_without_javascript_the_restart_comes_back_to_the_page_with_its_report(client):
    client.post("/lab/orderbook/command/", {"kind": "place", "side": "sell", "price": "101", "quantity": "3"})
    response = client.post("/lab/orderbook/restart/")
    assert response.status_code == 303 and response["Location"] == "/lab/orderbook/#dlab-restart"
    html = page(client, "orderbook")
    assert 'data-testid="restart-report" data-equal="true" data-used-snapshot="false"' in html
    assert "Events replayed" in html


def test_the_document_is_shown_as_a_snapshot_plus_the_operations_replayed_after_it(client):
    send(client, "document", kind="insert", tab="a", base_version="0", position="0", text="abc")
    assert "replaying all 1 operation from the first" in text_of(page(client, "document"), "write-load")
    assert client.post("/lab/document/snapshot/", **HX).status_code == 200
    send(client, "document", kind="insert", tab="a", base_version="1", position="3", text="d")
    send(client, "document", kind="delete", tab="a", base_version="2", position="0", length="1")
    assert text_of(page(client, "document"), "write-load") == "Loaded as snapshot v=1 + 2 operations replayed after it."
