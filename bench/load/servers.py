"""The sites under load, started and stopped by `make load` itself, on loopback only.

`embedded`: what `make run` runs (check_store, migrate, collectstatic, then one daphne with the Makefile's flags and
the embedded projector), on a fresh SQLite file. `cluster`: `python -m deploy.cluster` (nginx, two daphne processes,
two projector workers) on PostgreSQL and Redis. Each returns the environment its verification must read the
database with. Nothing here is the site's code: the servers are run exactly as a learner's machine would run them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = Path(sys.executable).parent / "daphne"
# The Makefile's `run` target, flag for flag.
DAPHNE_FLAGS = ["--websocket-max-message-size", "65536", "--http-timeout", "60", "--websocket_connect_timeout", "5",
                "--ping-interval", "20", "--ping-timeout", "30"]  # fmt: skip
# Never passed on to a server: a test run's own database, Redis or settings.
DROPPED = ("DATABASE_URL", "REDIS_URL", "REQFLOW_TEST_DB", "PYTEST_ADDOPTS", "DJANGO_SETTINGS_MODULE",
           "REQFLOW_TESTING", "SQLITE_PATH", "STATIC_ROOT", "PORT")  # fmt: skip
START_TIMEOUT_S = 120.0


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def free_port(span: int = 1) -> int:
    """A loopback port with the `span - 1` ports after it free too (the cluster's web processes)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span <= 65535 and all(_free(p) for p in range(port, port + span)):
            return port
    raise RuntimeError("no free loopback ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            status_line = conn.recv(64).split(b"\r\n", 1)[0].split()
            return status_line[1:2] == [b"200"]
    except OSError:
        return False


@dataclass
class Site:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    db_env: dict[str, str] = field(default_factory=dict)  # how verify.py reaches its database

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, ready_line: str | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")
            text = self.log.read_text(errors="replace") if ready_line else ""
            if (ready_line is None or ready_line in text) and answers(self.port):
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /healthz within {START_TIMEOUT_S:.0f} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the site's processes: its leader and every descendant (daphne,
        the workers, nginx; not PostgreSQL or Redis, which serve the whole machine)."""
        return sum(_cpu_of(pid) for pid in _descendants(self.process.pid))

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM to the process group it leads (the cluster stops its own children in order), then SIGKILL."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def _stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()  # the fields after the command name, which may hold spaces


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))):
            parents[int(entry.name)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _cpu_of(pid: int) -> float:
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def embedded(workdir: Path, port: int) -> Site:
    """`make run` on a fresh SQLite file in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / "load.sqlite3"
    for stale in workdir.glob("load.sqlite3*"):
        stale.unlink()
    env = clean_env(SQLITE_PATH=str(database), STATIC_ROOT=str(workdir / "static"))
    for step in (["check_store"], ["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True, timeout=300)
    log = workdir / "daphne.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), *DAPHNE_FLAGS, "reqflow.asgi:application"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    site = Site("make run", port, process, log, {"SQLITE_PATH": str(database)})
    site.wait_ready()
    return site


def fresh_postgres(url: str) -> None:
    """Drop and create the load's own database (its name must start with reqflow_load: nobody else's is touched)."""
    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("reqflow_load"):
        raise RuntimeError(f"make load empties its database first; {name!r} is not named reqflow_load*")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def cluster(workdir: Path, port: int, database_url: str, redis_url: str) -> Site:
    """`make cluster` (python -m deploy.cluster) on nginx's `port` and the two after it."""
    workdir.mkdir(parents=True, exist_ok=True)
    fresh_postgres(database_url)
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, STATIC_ROOT=str(workdir / "static"))
    log = workdir / "cluster.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.cluster", "--port", str(port), "--dir", str(workdir / "cluster")],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    site = Site("make cluster", port, process, log, {"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    site.wait_ready("Reqflow is at")
    return site
