"""A command costs a bounded number of queries, measured on the real endpoint (SQLite and PostgreSQL alike).

The bounds are what a command costs today, query by query; a change that makes a command read the panel again
where it need not, or read per event as the log grows, fails here.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lab.store import group_commit
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true"}
LIVE = {**HX, "HTTP_X_LAB_LIVE": "1"}  # lab.js while the page's WebSocket is open: the short answer
# Measured on SQLite with the socket open (9): the session row; the sandbox row; BEGIN IMMEDIATE; the command
# record (is this command id a retry?); the write model's load: the usable snapshot with the newest snapshot's
# version (one statement), the events after it, and the load report it writes; the event row (straight on SQLite's
# DB-API connection, lab.store.events: not counted here; no savepoint of its own, the command's transaction holds
# the lock: lab.store.events.DjangoEventStore.append); the command record; COMMIT. No panel read: the push after the
# commit brings the rest.
LIVE_BOUND = 9
# Without the socket the htmx answer renders every live part too (16 more): the sandbox again, lab_state (the
# balance, the history lines and the live generation after them, the head version, the checkpoints, dead letters,
# the events in flight, the largest deposit, the write model's load again: 2) and the parts' own reads
# (snapshots, the sandbox's settings, the mission facts, the log's tally, its first page with its size).
FULL_BOUND = 25
# PostgreSQL has no BEGIN IMMEDIATE but takes the sandbox's advisory lock, and its event row goes through Django's
# cursor: two more.
POSTGRES_EXTRA = 2


@pytest.fixture(autouse=True)
def _commands_on_this_thread(monkeypatch):
    """On SQLite a command's transaction runs on the group commit's writer thread (lab.store.group_commit), whose
    connection this test's capture does not see: counted there, every command cost two queries and no bound could
    fail. Bypassed, the same statements run here (a shared commit changes only who sends BEGIN and COMMIT)."""
    monkeypatch.setattr(group_commit, "applies", lambda: False)


def _post(client, headers):
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/lab/command/", {"kind": "deposit", "amount": "5"}, **headers)
    assert response.status_code == 200, response.content[:300]
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize(("headers", "bound"), [(LIVE, LIVE_BOUND), (HX, FULL_BOUND)], ids=["live", "htmx"])
def test_a_command_costs_a_bounded_number_of_queries(headers, bound):
    client = visitor()
    _post(client, headers)  # the first command of a session may create what later ones find
    for _ in range(3):  # and stays bounded as the log grows
        queries = _post(client, headers)
        extra = POSTGRES_EXTRA if connection.vendor == "postgresql" else 0
        assert len(queries) <= bound + extra, "\n".join(queries)


def test_the_live_answer_reads_no_panel():
    client = visitor()
    _post(client, LIVE)
    live = _post(client, LIVE)
    full = _post(client, HX)
    assert len(live) < len(full)
    assert not any("concepts_historyline" in q.lower() for q in live)  # the read model is the push's job
