"""Group commit on SQLite: the writes that arrive while one transaction is being written share the next one and
its fsync.

SQLite has one writer at a time, and at synchronous=FULL every COMMIT waits for the disk. Writers that each run
their own transaction therefore queue for the lock and pay one fsync each. Here each process has one writer
thread that owns a connection for this: callers hand it a job (a function that writes) and wait; the writer
takes every job queued meanwhile (up to MAX_BATCH), runs them one after another in ONE transaction, each inside its
own SAVEPOINT, commits once, and only then answers each caller. So:

- each job stays atomic: one that raises (a rejection, a conflict, any error) is rolled back to its savepoint,
  and the others in the batch neither see nor lose anything by it; the caller gets its exception;
- a caller is answered only after the COMMIT that holds its writes returned (durable at synchronous=FULL); when
  the commit fails, every caller of the batch gets the error and none of their writes exists;
- the `transaction.on_commit` hooks a job registers (the projector's wake-up, the pushes to open pages) are handed
  back to its caller and run there after the commit, in the caller's thread as before the group commit (the
  in-memory channel layer must be reached from the server's event loop, not from the writer thread).

Several processes on one file stay correct: each batches its own callers, and BEGIN IMMEDIATE serialises the
processes' batches. Everything else runs a job inline in a transaction of its own (`_inline`), exactly as before:
PostgreSQL (which has its own group commit across concurrent transactions, and per-sandbox append locks that let
them overlap), an in-memory SQLite database (each connection would see a different one), a caller already inside
a transaction (its writes must share its transaction), and a thread inside `bypassed()`.

A sync caller that finds nothing being written and nothing waiting writes its work itself, in a transaction of
its own (`_Writer.lead`): a lone writer pays no hand-over, and whoever comes meanwhile is batched by the thread.

The writer thread is started on first use and restarted after a fork; it is a daemon, so it never holds up exit.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction
from django.db.transaction import TransactionManagementError

from lab.store.write_gate import write_turn

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 64  # jobs in one transaction: bounds how long the write lock is held for one commit
MAX_QUEUED = 1024  # jobs waiting for the writer; past this a caller is refused as "database is busy" (a 503)

Hook = tuple[Callable[[], Any], bool]  # an on_commit callback and whether it is robust


class GroupCommitBusy(OperationalError):
    """Too many writes are already waiting: the site answers 503 with Retry-After (reqflow.dbfailure reads
    "database is busy" as a locked database)."""


class Stats(NamedTuple):
    commits: int  # transactions committed by the writer
    jobs: int  # jobs that ran in them (committed or rolled back to their savepoint)
    shared: int  # commits that carried more than one job
    largest: int  # the most jobs one commit carried


@dataclass
class _Job:
    work: Callable[[], Any]
    savepoint: bool
    future: concurrent.futures.Future[tuple[Any, list[Hook]]] = field(default_factory=concurrent.futures.Future)


class _Writer:
    """The queue and the thread that commits it, one per process."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.queue: collections.deque[_Job] = collections.deque()
        self.thread: threading.Thread | None = None
        self.active = False  # a batch is being written (by the writer thread, or by a caller alone: `lead`)
        self.stats = Stats(0, 0, 0, 0)

    def lead(self) -> bool:
        """Claim the write for a sync caller when nothing is being written or waiting: then it commits its own
        work on its own connection, as if there were no group commit, and skips the hand-over to the writer
        thread, which alone cost a single writer half its appends when the disk's fsync was fast. Whoever
        arrives meanwhile queues, and the writer thread takes them together once this caller is `done`."""
        with self.lock:
            if self.active or self.queue:
                return False
            self.active = True
            return True

    def done(self, jobs: int) -> None:
        with self.lock:
            self.active = False
            if jobs:
                commits, total, shared, largest = self.stats
                self.stats = Stats(commits + 1, total + jobs, shared, max(largest, jobs))
            self.lock.notify_all()

    def submit(self, work: Callable[[], Any], savepoint: bool) -> concurrent.futures.Future[tuple[Any, list[Hook]]]:
        job = _Job(work, savepoint)
        with self.lock:
            if len(self.queue) >= MAX_QUEUED:
                raise GroupCommitBusy(f"database is busy: {MAX_QUEUED} writes are already waiting")
            self.queue.append(job)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="reqflow-group-commit", daemon=True)
                self.thread.start()
            self.lock.notify()
        return job.future

    def _loop(self) -> None:
        while True:
            with self.lock:
                while not self.queue or self.active:  # never beside a leading caller: SQLite would make it wait
                    self.lock.wait()
                self.active = True
                batch = [self.queue.popleft() for _ in range(min(len(self.queue), MAX_BATCH))]
            try:
                # A caller that gave up before its job started (a cancelled request) is skipped: it ran nowhere.
                batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
                if batch:
                    self._commit(batch)
            finally:
                with self.lock:
                    self.active = False

    def _commit(self, batch: list[_Job]) -> None:
        results: list[tuple[bool, Any, list[Hook]]] = []
        db = connections[DEFAULT_DB_ALIAS]  # this thread's own connection, looked up once per batch
        try:
            with write_turn(), transaction.atomic():  # BEGIN IMMEDIATE: the write lock, shared by the whole batch
                raw = db.connection
                results = [_run_alone(db, raw, job) for job in batch]
                if db.needs_rollback:  # never commit a batch Django has given up on
                    raise TransactionManagementError("the group commit's transaction was marked for rollback")
        except BaseException as exc:  # the COMMIT (or BEGIN) failed: nothing of the batch was written
            log.warning("group commit of %d job(s) failed: %s", len(batch), exc)
            with contextlib.suppress(Exception):
                db.close()  # the next batch starts on a fresh connection
            for job in batch:
                job.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        commits, jobs, shared, largest = self.stats
        self.stats = Stats(commits + 1, jobs + len(batch), shared + (len(batch) > 1), max(largest, len(batch)))
        for job, (ok, value, hooks) in zip(batch, results, strict=True):
            if ok:
                job.future.set_result((value, hooks))
            else:
                job.future.set_exception(value)


