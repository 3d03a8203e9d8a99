"""The scaled-out layout for the fault tests: `python -m deploy.cluster` (nginx, two daphne processes, two workers)
on a PostgreSQL and a Redis of the test's own, which it may stop, SIGSTOP or restart for real without touching the
servers the rest of the suite uses. Plus what the tests read: the read side's checkpoint straight from PostgreSQL,
a process's memory, the logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from deploy import services
from tests.integration.test_cluster import READY_LINE, alive, free_port_run

ROOT = Path(__file__).resolve().parents[2]


class Throwaway:
    """A PostgreSQL or Redis started from the installed binaries (deploy/services.py) that a test can stop and
    start again on the same port, with its data kept: a real restart."""

    def __init__(self, folder: Path, kind: str, name: str) -> None:
        self.folder, self.kind, self.name = folder, kind, name
        self.port = 0
        self.service = self._start()
        self.url = self.service.url

    def _start(self) -> services.Service:
        fixed = self.port
        if fixed:  # the same port again: clients reconnect to the address they know
            original = services.free_port
            services.free_port = lambda: fixed
        try:
            if self.kind == "postgres":
                service = services.start_postgres(self.folder, self.name)
            else:
                service = services.start_redis(self.folder, int(self.name))
        finally:
            if fixed:
                services.free_port = original
        self.port = int(service.url.rsplit(":", 1)[1].split("/")[0])
        return service

    @property
    def pid(self) -> int:
        assert self.service.process is not None
        return self.service.process.pid

    def stop(self) -> None:
        services.stop(self.service)

    def start(self) -> None:
        self.service = self._start()

    def close(self) -> None:
        if self.service.process is not None and self.service.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        services.stop(self.service)


class FaultCluster:
    """`python -m deploy.cluster` on the given PostgreSQL and Redis; its output collected by a thread."""

    def __init__(self, folder: Path, database_url: str, redis_url: str, workers: int = 2) -> None:
        self.folder = folder
        self.port = free_port_run(3)
        self.base = f"http://127.0.0.1:{self.port}"
        drop = {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "REQFLOW_TESTING", "EMBEDDED_PROJECTOR", "STATIC_ROOT"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env |= {"STATIC_ROOT": str(folder / "static"), "PYTHONWARNINGS": "ignore"}
        argv = [sys.executable, "-m", "deploy.cluster", "--port", str(self.port), "--dir", str(folder)]
        argv += ["--database-url", database_url, "--redis-url", redis_url, "--workers", str(workers)]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self.state: dict = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith(READY_LINE):
                    self.ready.set()

    def wait_ready(self, timeout: float = 120) -> None:
        if not self.ready.wait(timeout):
            raise AssertionError(f"the cluster did not start within {timeout} s:\n" + "\n".join(self.lines))
        self.state = json.loads((self.folder / "cluster.json").read_text())

    def pid(self, name: str) -> int:
        return next(p["pid"] for p in self.state["processes"] if p["name"] == name)

    def log(self, name: str) -> str:
        path = self.folder / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def access_log(self, web: str) -> str:
        path = self.folder / "logs" / f"{web}.access.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        pids = [p["pid"] for p in self.state.get("processes", [])]
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in pids:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)


def rss_kib(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def read_checkpoint(database_url: str, session_key: str) -> int | None:
    """The live balance checkpoint of the learner's sandbox, read straight from PostgreSQL (None: unreachable)."""
    try:
        with psycopg.connect(database_url, connect_timeout=2, autocommit=True) as conn:
            row = conn.execute(
                """SELECT c.version FROM concepts_checkpoint c JOIN concepts_sandbox s ON s.id = c.sandbox_id
                   WHERE s.session_key = %s AND s.retired_at IS NULL AND c.projection = 'balance'
                   ORDER BY c.generation DESC LIMIT 1""",
                [session_key],
            ).fetchone()
    except psycopg.OperationalError:
        return None
    return int(row[0]) if row else 0


def applied_counts(database_url: str, session_key: str) -> list[int]:
    """Each history line's applied_count (exactly once: all 1), in stream order."""
    with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT h.applied_count FROM concepts_historyline h JOIN concepts_sandbox s ON s.id = h.sandbox_id
               WHERE s.session_key = %s AND s.retired_at IS NULL ORDER BY h.version""",
            [session_key],
        ).fetchall()
    return [int(r[0]) for r in rows]


class CheckpointWatch:
    """Reads a checkpoint every 0.1 s on a thread, keeping every value it could read: the read side's checkpoint
    must only ever move forward, outage or not."""

    def __init__(self, database_url: str, session_key: str) -> None:
        self.database_url, self.session_key = database_url, session_key
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            value = read_checkpoint(self.database_url, self.session_key)
            if value is not None:
                self.seen.append(value)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(10)
        return self.seen


def until(condition, timeout: float, what: str, step: float = 0.1) -> float:
    """Wait for `condition()`; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def history_versions(database_url: str, session_key: str) -> list[int]:
    """The stream versions the read model has a history line for, in order (nothing skipped: 1..n)."""
    with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT h.version FROM concepts_historyline h JOIN concepts_sandbox s ON s.id = h.sandbox_id
               WHERE s.session_key = %s AND s.retired_at IS NULL ORDER BY h.version""",
            [session_key],
        ).fetchall()
    return [int(r[0]) for r in rows]
