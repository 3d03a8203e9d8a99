"""Many writers at once, on the file SQLite test database and on PostgreSQL: no lost update, every conflict
reported, and a reader following one sandbox's positions never skips an event (within a sandbox, positions
become visible in commit order). On PostgreSQL appends to different sandboxes run side by side, so across
sandboxes a lower position may commit after a higher one: only a per-sandbox reader is gap-free."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction

from lab import commands, projections, rebuild, timeline
from lab import store as store_module
from lab.engine.store import ConcurrencyError, Metadata, NewEvent
from lab.models import Sandbox, StoredEvent
from lab.store import sandbox_id_of
from lab.store.events import append_lock_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

THREADS, APPENDS = 8, 200
store = store_module.event_store


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
    """Follows each stream's sandbox the way the projector does: one checkpoint per sandbox, the highest position
    seen in it so far."""

    def __init__(self, streams: list[str]) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.seen: dict[str, list[int]] = {s: [] for s in streams}

    def run(self) -> None:
        checkpoints = dict.fromkeys(self.seen, 0)
        try:
            while True:
                done = self.stop.is_set()  # read before the batches: the last pass sees everything committed
                read = 0
                for stream_id, seen in self.seen.items():
                    batch = store.read_all_after(checkpoints[stream_id], 500, sandbox_id=sandbox_id_of(stream_id))
                    for event in batch:
                        assert event.position > checkpoints[stream_id]
                        seen.append(event.position)
                        checkpoints[stream_id] = event.position
                    read += len(batch)
                if done and not read:
                    return
        finally:
            connection.close()


def positions_of(stream_id: str) -> list[int]:
    return sorted(StoredEvent.objects.filter(stream_id=stream_id).values_list("position", flat=True))


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

    tailer = Tailer([stream_id])
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
    assert tailer.seen[stream_id] == positions_of(stream_id)


@pytest.mark.slow
def test_eight_writers_on_separate_streams_all_succeed_and_a_tailing_reader_misses_nothing():
    streams = [f"account-{uuid.uuid4()}" for _ in range(THREADS)]

    def writer(i):
        for n in range(APPENDS):
            store.append(streams[i], one_deposit(), n, Metadata.for_command(f"s{i}-{n}"))

    tailer = Tailer(streams)
    tailer.start()
    run_threads(writer)
    tailer.stop.set()
    tailer.join(60)

    all_positions = sorted(StoredEvent.objects.values_list("position", flat=True))
    assert len(all_positions) == THREADS * APPENDS
    for stream_id in streams:
        assert tailer.seen[stream_id] == positions_of(stream_id)  # in order, and nothing skipped, per sandbox
        rows = list(
            StoredEvent.objects.filter(stream_id=stream_id).order_by("position").values_list("version", flat=True)
        )
        assert rows == list(range(1, APPENDS + 1))
    if connection.vendor == "sqlite":  # the rowid is taken inside the write lock, so not even a hole
        assert all_positions == list(range(all_positions[0], all_positions[0] + len(all_positions)))


class HeldAppend(threading.Thread):
    """Appends one event to `stream_id` at version 0 in a transaction it keeps open until `release` is set."""

    def __init__(self, stream_id: str) -> None:
        super().__init__()
        self.stream_id = stream_id
        self.holding, self.release = threading.Event(), threading.Event()
        self.position = 0

    def run(self) -> None:
        try:
            with transaction.atomic():
                (event,) = store.append(self.stream_id, one_deposit(), 0, Metadata.for_command("slow"))
                self.position = event.position
                self.holding.set()
                assert self.release.wait(60)
        finally:
            connection.close()


class Backend(threading.Thread):
    """One piece of store work (`work`) in a thread and connection of its own; `pid` is its PostgreSQL backend."""

    def __init__(self) -> None:
        super().__init__()
        self.connected, self.done = threading.Event(), threading.Event()
        self.pid: int | None = None
        self.error: BaseException | None = None

    def work(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        try:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    self.pid = cursor.fetchone()[0]
            self.connected.set()
            self.work()
            self.done.set()
        except BaseException as exc:  # the test asserts there was none
            self.error = exc
        finally:
            connection.close()


class Append(Backend):
    """One standalone append."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__()
        self.stream_id, self.expected_version = stream_id, expected_version
        self.position = 0

    def work(self) -> None:
        (event,) = store.append(self.stream_id, one_deposit(), self.expected_version, Metadata.for_command("x"))
        self.position = event.position


class Purge(Backend):
    def __init__(self, sandbox_id: uuid.UUID) -> None:
        super().__init__()
        self.sandbox_id = sandbox_id

    def work(self) -> None:
        store_module.purge_sandbox(self.sandbox_id)


def wait_until_blocked_on_the_append_lock(pid: int) -> None:
    """PostgreSQL says so itself: the backend waits for an advisory lock (no guessing with a sleep)."""
    for _ in range(600):
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone() == ("Lock", "advisory"):
                return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} never waited for the append lock")


