"""The concept page costs a bounded number of queries, for a new visitor and for a returning learner, however long
the learner's log grows (SQLite and PostgreSQL alike). Measured on the real page, as bench/http_bench.py serves it.

The bounds are what the page costs today, query by query; a change that reads the same thing twice, or reads per
event, fails here (the page is the site's most visited and its rate is measured against a bare Django page).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from lab import commands, projector, store, timeline
from lab.sandboxes import sandbox_for_session_key
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

PAGE = "/concepts/cqrs-event-sourcing/"
# A returning learner (measured on SQLite: 20): the session; the sandbox row (read once: lab_state trusts it, and
# its live generation is the read side's "before"); the read side (the balance, the history lines, the live
# generation after them), the head, the checkpoint, dead letters, the events in flight, the largest deposit; the
# write model's load (the usable snapshot with the newest snapshot's version, the events after it), which time
# travel at the head reuses; the snapshots; the missions (the sandbox's situation, its facts, the log's tally); the
# log's first page with its size; the chart's two lines; the head for the replay, which starts at v=0 and reads no
# state.
RETURNING_BOUND = 20
# A new visitor (no session, no sandbox): the blank panel reads nothing.
NEW_VISITOR_BOUND = 0


def _page(client: Client) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(PAGE)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def _deposits(client: Client, count: int) -> None:
    for _ in range(count):
        response = client.post("/lab/command/", {"kind": "deposit", "amount": "5"}, HTTP_HX_REQUEST="true",
                               HTTP_X_LAB_LIVE="1", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)  # fmt: skip
        assert response.status_code == 200, response.content[:300]


def test_a_new_visitors_concept_page_reads_nothing_of_the_lab():
    queries = _page(Client())
    assert len(queries) <= NEW_VISITOR_BOUND, "\n".join(queries)


@pytest.mark.parametrize("events", [3, 40])
def test_a_returning_learners_concept_page_costs_a_bounded_number_of_queries(events):
    client = visitor(PAGE)
    _deposits(client, events)
    sandbox = sandbox_for_session_key(client.session.session_key)
    projector.drain([sandbox.pk])
    _page(client)  # the first view after the commands may note a mission met
    queries = _page(client)
    assert len(queries) <= RETURNING_BOUND, "\n".join(queries)
    loads = [q for q in queries if q.startswith("SELECT newest.v, hit.version, hit.state, hit.fingerprint")]
    assert len(loads) == 1, "the write model loads once: time travel at the head shows that load"


def test_the_page_still_shows_the_learners_state():
    """Fewer reads, the same page: the write model, time travel at the head and the replay at its start."""
    client = visitor(PAGE)
    client.post("/lab/lag/", {"lag": "0"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    _deposits(client, 3)
    projector.drain([sandbox_for_session_key(client.session.session_key).pk])
    page = client.get(PAGE).content.decode()
    assert 'data-testid="write-version">3<' in page
    assert 'data-testid="read-version">3<' in page
    assert 'data-testid="time-travel-state" data-version="3"' in page
    assert "At <strong>v=3</strong> the balance was <strong>$15.00</strong>" in page
    assert "from the beginning (no snapshot) + 3 events" in page
    assert 'data-testid="replay-balance">$0.00<' in page


def test_time_travel_at_the_head_and_the_replays_start_equal_a_fresh_load():
    client = visitor(PAGE)
    _deposits(client, 12)
    sandbox = sandbox_for_session_key(client.session.session_key)
    commands.take_snapshot(sandbox)
    _deposits(client, 2)
    write = timeline.write_side(sandbox)
    assert timeline.time_travel(sandbox, write.version, write=write) == timeline.state_at(sandbox, write.version)
    assert write.at_head is not None and write.at_head.snapshot_version == 12 and write.at_head.events_applied == 2
    loaded = store.load_state(sandbox, up_to_version=0)
    start = timeline.replay_frame(sandbox, 0)
    assert (start.state.version, start.state.balance, start.state.snapshot_version, start.state.events_applied) == (
        loaded.state.version, loaded.state.balance, loaded.snapshot_version, loaded.events_replayed)  # fmt: skip
    assert start.head_version == 14 and start.event is None
