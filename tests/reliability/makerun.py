"""daphne started as `make run` starts it: the options of the Makefile's `run` line (message size, timeouts, pings),
the embedded projector, a migrated SQLite file. For the live socket cases and tests/reliability/probe.py.

tests/reliability/live.py's Site runs daphne with its defaults; the cases here are about what those options do
(a 1009 past the message size, the handshake timeout), so they read them from the Makefile, as `make run` does.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from pathlib import Path

from tests.reliability.live import DAPHNE, ROOT, free_port, site_env


def run_options() -> list[str]:
    """daphne's options on the Makefile's `run` line (between the port and the application)."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "/daphne -b" in line)
    return shlex.split(line.split("-p $(PORT)", 1)[1].split("reqflow.asgi:application", 1)[0])


class MakeRunSite:
    """`daphne -b 127.0.0.1 -p PORT <make run's options> reqflow.asgi:application` on `database`, output in `log`."""

    def __init__(self, database: Path, log: Path, *, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "wb")  # closed in stop()
        argv = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), *run_options(), "reqflow.asgi:application"]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=site_env(SQLITE_PATH=str(database), **env), stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"daphne did not listen on {self.port}:\n{self.log()}") from None
                time.sleep(0.1)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
