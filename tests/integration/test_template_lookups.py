"""The lab's pages render without a failed template lookup. The template engine answers a missing name by raising
and catching an exception: the concept page made 30 of them per view (`oob`, asked by every partial of the panel;
1-4% of the page's time in-process) before the page started giving it. A name the template asks for must be in the
context, even when it is only false.
"""

from __future__ import annotations

import pytest
from django.template import base
from django.test import Client

from lab import commands
from lab.sandboxes import sandbox_for_session_key
from tests.integration.lab_events import visitor

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def failed_lookups(monkeypatch):
    """The names whose lookup failed while this test rendered, in order."""
    failed: list[str] = []
    resolve = base.Variable._resolve_lookup

    def counting(self, context):
        try:
            return resolve(self, context)
        except base.VariableDoesNotExist:
            failed.append(self.var)
            raise

    monkeypatch.setattr(base.Variable, "_resolve_lookup", counting)
    return failed


@pytest.mark.parametrize(
    "path",
    ["/concepts/cqrs-event-sourcing/", "/lab/", "/lab/ledger/", "/lab/orderbook/", "/lab/document/"],
)
def test_a_returning_learners_page_makes_no_failed_lookup(path, failed_lookups):
    client: Client = visitor()
    assert client.get(path).status_code == 200  # the first visit gives the learner a session and a sandbox
    sandbox = sandbox_for_session_key(client.session.session_key)
    commands.send_command(sandbox, "deposit", "25")
    failed_lookups.clear()
    response = client.get(path)
    assert response.status_code == 200
    assert failed_lookups == [], failed_lookups
