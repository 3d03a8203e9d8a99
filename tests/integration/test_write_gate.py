"""This process's turns at SQLite's write lock (lab.store.write_gate): handed to the longest waiter at once,
never taken inside a transaction, bounded by the database's own lock timeout, and nothing on PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from lab import projector, store
from lab.models import Sandbox
from lab.store import write_gate
from lab.store.write_gate import FairGate

pytestmark = [pytest.mark.django_db(transaction=True)]


def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_the_gate_goes_to_its_waiters_in_the_order_they_came():
    gate, order = FairGate(), []
    assert gate.acquire(1)

    def take(name: str) -> None:
        assert gate.acquire(10)
        order.append(name)
        gate.release()

    first = threading.Thread(target=take, args=("first",))
    first.start()
    until(lambda: gate.waiting() == 1)
    second = threading.Thread(target=take, args=("second",))
    second.start()
    until(lambda: gate.waiting() == 2)
    gate.release()
    first.join(10)
    second.join(10)
    assert order == ["first", "second"]
    assert gate.acquire(0), "the last one out leaves the gate free"


def test_a_releasing_thread_cannot_take_the_gate_straight_back_from_a_waiter():
    """What threading.Lock allows, and what starved the projector behind the group commit's next batch."""
    gate, got = FairGate(), threading.Event()
    assert gate.acquire(1)
    waiter = threading.Thread(target=lambda: gate.acquire(10) and got.set())
    waiter.start()
    until(lambda: gate.waiting() == 1)
    gate.release()
    assert not gate.acquire(0), "taken back from the thread that waited for it"
    assert got.wait(10)
    waiter.join(10)


def test_a_wait_that_runs_out_leaves_the_queue_and_the_gate_as_they_were():
    gate = FairGate()
    assert gate.acquire(1)
    results = []
    waiter = threading.Thread(target=lambda: results.append(gate.acquire(0.1)))
    waiter.start()
    waiter.join(10)
    assert results == [False] and gate.waiting() == 0
    gate.release()
    assert gate.acquire(0)


def hold_the_turn(entered: threading.Event, release: threading.Event) -> threading.Thread:
    def hold() -> None:
        try:
            with store.write_turn():
                entered.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    return thread


@pytest.mark.backend
def test_a_projector_step_waits_for_its_turn_on_sqlite_and_takes_none_on_postgresql():
    sandbox = Sandbox.objects.create(lag_ms=0)
    from lab import commands

    assert commands.send_command(sandbox, "deposit", "5", "c1").accepted
    entered, release, steps = threading.Event(), threading.Event(), []

    def step() -> None:
        try:
            steps.append(projector.step(sandbox.pk))
        finally:
            connection.close()

    holder = hold_the_turn(entered, release)
    stepper = threading.Thread(target=step)
    stepper.start()
    if connection.vendor == "sqlite":
        until(lambda: write_gate._gate.waiting() == 1)
        time.sleep(0.1)
        assert steps == [], "the step wrote while another writer of this process held the turn"
    else:
        stepper.join(10)
        assert len(steps) == 1, "PostgreSQL has no single write lock: a step never waits for a turn"
    release.set()
    holder.join(10)
    stepper.join(10)
    assert steps[0].applied == 1


def test_a_writer_inside_a_transaction_takes_no_turn():
    """It already holds the write lock (or is waiting for it while holding a transaction): waiting for a turn
    there could wait for a thread that waits for its lock."""
    entered, release = threading.Event(), threading.Event()
    holder = hold_the_turn(entered, release)
    try:
        with transaction.atomic():
            with store.write_turn():
                Sandbox.objects.create()
        assert write_gate._gate.waiting() == 0
    finally:
        release.set()
        holder.join(10)


def test_a_wait_for_a_turn_is_bounded_by_the_lock_timeout_and_then_the_write_goes_on(monkeypatch):
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.2)
    entered, release = threading.Event(), threading.Event()
    holder = hold_the_turn(entered, release)
    try:
        started = time.monotonic()
        with store.write_turn(), transaction.atomic():
            Sandbox.objects.create(lag_ms=7)
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join(10)
    assert 0.15 < waited < 5, waited
    assert Sandbox.objects.filter(lag_ms=7).count() == 1