def _run_alone(db: Any, raw: Any, job: _Job) -> tuple[bool, Any, list[Hook]]:
    """Run one job of the batch so that it fails alone. Returns (ok, its result or exception, its on_commit
    hooks), the hooks taken out of the connection so they run in the caller after the commit, not here.

    The savepoint goes straight to the DB-API connection: Django's atomic() costs two wrapped statements and its
    bookkeeping per job, which on these small jobs was a large share of the writer's time. Django's own state is
    kept right by hand: a job's nested atomic() blocks still work (their savepoints nest inside this one); the
    hooks of a failed job are dropped; and `needs_rollback`, which an ORM error raises on the connection, is
    cleared once the rollback to the savepoint has undone the job, as atomic() does. A job without a savepoint
    has nothing to roll back to, so there that flag fails the whole batch (`run`'s `savepoint=False`).
    """
    before = len(db.run_on_commit)
    if job.savepoint:
        with db.wrap_database_errors:
            raw.execute("SAVEPOINT group_commit_job")
    try:
        value = job.work()
        if db.needs_rollback:  # the job swallowed a database error: its writes are not all there
            raise TransactionManagementError("a job of the group commit swallowed a database error")
    except Exception as exc:
        if job.savepoint:
            with db.wrap_database_errors:
                raw.execute("ROLLBACK TO group_commit_job")
                raw.execute("RELEASE group_commit_job")
            db.needs_rollback = False
        elif db.needs_rollback:
            raise
        del db.run_on_commit[before:]
        return False, exc, []
    if job.savepoint:
        with db.wrap_database_errors:
            raw.execute("RELEASE group_commit_job")
    # Django keeps (savepoint ids, callback, robust) for each; the stubs know only two of the three.
    hooks: list[Hook] = [(entry[1], entry[2]) for entry in db.run_on_commit[before:]]
    del db.run_on_commit[before:]
    return True, value, hooks


_writer = _Writer()
_bypass = threading.local()


def _renew_after_fork() -> None:
    # A forked child (a test's live server) inherits the queue's lock and thread objects, not the thread.
    global _writer
    _writer = _Writer()


os.register_at_fork(after_in_child=_renew_after_fork)


