"""Set-up shared by the benchmark children: Django on the temporary database the parent chose (SQLITE_PATH),
migrated, and checked to run at the app's own durability (WAL, synchronous=FULL) so no figure is flattered."""

from __future__ import annotations

import pathlib
import sys

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
