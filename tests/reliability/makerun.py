"""daphne started as `make run` starts it: the options of the Makefile's `run` line (message size, timeouts, pings),
the embedded projector, a migrated SQLite file. For the live socket cases and tests/reliability/probe.py.

tests/reliability/live.py's Site runs daphne with its defaults; the cases here are about what those options do
(a 1009 past the message size, the handshake timeout), so they read them from the Makefile, as `make run` does.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.reliability.live import ROOT, Site


def run_options() -> list[str]:
    """daphne's options on the Makefile's `run` line (between the port and the application)."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "/daphne -b" in line)
    return shlex.split(line.split("-p $(PORT)", 1)[1].split("reqflow.asgi:application", 1)[0])


class MakeRunSite(Site):
    """`daphne -b 127.0.0.1 -p PORT <make run's options> reqflow.asgi:application` on `database`, output in `log`."""

    def __init__(self, database: Path, log: Path, *, port: int | None = None, **env: str) -> None:
        super().__init__(log, port=port, options=run_options(), SQLITE_PATH=str(database), **env)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")
