"""The peer in `make bench`: the Python `eventsourcing` library (9.5, bench/requirements.txt), set up to do what our
store and projector do, on the same database settings, so the benchmarks can time it beside ours in the same run.

- `sqlite_bank(path)`: an eventsourcing Application on a SQLite file at our pragmas (WAL, synchronous=FULL).
- `postgres_bank(url)`: the same Application on a PostgreSQL database, one pooled connection per writer.
- `sequential_appends(bank, n)`: one event per `save`, one transaction each (store_bench's peer).
- `concurrent_appends(bank, writers, n)`: one thread per aggregate, each saving n events (pg_bench's peer).
- `projection_catch_up(path, n)`: eventsourcing's Projection with tracking records catching up n events
  (projector_bench's peer).

The library is imported only here, and only the benchmark children import this module: the site never needs it.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from bench_db import run_together  # bench/, the children's script folder, is first on their path
from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import InfrastructureFactory, Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory, SQLiteTrackingRecorder
from eventsourcing.utils import Environment

PAYLOAD = {"amount_cents": 5000, "currency": "USD"}  # what our benchmarks append: the same JSON body


class Account(Aggregate):
    """The peer's write model: an account whose one event is a deposit (the lab's Deposited)."""

    def __init__(self) -> None:
        self.balance_cents = 0

    @event("Deposited")
    def deposit(self, amount_cents: int, currency: str) -> None:
        self.balance_cents += amount_cents


# --- SQLite at our settings ----------------------------------------------------------------------------------------


class _FullSyncPool(SQLiteConnectionPool):
    """eventsourcing's SQLite pool sets only `PRAGMA journal_mode=WAL` on a file database and leaves `synchronous`
    at the SQLite build's default. That is FULL on Debian's build, but a build with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1
    would give it NORMAL (no fsync per commit) and flatter the peer. So every connection it opens is set to FULL
    here, exactly our settings' `init_command` (WAL; synchronous=FULL), and `check_pragmas` proves it."""

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()  # autocommit mode, WAL already switched on
        conn.cursor().execute("PRAGMA synchronous=FULL")
        return conn


class _Bank(Application[Any]):
    """The peer application. Snapshots off, no repository cache: each save is one INSERT transaction."""

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        factory = super().construct_factory(env)
        if isinstance(factory, SQLiteFactory):
            # Swapped before the first connection exists (the recorders create their tables after this returns).
            old = factory.datastore.pool
            factory.datastore.pool = _FullSyncPool(db_name=old.db_name, lock_timeout=old.lock_timeout)
            old.close()
        return factory


def check_pragmas(bank: Application[Any]) -> None:
    """Fail loudly unless the peer's SQLite connection runs at WAL + synchronous=FULL, like bench_db checks ours."""
    with bank.factory.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        sync = cursor.fetchone()[0]
    assert (mode, sync) == ("wal", 2), f"the peer must run at WAL + synchronous=FULL, not {mode}/{sync}"


def sqlite_bank(path: str) -> Application[Any]:
    bank = _Bank(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "20"})
    check_pragmas(bank)
    return bank


def postgres_bank(url: str, writers: int) -> Application[Any]:
    """On the server and database `url` names (its tables beside ours; their names do not clash). The pool holds
    one connection per writer, as Django gives each of our writer threads its own."""
    parts = urllib.parse.urlsplit(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": urllib.parse.unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": urllib.parse.unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": str(writers),
        "POSTGRES_MAX_OVERFLOW": "0",
    }
    return _Bank(env=env)


# --- appends -------------------------------------------------------------------------------------------------------


def sequential_appends(bank: Application[Any], n: int) -> float:
    """Events per second for n saves of one new event each, one transaction each. Only `save` is timed: the
    aggregate's command method runs outside the clock, as our benchmark builds its NewEvents outside it."""
    account = Account()
    bank.save(account)  # the creation event; the pool's connection exists from here on
    spent = 0.0
    for _ in range(n):
        account.deposit(**PAYLOAD)
        started = time.perf_counter()
        bank.save(account)
        spent += time.perf_counter() - started
    assert bank.repository.get(account.id).version == n + 1
    return n / spent


