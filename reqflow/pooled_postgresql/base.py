"""PostgreSQL whose connections are kept open and lent again, each shown to answer before it is lent.

Why keep them: each request's sync step used to connect afresh (CONN_MAX_AGE 0), and PostgreSQL forks a server
process per connection: 3.8 ms of wall time a connect on this machine, several per command. Under `make load`
against the cluster, 150 commands/s spent most of the two cores connecting (p50 command 12 s).

How: when a thread lets go of its connection (Django's close(): the end of each sync step, reqflow.request_threads)
a clean one (no transaction open, no error seen) is kept; the next thread that needs a connection takes the most
recently kept one instead of connecting. A connection is only made when none is kept, so a process never holds
more than it has threads using them at once: the budget in docs/deploy.md ("The connection budget") still holds.
Kept ones unused for KEEP_IDLE_S are closed.

Why check each one: a kept connection may have died (the server restarted) or hung (it takes bytes and answers
nothing). Before this, a request met a hung server at connect time and gave up after DATABASE_CONNECT_TIMEOUT_S
(tests/reliability/test_hung_postgres.py); psycopg's blocking calls have no deadline of their own. So a kept
connection must answer an empty query (one round trip, ~60 µs here) within that time:
- a dead one is closed and the next kept one tried, then a fresh connect: a restart costs no request;
- one that says nothing is closed and the request fails at once as "cannot be reached" (a 503,
  reqflow.dbfailure), as a hung server's connect did.
A server that refuses connections is refused as before, at once: nothing waits in a queue.

Django's own pool (OPTIONS "pool", psycopg_pool) was tried first: it lends from background threads that retry a
refused server for `timeout` seconds (every page waited 5 s instead of failing at once), logs each retry, and its
health check is the deadline-free `execute("")`.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections import deque
from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import pq

KEEP_IDLE_S = 60.0
# Answers that mean the server is alive.
_ALIVE = (pq.ExecStatus.EMPTY_QUERY, pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


class Unanswered(psycopg.OperationalError):
    """The server took the check and said nothing in time: hung, or the network drops its packets."""


def answer_within(conn: psycopg.Connection[Any], seconds: float) -> None:
    """Raise unless the server answers an empty query on `conn` within `seconds`.

    psycopg's blocking calls wait for ever, so this talks to libpq directly: send, then wait on the socket. With
    poll(), not select(): a web process holding a thousand WebSockets has descriptors past select()'s 1,024."""
    pgconn = conn.pgconn
    pgconn.send_query(b"")  # a broken socket raises OperationalError here or at consume_input
    deadline = time.monotonic() + seconds
    readable = select.poll()
    readable.register(pgconn.socket, select.POLLIN)
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        left = deadline - time.monotonic()
        if left <= 0 or not readable.poll(left * 1000):
            raise Unanswered(f"PostgreSQL did not answer within {seconds:g} s")
    while (result := pgconn.get_result()) is not None:
        if result.status not in _ALIVE:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise psycopg.OperationalError(f"PostgreSQL refused the check: {message}")


class KeptConnections:
    """A process's idle connections, newest last. Thread-safe; forgets (without closing) what a fork inherited,
    since closing a parent's connection from a child would end the parent's session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: deque[tuple[Any, float]] = deque()
        self._pid = os.getpid()
        self._inherited: list[Any] = []  # still referenced, so that no collection closes them while the child runs

    def _same_process(self) -> None:
        if self._pid != os.getpid():
            self._inherited.extend(conn for conn, _ in self._idle)
            self._idle.clear()
            self._pid = os.getpid()

    def take(self) -> Any | None:
        """The most recently kept connection, or None; closes the ones idle too long."""
        with self._lock:
            self._same_process()
            stale = self._expired(time.monotonic())
            conn = self._idle.pop()[0] if self._idle else None
        for old in stale:
            old.close()
        return conn

    def keep(self, conn: Any) -> None:
        with self._lock:
            self._same_process()
            self._idle.append((conn, time.monotonic()))

    def _expired(self, now: float) -> list[Any]:
        stale = []
        while self._idle and now - self._idle[0][1] > KEEP_IDLE_S:
            stale.append(self._idle.popleft()[0])
        return stale


# Kept connections by where they lead (server, database, user): tests point a process at another database (the
# test database, a fault proxy), and a connection must never be lent for a place other than its own.
KEPT: dict[tuple[str, ...], KeptConnections] = {}
_WHERE = ("host", "hostaddr", "port", "dbname", "user", "password", "service", "sslmode", "options")


def _after_fork_in_child() -> None:
    # A parent's thread may have held a lock at the fork, and the child's copy of it would stay held for ever.
    for kept in KEPT.values():
        kept._lock = threading.Lock()
        kept._same_process()


os.register_at_fork(after_in_child=_after_fork_in_child)


def close_kept() -> None:
    """Close every connection this process keeps (a test database dropped, a test pointing elsewhere)."""
    for kept in list(KEPT.values()):
        while (conn := kept.take()) is not None:
            conn.close()


def _kept_at(where: tuple[str, ...]) -> KeptConnections:
    found = KEPT.get(where)
    return found if found is not None else KEPT.setdefault(where, KeptConnections())


class DatabaseWrapper(base.DatabaseWrapper):
    _kept: KeptConnections | None = None  # where this wrapper's current connection goes back to when let go

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        kept = self._kept = _kept_at(tuple(str(conn_params.get(name, "")) for name in _WHERE))
        seconds = float(conn_params.get("connect_timeout") or 5)
        while (conn := kept.take()) is not None:
            try:
                answer_within(conn, seconds)
                return conn
            except psycopg.Error as exc:
                conn.close()
                if isinstance(exc, Unanswered):
                    raise
                # Otherwise it died while kept (a restart): try the next one.
            except BaseException:
                conn.close()  # never leave a session open behind an unexpected error
                raise
        return super().get_new_connection(conn_params)

    def _close(self) -> None:
        conn, kept = self.connection, self._kept
        clean = (
            conn is not None
            and not self.in_atomic_block
            and not self.errors_occurred
            and not conn.closed
            and conn.info.transaction_status == pq.TransactionStatus.IDLE
        )
        if clean and kept is not None:
            kept.keep(conn)
            return
        super()._close()  # type: ignore[misc]  # django-stubs leave out the backends' private methods

    def close_pool(self) -> None:
        # Django calls this before it drops or copies a test database, which must have no session left on it.
        close_kept()
        super().close_pool()  # type: ignore[misc]  # added in Django 5.1; not in django-stubs
