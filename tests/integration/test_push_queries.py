"""A push costs a bounded number of queries, however long the sandbox's log grows (SQLite and PostgreSQL alike).

Every command is followed by a push to each open lab page of its sandbox: the session read afresh (a sign-out
or a reset elsewhere shows up there), then the panel read once and rendered part by part (lab.consumers). Its
reads are as much of a command's cost as the command's own (tests/integration/test_command_queries.py), and scaled
out each one is a round trip to PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lab import projector
from lab.consumers import read_panel, render_each
from lab.panel import LATER_PARTS, LIVE_PARTS, READ_SIDE_PARTS
from lab.sandboxes import sandbox_for_session_key
from tests.integration.lab_events import visitor
from tests.integration.test_concept_page_queries import _deposits

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

# Measured (17 on both databases): the session row and the sandbox row; lab_state as the page reads it (the read
# side: the balance, the history lines, the live generation after them; the head, the checkpoint, dead letters,
# the events in flight, the largest deposit; the write model's load: 2); the missions (the
# sandbox's situation, its facts, the log's tally); the log's first page with its size; the snapshots.
PUSH_BOUND = 17
# A push of the read side alone (projector progress) renders no LATER_PARTS, so neither the log nor the snapshots
# are read: two less.
READ_SIDE_BOUND = PUSH_BOUND - 2


def _push(session_key: str, parts: tuple[str, ...]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        sandbox = sandbox_for_session_key(session_key)
        render_each(read_panel(sandbox).panel, parts)
    return [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("events", [3, 40])
def test_a_push_costs_a_bounded_number_of_queries(events):
    client = visitor()
    _deposits(client, events)
    key = client.session.session_key
    projector.drain([sandbox_for_session_key(key).pk])
    queries = _push(key, LIVE_PARTS)
    assert len(queries) <= PUSH_BOUND, "\n".join(queries)
    read_side = _push(key, READ_SIDE_PARTS)
    assert len(read_side) <= READ_SIDE_BOUND, "\n".join(read_side)
    assert set(LATER_PARTS).isdisjoint(READ_SIDE_PARTS)


def test_a_push_for_an_ended_session_reads_one_row():
    """A signed-out or expired session stops its socket's pushes: found out in the one read of the session row."""
    client = visitor()
    key = client.session.session_key
    client.session.flush()
    client.cookies.clear()
    with CaptureQueriesContext(connection) as captured:
        assert sandbox_for_session_key(key) is None
    assert len(captured.captured_queries) == 1
