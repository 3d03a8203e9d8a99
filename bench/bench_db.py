"""What the benchmark children share: set-up, with Django on the temporary database the parent chose (SQLITE_PATH),
migrated, and checked to run at the app's own durability (WAL, synchronous=FULL) so no figure is flattered."""

from __future__ import annotations

import pathlib
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


def writers_rate(append_one, sandboxes, per_writer: int) -> float:
    """Events per second for one thread per sandbox, each appending `per_writer` events to its own, together."""
    from django.db import connection

    start = threading.Barrier(len(sandboxes) + 1)
    errors: list[BaseException] = []

    def writer(sandbox) -> None:  # type: ignore[no-untyped-def]
        try:
            connection.ensure_connection()  # connecting is not what we measure
            start.wait()
            for version in range(per_writer):
                append_one(sandbox, version)
        except BaseException as exc:
            errors.append(exc)
            start.abort()
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(s,)) for s in sandboxes]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return len(sandboxes) * per_writer / elapsed
