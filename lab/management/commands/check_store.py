"""`manage.py check_store`: refuse to serve a corrupt SQLite store (`make run` calls it before daphne).

PRAGMA quick_check reads every page of the file (it skips only the index-content cross-checks of integrity_check),
so a damaged page shows here instead of as a 500 in the middle of a learner's command. On PostgreSQL the server
checks its own pages; here it only checks that the server answers. With REDIS_URL, Redis must answer too: a site
started without them would look up and answer nothing but 503s, so `make run` stops with one line instead
(reqflow.startup).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reqflow.startup import unreachable


def quick_check(path: Path) -> str | None:
    """None when the file is sound (or does not exist yet: migrate creates it), else what SQLite found."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    found = [" ".join(str(row[0]).split()) for row in rows]  # one line: SQLite's rows hold newlines
    return None if found == ["ok"] else "; ".join(found[:3])


class Command(BaseCommand):
    help = (
        "Check the SQLite store's integrity (PRAGMA quick_check), or that PostgreSQL and Redis answer; exit 1 with "
        "one line if not."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if problem := unreachable():
            raise CommandError(f"{problem}; not starting")
        db = settings.DATABASES["default"]
        if db["ENGINE"] != "django.db.backends.sqlite3":
            return
        path = Path(db["NAME"])
        problem = quick_check(path)
        if problem is not None:
            raise CommandError(
                f"{path} is damaged ({problem}); refusing to serve it. Move it aside and restore a backup, or "
                f"delete it to start with an empty store."
            )
        if options["verbosity"] > 1:
            self.stdout.write(f"{path}: ok")
