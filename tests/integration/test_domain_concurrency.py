"""The domain labs under real concurrency: threads with their own connections sending at the same moment (on
PostgreSQL they overlap for real and the append lock orders them; on SQLite BEGIN IMMEDIATE does)."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from django.db import connection

from lab import domain_labs as labs
from lab import store
from lab.engine.domains import DOMAINS
from lab.models import StoredEvent
from lab.projector import drain

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


def at_once(*calls):
    """Run the calls in threads released together; their results in call order (a failing thread fails the test)."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = calls[i]()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a command hung"
    assert errors == []
    return results


def sender(sandbox, fields, command_id=None):
    return lambda: labs.send_domain_command(sandbox, sandbox.domain, fields, command_id or uuid.uuid4().hex)


@pytest.mark.parametrize("round_", range(3))
def test_two_tabs_sending_edits_on_the_same_version_at_once_converge(round_):
    sandbox = labs.domain_sandbox_for_command(f"tabs-{round_}", "document", "203.0.113.9")
    base = {"tab": "A", "base_version": "0", "position": "0"}
    assert labs.send_domain_command(sandbox, "document", {"kind": "insert", **base, "text": "hello world"}, "seed").ok
    a, b = at_once(
        sender(sandbox, {"kind": "insert", "tab": "A", "base_version": "1", "position": "11", "text": "!"}),
        sender(sandbox, {"kind": "delete", "tab": "B", "base_version": "1", "position": "0", "length": "6"}),
    )
    assert a.ok and b.ok, (a, b)
    assert sorted([a.version, b.version]) == [2, 3]
    state = store.load_domain(sandbox, DOMAINS["document"]).state
    assert state.text == "world!"


def test_concurrent_transfers_never_overdraw_and_the_auditor_reconciles():
    sandbox = labs.domain_sandbox_for_command("ledger-race", "ledger", "203.0.113.9")
    for fields in ({"kind": "open", "account": "alice"}, {"kind": "open", "account": "bob"}):
        assert labs.send_domain_command(sandbox, "ledger", fields, uuid.uuid4().hex).ok
    assert labs.send_domain_command(sandbox, "ledger", {"kind": "deposit", "account": "alice", "amount": "100"}, "d").ok
    transfer = {"kind": "transfer", "account": "alice", "to_account": "bob", "amount": "20"}
    outcomes = at_once(*[sender(sandbox, transfer) for _ in range(8)])
    assert sum(o.ok for o in outcomes) == 5
    assert {o.rule for o in outcomes if not o.ok} == {"no-overdraft"}
    labs.add_domain_read_model(sandbox, "auditor")
    type(sandbox).objects.filter(pk=sandbox.pk).update(lag_ms=0, replay_rate=0)
    drain([sandbox.pk])
    view = labs.domain_lab_view(sandbox, "ledger")
    assert view.read_models["balances"].amounts["alice"] == Decimal(0)
    assert view.read_models["auditor"].reconciled and view.read_models["auditor"].postings_checked == 6


def test_the_same_command_sent_four_times_at_once_is_appended_once():
    sandbox = labs.domain_sandbox_for_command("retry-race", "orderbook", "203.0.113.9")
    order = {"kind": "place", "side": "buy", "price": "99", "quantity": "4"}
    outcomes = at_once(*[sender(sandbox, order, "one-id") for _ in range(4)])
    assert all(o.ok for o in outcomes)
    assert sum(not o.replayed for o in outcomes) == 1
    assert len({o.events for o in outcomes}) == 1
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 2  # placed and rested, once
