"""A command costs a bounded number of queries, measured on the real endpoint (SQLite and PostgreSQL alike).

The bounds are what a command costs today, query by query; a change that makes a command read the panel again
where it need not, or read per event as the log grows, fails here.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true"}
LIVE = {**HX, "HTTP_X_LAB_LIVE": "1"}  # lab.js while the page's WebSocket is open: the short answer
# Measured on SQLite with the socket open (13): the session row; the sandbox row; BEGIN IMMEDIATE; the command
# record (is this command id a retry?); the write model's load: the usable snapshot, the newest snapshot's
# version, the events after it, and the load report it writes; the append's savepoint, the event row and its
# release; the command record; COMMIT. No panel read: the push after the commit brings the rest.
LIVE_BOUND = 13
# Without the socket the htmx answer renders every live part too (19 more): the sandbox again, lab_state (the
# live generation twice, the balance, the history lines, the head version, the checkpoints, dead letters, the
# events in flight, the largest deposit, the write model's load again: 3) and the parts' own reads (snapshots,
# the sandbox's settings, the mission facts, the log's counts, its size and its first page).
FULL_BOUND = 32
# PostgreSQL has no BEGIN IMMEDIATE but takes the sandbox's advisory lock twice (the command's transaction,
# then the append inside it): two more.
POSTGRES_EXTRA = 2


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
