"""Remove sandboxes nobody has used for N days, with all their rows (the only way events ever leave the store)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lab.sandboxes import purge_idle


class Command(BaseCommand):
    help = "Delete sandboxes idle for more than --idle-days days, including their events, snapshots and read models."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--idle-days", type=float, required=True, help="Idle for more than this many days.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["idle_days"]
        if not days >= 0:  # also refuses NaN
            raise CommandError("--idle-days must be a number of days, 0 or more.")
        removed = purge_idle(days)
        self.stdout.write(f"Purged {removed} idle sandbox{'es' if removed != 1 else ''}.")
