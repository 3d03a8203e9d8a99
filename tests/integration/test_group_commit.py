"""Group commit (lab.store.group_commit): on SQLite, commands that arrive while one transaction is being written
share the next one and its fsync; each stays atomic and is answered only once its commit returned. On PostgreSQL
it is a pass-through: every command its own transaction, as before.

Everything here is real: the file SQLite test database (WAL, synchronous=FULL), the writer thread, the command
path (`commands.send_command`), and other connections that look at what is committed.
"""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from lab import commands, store
from lab.engine import decider
from lab.engine.snapshots import state_from_dict
from lab.engine.store import ConcurrencyError, Metadata, NewEvent
from lab.models import CommandRecord, Sandbox, StoredEvent
from lab.store import group_commit
from lab.store.events import Append
from lab.store.values import py_json
from tests.integration.test_concurrency import run_threads

pytestmark = [pytest.mark.django_db(transaction=True)]

THREADS, COMMANDS = 16, 24


def committed_elsewhere(sql: str, params: list) -> list[tuple]:
    """What a separate connection (not this thread's, not the writer's) sees committed right now."""
    raw = connection.get_new_connection(connection.get_connection_params())
    try:
        cursor = raw.cursor()
        cursor.execute(sql.replace("%s", "?") if connection.vendor == "sqlite" else sql, params)
        return list(cursor.fetchall())
    finally:
        raw.close()


def events_visible_elsewhere(positions: list[int]) -> set[int]:
    marks = ", ".join(["%s"] * len(positions))
    rows = committed_elsewhere(f"SELECT position FROM concepts_storedevent WHERE position IN ({marks})", positions)
    return {r[0] for r in rows}


