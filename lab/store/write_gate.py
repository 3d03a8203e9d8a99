"""Turns at SQLite's write lock for this process's busy writers, handed over first come, first served.

SQLite lets one connection write at a time. A connection that finds the lock taken does not queue for it: it
sleeps and tries again (Python's sqlite3 `timeout` uses SQLite's busy handler, which sleeps 1, 2, 5, 10, 15,
20, 25, 25 ... ms between tries). Two busy writers in one process, the group commit's writer thread and the
projector's thread, therefore kept missing each other's releases: under `make load` (300 learners, 45
commands/s) the projector waited for the lock 7 to 12 ms on average per step, at worst half a second, while the
lock stood free between the tries; the projector fell behind and every learner waited seconds for its read
model. Here those writers take a turn before their BEGIN IMMEDIATE and pass it straight to the next in line at
their COMMIT or ROLLBACK, so the lock changes hands as soon as it is free.

The turn is this process's only; other processes (a second web process, `manage.py` commands) still meet the
lock through the busy handler, as before. A writer already inside a transaction takes no turn (it holds the lock
or would wait for it holding another, which a turn could deadlock), and a wait for a turn is bounded by the
database's own lock timeout: after it the writer goes on to the lock and SQLite's busy handler, so a held turn
can delay a writer but never fail one that SQLite would have let through. PostgreSQL has no single write lock:
there `write_turn` does nothing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Iterator

from django.db import DEFAULT_DB_ALIAS, connections

DEFAULT_WAIT_S = 20.0  # when the database settings name no timeout (they do: settings.SQLITE_TIMEOUT_S)


class FairGate:
    """A lock that its holder hands to the longest waiter at release (threading.Lock lets a releasing thread take
    it straight back, and the group commit's writer, always with a next batch under load, would)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        with self._guard:
            if not self._held:
                self._held = True
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        if baton.acquire(timeout=timeout):
            return True  # handed over by `release`: the gate stayed held, now by this thread
        with self._guard:
            try:
                self._waiters.remove(baton)
            except ValueError:
                return True  # handed over just as the wait ran out: this thread holds it and must release it
            return False

    def release(self) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False

    def waiting(self) -> int:
        with self._guard:
            return len(self._waiters)


_gate = FairGate()


def _renew_after_fork() -> None:
    # A forked child (a test's live server) must not inherit a turn some thread of the parent held.
    global _gate
    _gate = FairGate()


os.register_at_fork(after_in_child=_renew_after_fork)


@contextlib.contextmanager
def write_turn(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Hold this process's turn at the write lock for the block, around a transaction that writes (begun inside
    the block, committed or rolled back before it ends)."""
    db = connections[using]
    if db.vendor != "sqlite" or db.in_atomic_block:
        yield
        return
    gate = _gate
    held = gate.acquire(float(db.settings_dict.get("OPTIONS", {}).get("timeout", DEFAULT_WAIT_S)))
    try:
        yield
    finally:
        if held:
            gate.release()
