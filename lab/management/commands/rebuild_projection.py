"""`manage.py rebuild_projection [--sandbox ID]`: rebuild the balance read model from position 0.

Blue/green, like the lab's button: the new generation fills from the log while the old one keeps answering
queries, then swaps in atomically. Safe while a projector runs. Without --sandbox, every active sandbox. A domain
lab's sandbox (the ledger, the order book, the document log) has its read models folded again and swapped in one
transaction instead (lab.domain_projections.rebuild_live).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lab.domain_projections import rebuild_live
from lab.engine.domains import DOMAINS
from lab.models import ACCOUNT, Sandbox
from lab.rebuild import rebuild_now
from lab.types import Progress


class Command(BaseCommand):
    help = "Rebuild the balance read model of one sandbox (or all active ones) from the event log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sandbox", help="The sandbox id (a UUID). Default: every active sandbox.")
        parser.add_argument("--batch", type=int, default=5000, help="Events per rebuild transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sandbox"]:
            try:
                sandbox_id = uuid.UUID(str(options["sandbox"]))
            except ValueError:
                raise CommandError(f"{options['sandbox']!r} is not a sandbox id") from None
            sandboxes = list(Sandbox.objects.filter(pk=sandbox_id))
            if not sandboxes:
                raise CommandError(f"no sandbox {sandbox_id}")
        else:
            sandboxes = list(Sandbox.objects.filter(retired_at__isnull=True).order_by("created_at"))
        batch = max(1, int(options["batch"]))
        for sandbox in sandboxes:
            if sandbox.domain != ACCOUNT:
                try:
                    rebuilt = rebuild_live(sandbox.pk, DOMAINS[sandbox.domain])
                except ValueError as exc:
                    raise CommandError(f"sandbox {sandbox.pk}: {exc}") from exc
                self.stdout.write(f"sandbox {sandbox.pk}: rebuilt {rebuilt.events} events ({sandbox.domain})")
                continue

            def report(progress: Progress, sandbox: Sandbox = sandbox) -> None:
                if options["verbosity"] >= 2:
                    self.stdout.write(f"  {sandbox.pk}: {progress.done}/{progress.total}")

            try:
                progress = rebuild_now(sandbox.pk, batch=batch, on_progress=report)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"sandbox {sandbox.pk}: rebuilt {progress.done} events")
        self.stdout.write(self.style.SUCCESS(f"rebuilt {len(sandboxes)} sandbox(es)"))