def test_an_open_append_at_position_n_makes_the_next_append_to_its_sandbox_wait_and_its_reader_stop_before_n():
    stream_id = f"account-{uuid.uuid4()}"
    sandbox_id = sandbox_id_of(stream_id)
    held, later = HeldAppend(stream_id), Append(stream_id, expected_version=1)
    held.start()
    try:
        assert held.holding.wait(30)
        later.start()
        assert later.connected.wait(30)
        if later.pid is not None:
            wait_until_blocked_on_the_append_lock(later.pid)
        else:
            time.sleep(0.5)  # SQLite: the second writer is in its busy wait for BEGIN IMMEDIATE
        assert not later.done.is_set(), "an append committed while a lower position of its sandbox was still open"
        assert store.read_all_after(0, 100, sandbox_id=sandbox_id) == []  # its reader cannot pass the open position
    finally:
        held.release.set()
        held.join(30)
        later.join(30)
    assert later.error is None and later.done.is_set()
    assert held.position < later.position
    assert [e.position for e in store.read_all_after(0, 100, sandbox_id=sandbox_id)] == [held.position, later.position]


def test_on_postgresql_an_append_to_another_sandbox_commits_meanwhile_so_only_a_per_sandbox_reader_is_gap_free():
    """The one place where the two databases differ: SQLite has one writer at a time, PostgreSQL one per sandbox."""
    mine, other = f"account-{uuid.uuid4()}", f"account-{uuid.uuid4()}"
    before = max(StoredEvent.objects.values_list("position", flat=True), default=0)
    held, elsewhere, same = HeldAppend(mine), Append(other, expected_version=0), Append(mine, expected_version=1)
    held.start()
    try:
        assert held.holding.wait(30)
        elsewhere.start()
        same.start()
        assert elsewhere.connected.wait(30) and same.connected.wait(30)
        if connection.vendor == "postgresql":
            assert elsewhere.done.wait(30), "an append to another sandbox waited for the open transaction"
            wait_until_blocked_on_the_append_lock(same.pid)
            assert not same.done.is_set()
            # A lower position commits after a higher one: a global reader would now step over the held one.
            assert held.position < elsewhere.position
            assert [e.position for e in store.read_all_after(before, 100)] == [elsewhere.position]
        else:
            time.sleep(0.5)
            assert not elsewhere.done.is_set() and not same.done.is_set()
            assert store.read_all_after(before, 100) == []
        assert store.read_all_after(0, 100, sandbox_id=sandbox_id_of(mine)) == []
    finally:
        held.release.set()
        for thread in (held, elsewhere, same):
            thread.join(30)
    assert (elsewhere.error, same.error) == (None, None)
    assert elsewhere.done.is_set() and same.done.is_set()
    assert held.position < same.position
    mine_seen = store.read_all_after(0, 100, sandbox_id=sandbox_id_of(mine))
    assert [(e.position, e.version) for e in mine_seen] == [(held.position, 1), (same.position, 2)]


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


def test_a_purge_waits_for_an_append_in_flight_to_its_sandbox_so_no_event_outlives_the_sandbox():
    sandbox = Sandbox.objects.create()
    held, purge = HeldAppend(sandbox.stream_id), Purge(sandbox.pk)
    held.start()
    try:
        assert held.holding.wait(30)
        purge.start()
        assert purge.connected.wait(30)
        if purge.pid is not None:
            wait_until_blocked_on_the_append_lock(purge.pid)
        else:
            time.sleep(0.5)  # SQLite: the purge is in its busy wait for the write lock
        assert not purge.done.is_set()
    finally:
        held.release.set()
        held.join(30)
        purge.join(30)
    assert purge.error is None and purge.done.is_set()
    assert not Sandbox.objects.filter(pk=sandbox.pk).exists()
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()  # the held event went with it


def test_the_append_locks_share_no_advisory_key_with_the_projectors_or_the_rebuild_cap():
    # One 64-bit key space: a shared key would make appends wait for projection batches (or the reverse).
    for sandbox_id in (uuid.UUID(int=0), uuid.UUID(int=(1 << 128) - 1), *(uuid.uuid4() for _ in range(1000))):
        assert -(1 << 63) <= append_lock_key(sandbox_id) < -(1 << 62)
        assert (1 << 62) <= projections._advisory_key(sandbox_id) < (1 << 63)
    assert 0 <= rebuild.REBUILD_CAP_LOCK < (1 << 62)


def test_the_append_lock_outside_a_transaction_is_an_error_not_a_lock_that_protects_nothing():
    sandbox = Sandbox.objects.create()
    if connection.vendor != "postgresql":
        store_module.lock_for_append(sandbox)  # SQLite: BEGIN IMMEDIATE is the lock; nothing to take here
        return
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        store_module.lock_for_append(sandbox)