def applies() -> bool:
    """Whether a write from this thread, outside a transaction, goes through the writer thread (the module
    docstring says when it does not)."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "sqlite" or getattr(_bypass, "on", False):
        return False
    return not db.is_in_memory_db()  # type: ignore[attr-defined]


def run(work: Callable[[], T], *, savepoint: bool = True, alone: Callable[[], T] | None = None) -> T:
    """Run `work` (a function that writes; it must not commit or roll back itself) in a committed transaction,
    and return its result once that transaction is durable. Its exception is raised here, with nothing of it
    written. On SQLite it shares the transaction with the writes that arrive meanwhile.

    `savepoint=False` only for work that writes nothing when it raises: at most one write statement, raising
    only when that statement wrote nothing (SQLite undoes a failed statement whole). It then needs no savepoint
    of its own in the batch, which saves two statements; a swallowed database error fails the whole batch.

    `alone`: the same work as a function that runs its own transaction, begun and committed (or rolled back)
    by itself, for a caller that finds nothing else being written (`_Writer.lead`). The event store passes its
    straight-to-SQLite append here: Django's atomic() bookkeeping was about a fifth of a lone append's time."""
    if not applies() or connections[DEFAULT_DB_ALIAS].in_atomic_block or threading.current_thread() is _writer.thread:
        return _inline(work)
    if _writer.lead():
        committed = 0
        try:
            # Its own transaction; its on_commit hooks run at its commit, here.
            with write_turn():
                value = alone() if alone is not None else _inline(work)
            committed = 1
            return value
        finally:
            _writer.done(committed)
    value, hooks = _writer.submit(work, savepoint).result()
    _run_hooks(hooks)
    return value


@dataclass(frozen=True)
class _Done:
    value: Any


# What `submit` hands back: the writer's future (the result and the commit's hooks), or work already done inline.
Pending = concurrent.futures.Future[tuple[Any, list[Hook]]] | _Done


async def arun(work: Callable[[], T], *, savepoint: bool = True) -> T:
    """`run` for async code: waits for the commit on the event loop, so other requests go on (and join the
    batch) meanwhile. Whether to share is decided in the thread sync views run on, as a sync caller's would be:
    there a caller may already be inside a transaction (a test's), and then the work runs inline in it."""
    return await wait(await sync_to_async(submit)(work, savepoint=savepoint))


def submit(work: Callable[[], Any], *, savepoint: bool = True) -> Pending:
    """The first half of `arun`, for async code that is on a sync thread already (a view's one trip there does its
    reads and this): the work handed to the writer, or, where `run` would run it inline (PostgreSQL, inside a
    transaction), run now. Raises what inline work raises. `wait` on the event loop gives the result."""
    if not applies() or connections[DEFAULT_DB_ALIAS].in_atomic_block or threading.current_thread() is _writer.thread:
        return _Done(_inline(work))
    return _writer.submit(work, savepoint)


async def wait(pending: Pending) -> Any:
    """The second half of `arun`, on the event loop: the commit awaited, then its on_commit hooks run; the work's
    result, or its exception raised."""
    if isinstance(pending, _Done):
        return pending.value
    value, hooks = await asyncio.wrap_future(pending)
    if hooks:
        await _arun_hooks(hooks)
    return value


async def _arun_hooks(hooks: list[Hook]) -> None:
    """The hooks of a commit `arun` waited for. When every one can also run on the event loop (it has an
    `on_loop` coroutine function: lab.live's hints do), they are awaited here in their order; a push to the
    in-memory layer then costs no hop to a thread and back, where it would hop back to this loop to send. Any
    other hook may block, so then all of them run on a thread, as `run`'s caller would run them."""
    if not all(callable(getattr(func, "on_loop", None)) for func, _ in hooks):
        await sync_to_async(_run_hooks)(hooks)
        return
    for func, robust in hooks:
        if not robust:
            await func.on_loop()  # type: ignore[attr-defined]
            continue
        try:
            await func.on_loop()  # type: ignore[attr-defined]
        except Exception:
            log.exception("an on_commit hook failed after a group commit")


def _inline(work: Callable[[], T]) -> T:
    with transaction.atomic():
        return work()


def _run_hooks(hooks: list[Hook]) -> None:
    """As Django runs on_commit callbacks: a robust one's failure is logged; any other's is raised."""
    for func, robust in hooks:
        if not robust:
            func()
            continue
        try:
            func()
        except Exception:
            log.exception("an on_commit hook failed after a group commit")


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """In this block, this thread's writes run in transactions of their own (a benchmark's baseline)."""
    before = getattr(_bypass, "on", False)
    _bypass.on = True
    try:
        yield
    finally:
        _bypass.on = before


def stats() -> Stats:
    """What this process's writer has committed so far (tests assert that batches formed; the benchmark reports
    the mean jobs per commit)."""
    return _writer.stats