@pytest.mark.backend
@pytest.mark.slow
def test_sixteen_threads_of_commands_each_atomic_answered_after_commit_and_batched():
    """16 threads send commands through the real path at four shared sandboxes: deposits, withdrawals that often
    overdraw (rejected by the rule), stale expected versions (conflicts), command ids sent twice (by the same
    thread, or by two threads at once), and ids reused for another command. Every answer must match the store."""
    sandboxes = [Sandbox.objects.create(snapshot_interval=5) for _ in range(4)]
    answers: list[tuple[str, str, object]] = []  # (stream, command id, outcome)
    lock = threading.Lock()
    answered_before_visible: list[str] = []
    before = group_commit.stats()

    def learner(i: int) -> None:
        rng = random.Random(i)
        mine: list[tuple[Sandbox, str, str, str]] = []
        for n in range(COMMANDS):
            roll = rng.random()
            sandbox = rng.choice(sandboxes)
            kind = "deposit" if roll < 0.45 else "withdraw"
            amount = rng.choice(["5", "20", "75", "400"])
            command_id, expected = f"t{i}-{n}", None
            if roll > 0.8:  # a version the learner saw a while ago: stale unless nobody wrote since
                expected = max(0, store.head_version(sandbox) - rng.choice([0, 1, 2]))
            elif roll > 0.7 and mine:  # the same command again (a double click): its first outcome, again
                sandbox, command_id, kind, amount = rng.choice(mine)
            elif roll > 0.65 and mine:  # an id reused for a different command: refused, unless the first was not kept
                sandbox, command_id, kind, _ = rng.choice(mine)
                amount = "3"
            elif roll > 0.55:  # a twin: another thread sends the very same command at the same sandbox
                twin = (i // 2) * COMMANDS + n
                sandbox, command_id, kind, amount = sandboxes[twin % 4], f"twin-{twin}", "deposit", "1"
            outcome = commands.send_command(sandbox, kind, amount, command_id, expected)
            if outcome.accepted and not outcome.replayed:
                positions = [e.position for e in outcome.events]
                if events_visible_elsewhere(positions) != set(positions):  # answered before its commit
                    with lock:
                        answered_before_visible.append(command_id)
            mine.append((sandbox, command_id, kind, amount))
            with lock:
                answers.append((sandbox.stream_id, command_id, outcome))

    run_threads(learner, THREADS)
    assert answered_before_visible == []

    events = list(StoredEvent.objects.order_by("position"))
    stored: dict[tuple[str, str], list[StoredEvent]] = {}
    for e in events:
        stored.setdefault((e.stream_id, e.command_id), []).append(e)
    accepted = {(s, c) for s, c, o in answers if o.accepted}
    # A command id whose answer was ever "accepted" has exactly one event; any other has none (a rejection, a
    # conflict or a refused reuse appended nothing). Every stored event belongs to an accepted answer.
    assert set(stored) == accepted
    assert all(len(found) == 1 for found in stored.values())
    for stream_id, command_id, outcome in answers:
        if outcome.accepted:  # first time or replayed: the answer names the stored event
            (event,) = stored[(stream_id, command_id)]
            assert (event.position, event.version) == (outcome.events[-1].position, outcome.write_version)
    rules = {o.rule for _s, _c, o in answers if not o.accepted}
    assert commands.RULE_CONCURRENCY in rules and decider.RULE_NO_OVERDRAFT in rules, rules
    assert any(o.replayed for _s, _c, o in answers)

    for sandbox in sandboxes:  # versions gap-free, positions in version order, the overdraft rule held
        stream = [e for e in events if e.stream_id == sandbox.stream_id]
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        balance = Decimal(0)
        for e in stream:
            balance += store.domain_event(e).amount * (1 if e.event_type == "Deposited" else -1)
            assert balance >= 0, f"{sandbox.stream_id} went below zero at v={e.version}"
        # Snapshots taken inside shared commits are the write model at their version, nothing of a rolled-back one.
        snapshots = store.snapshots_of(sandbox, limit=None)
        assert snapshots, "no snapshot was due in this run"
        for snap in snapshots:
            folded = decider.fold(store.domain_event(e) for e in stream[: snap.version])
            assert state_from_dict(py_json(snap.state)) == folded, f"snapshot v={snap.version} of {sandbox.stream_id}"
    # Each command id's first outcome is kept once; a conflict alone is never kept (the same id may try again).
    records = set(CommandRecord.objects.values_list("sandbox__id", "command_id"))
    streams = {s.stream_id: s.pk for s in sandboxes}
    for stream_id, command_id, outcome in answers:
        if outcome.accepted or outcome.rule == decider.RULE_NO_OVERDRAFT:
            assert (streams[stream_id], command_id) in records
    only_conflicts = {(s, c) for s, c, o in answers} - {(s, c) for s, c, o in answers if o.rule != "concurrency"}
    assert not {(streams[s], c) for s, c in only_conflicts} & records

    after = group_commit.stats()
    if connection.vendor == "sqlite":
        assert after.shared > before.shared, f"no commit carried more than one command: {before} -> {after}"
    else:  # PostgreSQL: no group commit here, every command its own transaction
        assert after == before


class Gate:
    """A job that holds the writer inside its batch until released: how a test makes the next batch form."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        assert self.release.wait(30), "the gate was never released"
        return "gate"


def submit_in_thread(work, results: dict, name: str, **kwargs) -> threading.Thread:
    def call() -> None:
        try:
            results[name] = group_commit.run(work, **kwargs)
        except Exception as exc:
            results[name] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def wait_queued(count: int) -> None:
    deadline = time.monotonic() + 10
    while len(group_commit._writer.queue) < count:
        assert time.monotonic() < deadline, "the jobs never reached the queue"
        time.sleep(0.005)


def one_deposit(sandbox: Sandbox, version: int, command_id: str):
    meta = Metadata.for_command(command_id)
    new = [NewEvent("Deposited", 2, {"amount_cents": 100, "currency": "USD"})]
    return lambda: store.event_store.append(sandbox.stream_id, new, version, meta)


def test_a_failing_or_conflicting_job_rolls_back_alone_inside_a_shared_commit():
    """Four jobs queued behind a gate share one commit: a two-event append, a job that appends and then fails,
    a stale one-event append (no savepoint of its own), and a good one-event append. Only the good ones stay."""
    good, bad, stale = Sandbox.objects.create(), Sandbox.objects.create(), Sandbox.objects.create()
    store.event_store.append(stale.stream_id, [NewEvent("Deposited", 2, {"amount_cents": 1, "currency": "USD"})],
                             0, Metadata.for_command("seed"))  # fmt: skip
    gate, results = Gate(), {}
    threads = [submit_in_thread(gate, results, "gate")]
    assert gate.entered.wait(10)
    before = group_commit.stats()

    def two_then_fail():
        one_deposit(bad, 0, "bad")()
        one_deposit(bad, 1, "bad")()
        raise RuntimeError("the rules refused it after it wrote")

    def two_events():
        meta = Metadata.for_command("pair")
        pair = [NewEvent("Deposited", 2, {"amount_cents": c, "currency": "USD"}) for c in (1, 2)]
        return store.event_store._append_locked(Append(good.pk, good.stream_id, pair, 0, meta))

    threads.append(submit_in_thread(two_events, results, "pair"))
    threads.append(submit_in_thread(two_then_fail, results, "bad"))
    threads.append(submit_in_thread(one_deposit(stale, 0, "stale"), results, "stale", savepoint=False))
    threads.append(submit_in_thread(one_deposit(good, 2, "single"), results, "single", savepoint=False))
    wait_queued(4)
    gate.release.set()
    for t in threads:
        t.join(30)
    after = group_commit.stats()
    # Two commits: the gate's own, then one shared by the four.
    assert (after.commits - before.commits, after.jobs - before.jobs, after.shared - before.shared) == (2, 5, 1)
    assert isinstance(results["bad"], RuntimeError)
    assert isinstance(results["stale"], ConcurrencyError)
    assert [e.version for e in results["pair"]] == [1, 2] and results["single"][0].version == 3
    assert [e.version for e in store.event_store.read_stream(good.stream_id)] == [1, 2, 3]
    assert store.event_store.read_stream(bad.stream_id) == []
    assert [e.command_id for e in store.event_store.read_stream(stale.stream_id)] == ["seed"]


def test_a_command_is_answered_only_once_its_batch_committed():
    """A command shares a batch with a job that holds the batch open: until that commit, the command's caller
    has no answer and another connection sees none of its event; right after it, both."""
    sandbox = Sandbox.objects.create()
    first_gate, second_gate, results = Gate(), Gate(), {}
    threads = [submit_in_thread(first_gate, results, "first")]
    assert first_gate.entered.wait(10)
    command = threading.Thread(target=lambda: results.update(cmd=commands.send_command(sandbox, "deposit", "7", "c1")))
    command.start()
    wait_queued(1)
    threads.append(submit_in_thread(second_gate, results, "second"))
    wait_queued(2)
    first_gate.release.set()  # the next batch: the command, then the second gate, which holds the commit back
    assert second_gate.entered.wait(10)
    time.sleep(0.3)
    assert "cmd" not in results, "answered before its commit"
    assert committed_elsewhere("SELECT count(*) FROM concepts_storedevent WHERE command_id = %s", ["c1"]) == [(0,)]
    second_gate.release.set()
    command.join(10)
    outcome = results["cmd"]
    assert outcome.accepted and outcome.write_version == 1
    assert events_visible_elsewhere([outcome.events[0].position]) == {outcome.events[0].position}


def test_a_lone_caller_commits_by_itself_and_a_queued_one_shares_the_batch():
    """`alone` is how a caller that finds nothing else being written commits by itself (the event store's raw
    BEGIN IMMEDIATE ... COMMIT); a caller that arrives while another write is going on is queued instead, and its
    `work` runs in the writer's shared transaction. Either way the event is committed when the call returns."""
    from django.db import DEFAULT_DB_ALIAS, connections

    sandbox = Sandbox.objects.create()
    ran: list[str] = []

    def forms(name: str, version: int):
        meta = Metadata.for_command(name)
        new = [NewEvent("Deposited", 2, {"amount_cents": 100, "currency": "USD"})]

        def shared():
            ran.append(f"{name}: shared")
            return store.event_store._append_locked(Append(sandbox.pk, sandbox.stream_id, new, version, meta))

        def alone():
            ran.append(f"{name}: alone")
            db = connections[DEFAULT_DB_ALIAS]
            return store.event_store._append_sqlite(db, Append(sandbox.pk, sandbox.stream_id, new, version, meta))

        return shared, alone

    shared, alone = forms("lone", 0)
    before = group_commit.stats()
    (lone,) = group_commit.run(shared, alone=alone)
    assert group_commit.stats().commits == before.commits + 1
    assert not connection.in_atomic_block and connection.get_autocommit()  # Django's state as it was
    assert events_visible_elsewhere([lone.position]) == {lone.position}

    gate, results = Gate(), {}
    threads = [submit_in_thread(gate, results, "gate")]
    assert gate.entered.wait(10)
    shared, alone = forms("queued", 1)
    threads.append(submit_in_thread(shared, results, "queued", alone=alone))
    wait_queued(1)
    gate.release.set()
    for t in threads:
        t.join(30)
    assert ran == ["lone: alone", "queued: shared"]
    assert results["queued"][0].version == 2
    assert [e.command_id for e in store.event_store.read_stream(sandbox.stream_id)] == ["lone", "queued"]


def test_the_event_stores_lone_append_commits_without_djangos_atomic(monkeypatch):
    """On SQLite a lone append (nothing else being written) is one raw BEGIN IMMEDIATE, INSERT, COMMIT: the route
    through atomic() is refused here, and both a good append and a stale one still answer as they should."""

    def refuse(work):
        raise AssertionError("a lone append went through atomic()")

    monkeypatch.setattr(group_commit, "_inline", refuse)
    sandbox = Sandbox.objects.create()
    (event,) = one_deposit(sandbox, 0, "lone")()
    with pytest.raises(ConcurrencyError):
        one_deposit(sandbox, 0, "stale")()
    assert events_visible_elsewhere([event.position]) == {event.position}
    assert [e.command_id for e in store.event_store.read_stream(sandbox.stream_id)] == ["lone"]


def test_inside_a_callers_transaction_the_work_runs_inline_in_it():
    """A caller already in a transaction keeps its writes in it (no writer thread, no commit of its own)."""
    from django.db import transaction

    sandbox = Sandbox.objects.create()
    before = group_commit.stats()
    with pytest.raises(RuntimeError), transaction.atomic():
        commands.send_command(sandbox, "deposit", "5", "inside")
        raise RuntimeError("the caller rolls back")
    assert store.event_store.read_stream(sandbox.stream_id) == []
    assert group_commit.stats() == before


@pytest.mark.usefixtures("close_thread_connections")
async def test_http_commands_that_arrive_during_a_commit_share_the_next_one():
    """Under ASGI every sync view of a process runs on one thread. The command view waits for its commit on the
    event loop instead, so while the writer is busy (a gate holds it here, as a slow fsync would) 16 concurrent
    requests all reach the queue, and then share one commit. A view that held the sync thread through its commit
    would let only one request at a time get that far."""
    import asyncio

    from django.test import AsyncClient

    clients = [AsyncClient() for _ in range(THREADS)]
    for client in clients:  # each learner's first command creates their sandbox
        response = await client.post(
            "/lab/command/", {"kind": "deposit", "amount": "1"}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
    gate, results = Gate(), {}
    holder = submit_in_thread(gate, results, "gate")
    assert await asyncio.to_thread(gate.entered.wait, 10)
    before = group_commit.stats()
    posts = [
        asyncio.ensure_future(
            client.post("/lab/command/", {"kind": "deposit", "amount": "2"}, headers={"HX-Request": "true"})
        )
        for client in clients
    ]
    deadline = time.monotonic() + 30
    while len(group_commit._writer.queue) < THREADS:
        assert time.monotonic() < deadline, f"only {len(group_commit._writer.queue)} commands reached the writer"
        await asyncio.sleep(0.01)
    assert not any(p.done() for p in posts)  # nobody is answered before the commit
    gate.release.set()
    responses = await asyncio.gather(*posts)
    await asyncio.to_thread(holder.join, 10)
    assert [r.status_code for r in responses] == [200] * THREADS
    after = group_commit.stats()
    # The gate's commit, then one commit carrying all 16 commands.
    assert (after.commits - before.commits, after.jobs - before.jobs) == (2, THREADS + 1)
    assert after.largest >= THREADS
    assert await StoredEvent.objects.acount() == THREADS * 2


def test_past_the_queue_bound_a_write_is_refused_at_once_as_a_busy_database(monkeypatch):
    """The queue is bounded: past MAX_QUEUED waiting jobs a caller is refused at once, with the error the site
    answers 503 + Retry-After for (a locked database), instead of waiting without limit."""
    from reqflow.dbfailure import LOCKED, classify

    monkeypatch.setattr(group_commit, "MAX_QUEUED", 1)
    sandbox = Sandbox.objects.create()
    gate, results = Gate(), {}
    threads = [submit_in_thread(gate, results, "gate")]
    assert gate.entered.wait(10)
    threads.append(submit_in_thread(one_deposit(sandbox, 0, "queued"), results, "queued", savepoint=False))
    wait_queued(1)
    with pytest.raises(group_commit.GroupCommitBusy) as refused:
        commands.send_command(sandbox, "deposit", "5", "refused")
    assert classify(refused.value) is LOCKED
    gate.release.set()
    for t in threads:
        t.join(30)
    assert [e.command_id for e in store.event_store.read_stream(sandbox.stream_id)] == ["queued"]
