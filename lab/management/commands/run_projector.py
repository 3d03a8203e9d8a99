"""`manage.py run_projector`: a projector worker process for the scaled-out mode.

The same loop the embedded projector runs inside daphne. Several workers may run at once on PostgreSQL: a
per-sandbox advisory lock lets only one apply a given sandbox at a time, and the checkpoint compare-and-set
rejects anything that slips through. Appends in web processes wake workers through the channel layer (Redis);
without Redis a worker still finds new events with its fallback scan. SIGTERM or SIGINT finish the current
step (its transaction commits or rolls back whole) and exit cleanly.

At the start it checks that the database and Redis answer: if one does not, it exits with one line saying which
(reqflow.startup), not a traceback or a silent retry loop. Once running, it outlasts either going away: the loop
backs off while the database is unavailable (lab.outage) and pushes give up quickly while Redis is.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lab.projector import BATCH, FALLBACK_POLL_S, Projector
from reqflow.collector import pace_for_a_server
from reqflow.startup import unreachable


class Command(BaseCommand):
    help = "Run a projector worker: follow every sandbox's events and keep its read models (exactly once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=BATCH, help="Events per sandbox per turn.")
        parser.add_argument(
            "--poll", type=float, default=FALLBACK_POLL_S, help="Seconds between fallback scans for missed work."
        )
        # Fault injection for the crash tests: hold each projection transaction open this long before commit,
        # so a SIGKILL often lands inside one.
        parser.add_argument("--hold-ms", type=float, default=0.0, help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        batch = int(options["batch"])
        if batch < 1:
            raise ValueError("--batch must be at least 1")
        if problem := unreachable():
            raise CommandError(f"run_projector: {problem}; not starting")
        pace_for_a_server()  # a worker's full collections held its steps as a web process's held requests
        projector = Projector(
            batch=batch,
            fallback_poll_s=max(0.1, float(options["poll"])),
            hold_s=max(0.0, float(options["hold_ms"])) / 1000,
            name="worker",
        )
        asyncio.run(self._run(projector))
        self.stdout.write("projector stopped")

    async def _run(self, projector: Projector) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, projector.stop)
        task = asyncio.ensure_future(projector.run())
        self.stdout.write("projector running")
        sys.stdout.flush()
        await task
