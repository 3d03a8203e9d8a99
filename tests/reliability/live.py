"""A real site for fault tests: a migrated SQLite file copied per test, a daphne subprocess serving it (the
embedded projector inside, as `make run` runs it), its log, and a learner with a cookie jar.

The fault tests break the database under this process for real (file permissions, a read-only or full mount,
another connection's lock, a closed port) and read what the site answered and what it logged.
"""

from __future__ import annotations

import http.cookiejar
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = Path(sys.executable).parent / "daphne"
# Settings of the process under test: nothing from the test run's own database or Redis.
DROPPED = ("DATABASE_URL", "REDIS_URL", "REQFLOW_TEST_DB", "PYTEST_ADDOPTS", "DJANGO_SETTINGS_MODULE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update({"REQFLOW_TESTING": "1", "EMBEDDED_PROJECTOR": "1", "DEBUG": "0", "LOG_LEVEL": "INFO", **extra})
    return env


def migrate(path: Path) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env=site_env(SQLITE_PATH=str(path)), check=True, timeout=180,
    )  # fmt: skip


def copy_database(template: Path, target: Path) -> Path:
    shutil.copyfile(template, target)
    return target


def count_events(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(db.execute("SELECT count(*) FROM concepts_storedevent").fetchone()[0])
    finally:
        db.close()  # a with block would only commit, and an open file keeps a read-only remount busy


class Site:
    """`daphne reqflow.asgi:application` on a free port, its stderr in a file."""

    def __init__(self, log_path: Path, *, port: int | None = None, options: Sequence[str] = (), **env: str) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [str(DAPHNE), "-b", "127.0.0.1", "-p", str(self.port), *options, "reqflow.asgi:application"],
            cwd=ROOT, env=site_env(**env), stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not listen within 30 s:\n{self.log()}")

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


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: str) -> None:
        self.status, self.headers, self.body = status, headers, body


class Learner:
    """A browser: a cookie jar, the CSRF token from its first page, htmx-style POSTs."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        handlers = (urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar))
        self.opener = urllib.request.build_opener(*handlers)

    def _open(self, request: urllib.request.Request) -> Answer:
        try:
            with self.opener.open(request, timeout=60) as response:
                return Answer(response.status, dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read().decode())

    def get(self, path: str, *, htmx: bool = False) -> Answer:
        headers = {"HX-Request": "true", "HX-Target": "lab-command-result"} if htmx else {}
        return self._open(urllib.request.Request(self.base + path, headers=headers))

    def post(self, path: str, fields: dict[str, str], *, target: str = "lab-command-result") -> Answer:
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        headers = {"X-CSRFToken": token, "HX-Request": "true", "HX-Target": target, "Referer": self.base + "/lab/"}
        return self._open(urllib.request.Request(self.base + path, data=data, headers=headers))

    def deposit(self, amount: str = "5") -> Answer:
        return self.post("/lab/command/", {"kind": "deposit", "amount": amount})
