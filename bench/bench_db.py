"""What the benchmark children share: set-up, with Django on the temporary database the parent chose (SQLITE_PATH),
migrated, and checked to run at the app's own durability (WAL, synchronous=FULL) so no figure is flattered."""

from __future__ import annotations

import pathlib
import sqlite3
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        sync = cursor.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2), f"benchmark must run at WAL + synchronous=FULL, not {mode}/{sync}"


def plain_sqlite(path: pathlib.Path) -> sqlite3.Connection:
    """Plain sqlite3 (autocommit, no Django) on `path` at the app's durability: WAL, synchronous=FULL."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    return raw


def raw_sqlite(path: pathlib.Path) -> sqlite3.Connection:
    """`plain_sqlite` with a bare table: what this disk gives one writer, the floor our figures are set beside.
    Close it when done."""
    raw = plain_sqlite(path)
    raw.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT, body TEXT)")
    return raw


def raw_insert(raw: sqlite3.Connection) -> None:
    """One small row in a transaction of its own: its COMMIT is one fsync."""
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("INSERT INTO t (stream, body) VALUES (?, ?)", ("s", '{"amount_cents": 5000}'))
    raw.execute("COMMIT")


def run_together(items, prepare, work, cleanup=lambda item: None) -> float:  # type: ignore[no-untyped-def]
    """One thread per item: each runs prepare(item) (what is not measured, e.g. connecting), all start work(item) at
    once, and each ends with cleanup(item). Returns the seconds from the start until the last thread finished; the
    first error any thread met is raised."""
    start = threading.Barrier(len(items) + 1)
    errors: list[BaseException] = []

    def thread(item) -> None:  # type: ignore[no-untyped-def]
        try:
            prepare(item)
            start.wait()
            work(item)
        except BaseException as exc:
            errors.append(exc)
            start.abort()
        finally:
            cleanup(item)

    threads = [threading.Thread(target=thread, args=(item,)) for item in items]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return elapsed


def writers_rate(append_one, sandboxes, per_writer: int) -> float:
    """Events per second for one thread per sandbox, each appending `per_writer` events to its own, together."""
    from django.db import connection

    def append_all(sandbox) -> None:  # type: ignore[no-untyped-def]
        for version in range(per_writer):
            append_one(sandbox, version)

    elapsed = run_together(
        sandboxes,
        prepare=lambda sandbox: connection.ensure_connection(),  # connecting is not what we measure
        work=append_all,
        cleanup=lambda sandbox: connection.close(),
    )
    return len(sandboxes) * per_writer / elapsed
