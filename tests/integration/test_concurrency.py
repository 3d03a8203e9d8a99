"""Many writers at once, on the file SQLite test database and on PostgreSQL: no lost update, every conflict
reported, and a reader following positions never skips an event (positions become visible in commit order)."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction

from lab import commands, store, timeline
from lab.engine.store import ConcurrencyError, Metadata, NewEvent
from lab.models import Sandbox, StoredEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

THREADS, APPENDS = 8, 200
store = store.event_store


def one_deposit(cents=100):
    return [NewEvent("Deposited", 2, {"amount_cents": cents, "currency": "USD"})]


def run_threads(target, count=THREADS):
    errors: list[BaseException] = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as exc:  # surfaced below, so a dying thread fails the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert errors == []


class Tailer(threading.Thread):
    """Follows the global log the way the projector does: checkpoint = the highest position seen so far."""

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.seen: list[int] = []

    def run(self) -> None:
        checkpoint = 0
        try:
            while True:
                done = self.stop.is_set()  # read before the batch: the last pass sees everything committed
                batch = store.read_all_after(checkpoint, 500)
                for event in batch:
                    assert event.position > checkpoint
                    self.seen.append(event.position)
                    checkpoint = event.position
                if done and not batch:
                    return
        finally:
            connection.close()


@pytest.mark.slow
def test_eight_writers_on_one_stream_lose_nothing_and_every_conflict_is_reported():
    stream_id = f"account-{uuid.uuid4()}"
    accepted: list[tuple[int, uuid.UUID]] = []
    conflicts: list[int] = []
    lock = threading.Lock()

    def writer(i):
        for n in range(APPENDS):
            expected = store.stream_version(stream_id)
            events = one_deposit(i * 1000 + n)
            try:
                (recorded,) = store.append(stream_id, events, expected, Metadata.for_command(f"w{i}-{n}"))
            except ConcurrencyError as exc:
                assert exc.actual_version is not None and exc.actual_version > expected
                with lock:
                    conflicts.append(expected)
                continue
            assert recorded.version == expected + 1
            with lock:
                accepted.append((recorded.version, events[0].event_id))

    tailer = Tailer()
    tailer.start()
    run_threads(writer)
    tailer.stop.set()
    tailer.join(60)

    rows = list(StoredEvent.objects.filter(stream_id=stream_id).order_by("version").values_list("version", "event_id"))
    assert len(accepted) + len(conflicts) == THREADS * APPENDS
    assert sorted(accepted) == rows  # every acknowledged append is stored, once, at the version it was told
    assert [v for v, _ in rows] == list(range(1, len(rows) + 1))
    positions = list(
        StoredEvent.objects.filter(stream_id=stream_id).order_by("version").values_list("position", flat=True)
    )
    assert positions == sorted(positions)
    assert tailer.seen == sorted(StoredEvent.objects.values_list("position", flat=True))


@pytest.mark.slow
def test_eight_writers_on_separate_streams_all_succeed_and_a_tailing_reader_misses_nothing():
    streams = [f"account-{uuid.uuid4()}" for _ in range(THREADS)]

    def writer(i):
        for n in range(APPENDS):
            store.append(streams[i], one_deposit(), n, Metadata.for_command(f"s{i}-{n}"))

    tailer = Tailer()
    tailer.start()
    run_threads(writer)
    tailer.stop.set()
    tailer.join(60)

    all_positions = sorted(StoredEvent.objects.values_list("position", flat=True))
    assert len(all_positions) == THREADS * APPENDS
    assert tailer.seen == all_positions  # in order, and nothing skipped
    for stream_id in streams:
        rows = list(
            StoredEvent.objects.filter(stream_id=stream_id).order_by("position").values_list("version", flat=True)
        )
        assert rows == list(range(1, APPENDS + 1))
    if connection.vendor == "sqlite":  # the rowid is taken inside the write lock, so not even a hole
        assert all_positions == list(range(all_positions[0], all_positions[0] + len(all_positions)))


def test_a_transaction_holding_position_n_open_makes_the_next_append_wait_and_the_reader_stops_before_n():
    first, second = f"account-{uuid.uuid4()}", f"account-{uuid.uuid4()}"
    before = max(StoredEvent.objects.values_list("position", flat=True), default=0)
    holding, release, second_done = threading.Event(), threading.Event(), threading.Event()
    got: dict[str, int] = {}

    def hold_open():
        with transaction.atomic():
            (event,) = store.append(first, one_deposit(), 0, Metadata.for_command("slow"))
            got["held"] = event.position
            holding.set()
            assert release.wait(30)
        connection.close()

    def append_meanwhile():
        assert holding.wait(30)
        (event,) = store.append(second, one_deposit(), 0, Metadata.for_command("fast"))
        got["later"] = event.position
        second_done.set()
        connection.close()

    a = threading.Thread(target=hold_open)
    b = threading.Thread(target=append_meanwhile)
    a.start()
    b.start()
    try:
        assert holding.wait(30)
        time.sleep(0.5)
        assert not second_done.is_set(), "an append committed while a lower position was still open"
        assert store.read_all_after(before, 100) == []  # the reader cannot pass the open position
    finally:
        release.set()
        a.join(30)
        b.join(30)
    assert second_done.is_set()
    assert got["held"] < got["later"]
    assert [e.position for e in store.read_all_after(before, 100)] == [got["held"], got["later"]]


def test_two_withdrawals_of_80_from_100_at_once_leave_20_and_one_refusal():
    sandbox = Sandbox.objects.create()
    commands.send_command(sandbox, "deposit", "100")
    barrier = threading.Barrier(2)
    outcomes = []

    def withdraw(i):
        barrier.wait(10)
        outcomes.append(commands.send_command(sandbox, "withdraw", "80", expected_version=1))

    run_threads(withdraw, 2)
    assert sorted(o.accepted for o in outcomes) == [False, True]
    refused = next(o for o in outcomes if not o.accepted)
    assert refused.rule in {"concurrency", "no-overdraft"}
    assert timeline.write_side(sandbox).balance == Decimal("20.00")


def test_the_same_command_sent_twice_at_once_appends_once():
    sandbox = Sandbox.objects.create()
    barrier = threading.Barrier(4)
    outcomes = []

    def send(i):
        barrier.wait(10)
        outcomes.append(commands.send_command(sandbox, "deposit", "25", command_id="double-click"))

    run_threads(send, 4)
    assert all(o.accepted and o.write_version == 1 for o in outcomes)
    assert sum(not o.replayed for o in outcomes) == 1
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 1