def concurrent_appends(bank: Application[Any], writers: int, n: int) -> float:
    """Events per second for `writers` threads, each saving n events to an aggregate of its own, started together."""

    def save_all(account: Account) -> None:
        for _ in range(n):
            account.deposit(**PAYLOAD)
            bank.save(account)

    # Saving the creation event takes a pooled connection first: connecting is not what we measure.
    elapsed = run_together([Account() for _ in range(writers)], prepare=bank.save, work=save_all)
    return writers * n / elapsed


# --- the projection: read model rows and a tracking record, one transaction per event ------------------------------


class BalanceView(SQLiteTrackingRecorder):
    """The peer's read model, as the library's docs build one: a TrackingRecorder whose write method changes the
    view and records the tracking position in one transaction. Per event it does what our projector does: the
    account's balance row and one history line, and the position (our checkpoint)."""

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS balance (account TEXT PRIMARY KEY, balance_cents INTEGER, version INTEGER)",
            "CREATE TABLE IF NOT EXISTS history (account TEXT, version INTEGER, amount_cents INTEGER, "
            "balance_cents INTEGER, PRIMARY KEY (account, version))",
        ]

    def deposit(self, account: str, version: int, amount_cents: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO balance VALUES (?, ?, ?) ON CONFLICT (account) DO UPDATE "
                "SET balance_cents = balance_cents + excluded.balance_cents, version = excluded.version "
                "RETURNING balance_cents",
                (account, amount_cents, version),
            )
            balance = c.fetchone()[0]
            c.execute("INSERT INTO history VALUES (?, ?, ?, ?)", (account, version, amount_cents, balance))
            self._insert_tracking(c, tracking)

    def balance(self, account: str) -> tuple[int, int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT balance_cents, version FROM balance WHERE account = ?", (account,))
            return tuple(c.fetchone())  # type: ignore[return-value]


class BalanceProjection(Projection[BalanceView]):
    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)  # an event it does not fold (the account's creation): position only

    @process_event.register
    def _(self, domain_event: Account.Deposited, tracking: Tracking) -> None:  # type: ignore[name-defined]
        self.view.deposit(str(domain_event.originator_id), domain_event.originator_version,
                          domain_event.amount_cents, tracking)  # fmt: skip


def projection_catch_up(bank: Application[Any], n: int) -> float:
    """Events per second for eventsourcing's Projection catching up n deposits (plus the account's creation) from a
    fresh view. The library's ProjectionRunner needs a recorder that can subscribe, and its SQLite recorder cannot
    (it raises NotImplementedError), so this loop does what the runner's subscription does: read the application's
    notifications in order, map each to its domain event, and hand it to the projection with its Tracking."""
    account = Account()
    for _ in range(n):
        account.deposit(**PAYLOAD)
    bank.save(account)  # seeding is not timed: one transaction for all n
    first = bank.recorder.max_notification_id() - n  # the creation event's notification id
    # The view lives in the application's own file, as our read models live beside our events.
    view = BalanceView(bank.factory.datastore)  # type: ignore[attr-defined]
    view.create_table()
    projection = BalanceProjection(view)
    position = first - 1
    started = time.perf_counter()
    while batch := bank.recorder.select_notifications(start=position + 1, limit=500):
        for notification in batch:
            projection.process_event(bank.mapper.to_domain_event(notification), Tracking(bank.name, notification.id))
            position = notification.id
    elapsed = time.perf_counter() - started
    assert view.max_tracking_id(bank.name) == first + n
    assert view.balance(str(account.id)) == (n * PAYLOAD["amount_cents"], n + 1)
    return (n + 1) / elapsed
