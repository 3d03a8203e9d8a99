"""The scaled-out layout of `make cluster`, for real: nginx in front of two daphne processes and two projector
workers (deploy/cluster.py), on the test's PostgreSQL database and Redis.

A learner's socket on one web process sees the command posted through the other, a worker projects it, /healthz
answers through nginx, a worker killed with SIGKILL leaves the other to carry on, and Ctrl-C stops every process.
Which web process served a request is read from the daphne access logs the cluster writes.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import ClientConnection, connect

from lab.models import Checkpoint, HistoryLine, Sandbox

pytestmark = [
    pytest.mark.backend,
    pytest.mark.redis,
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Reqflow is at "


def free_port_run(length: int) -> int:
    """A port p with p .. p+length-1 all free on 127.0.0.1 (nginx takes p, the web processes the ones after it)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + length > 65535:
            continue
        try:
            for port in range(first, first + length):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no run of free ports")


def database_url() -> str:
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Cluster:
    """`python -m deploy.cluster` as a subprocess, its output collected by a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port_run(3)
        self.base = f"http://127.0.0.1:{self.port}"
        drop = {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "REQFLOW_TESTING", "EMBEDDED_PROJECTOR", "STATIC_ROOT"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env |= {"STATIC_ROOT": str(folder / "static"), "PYTHONWARNINGS": "ignore"}
        argv = [sys.executable, "-m", "deploy.cluster", "--port", str(self.port), "--dir", str(folder)]
        argv += ["--database-url", database_url(), "--redis-url", str(settings.REDIS_URL)]
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.state: dict = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed at the end of the output, when the supervisor has exited
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                if line.startswith(READY_LINE):
                    self.ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 120) -> None:
        if not self.ready.wait(timeout):
            raise AssertionError(f"the cluster did not start within {timeout} s:\n{self.output}")
        self.state = json.loads((self.folder / "cluster.json").read_text())

    def pid(self, name: str) -> int:
        return next(p["pid"] for p in self.state["processes"] if p["name"] == name)

    def pids(self) -> list[int]:
        return [p["pid"] for p in self.state.get("processes", [])]

    def access_log(self, web: str) -> str:
        path = self.folder / "logs" / f"{web}.access.log"
        return path.read_text() if path.exists() else ""

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C, as a terminal sends it; whatever is still running afterwards is killed (and reported)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.reader.join(10)
        left = [pid for pid in self.pids() if alive(pid)]
        for pid in left:
            os.killpg(pid, signal.SIGKILL)
        assert left == [], f"still running after the cluster stopped: {left}\n{self.output}"
        return self.process.returncode


class Learner:
    """A browser: a cookie jar, a session from its first page, and the CSRF token to post with."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        # No proxy from the environment: these requests go to 127.0.0.1 and nowhere else.
        handlers = (urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(self.jar))
        self.opener = urllib.request.build_opener(*handlers)

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)

    def get(self, path: str) -> tuple[int, str]:
        with self.opener.open(self.base + path, timeout=15) as response:
            return response.status, response.read().decode()

    def post(self, path: str, fields: dict[str, str]) -> int:
        token = self.cookie("csrftoken")
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        headers = {"X-CSRFToken": token, "HX-Request": "true", "Origin": self.base, "Referer": self.base + "/lab/"}
        request = urllib.request.Request(self.base + path, data=data, headers=headers)
        with self.opener.open(request, timeout=15) as response:
            response.read()
            return response.status

    def socket(self) -> ClientConnection:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.jar)
        url = self.base.replace("http://", "ws://") + "/ws/lab/"
        return connect(url, additional_headers={"Origin": self.base, "Cookie": cookies}, open_timeout=10)


def version(html: str, testid: str) -> int | None:
    match = re.search(rf'data-testid="{testid}">(\d+)<', html)
    return int(match.group(1)) if match else None


def until_versions(ws: ClientConnection, expected: int, timeout: float = 15.0) -> None:
    """Receive pushes until the page shows the write model and the read model at `expected` (pushes coalesce, and a
    push may carry only some parts, so each model's newest version is tracked separately)."""
    deadline = time.monotonic() + timeout
    seen = {"write-version": None, "read-version": None}
    while not all(v == expected for v in seen.values()):
        left = deadline - time.monotonic()
        assert left > 0, f"the page did not reach version {expected} within {timeout} s: it shows {seen}"
        message = ws.recv(timeout=left)
        for testid in seen:
            if (found := version(str(message), testid)) is not None:
                seen[testid] = found


def served_by(cluster: Cluster, line: str, before: dict[str, int], timeout: float = 5.0) -> str:
    """Which web process logged one more `line` than in `before` (daphne logs a request once it has answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for web, count in before.items():
            if cluster.access_log(web).count(line) > count:
                return web
        time.sleep(0.02)
    raise AssertionError(f"no web process logged {line!r}")


def counts(cluster: Cluster, line: str) -> dict[str, int]:
    return {web: cluster.access_log(web).count(line) for web in ("web-1", "web-2")}


def read_model_version(session_key: str) -> int:
    sandbox = Sandbox.objects.get(session_key=session_key, retired_at__isnull=True)
    return Checkpoint.objects.filter(sandbox=sandbox, projection="balance").order_by("-generation")[0].version


def assert_nginx_serves_static_files_and_refuses_big_bodies_itself(cluster: Cluster, learner: Learner) -> None:
    before = {web: cluster.access_log(web) for web in ("web-1", "web-2")}
    page = learner.get("/")[1]
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', page)
    assert stylesheet, "the page links no stylesheet"
    assert learner.get(stylesheet.group(1))[0] == 200
    with pytest.raises(urllib.error.HTTPError) as refused:
        learner.post("/lab/command/", {"kind": "deposit", "amount": "1", "pad": "x" * 70_000})
    refused.value.close()
    assert refused.value.code == 413
    time.sleep(0.3)  # daphne logs after answering: give a stray request the time to show
    for web, text in before.items():
        new = cluster.access_log(web)[len(text) :]
        assert "/static/" not in new and "POST /lab/command/" not in new, f"{web} served {new!r}"


@pytest.fixture
def cluster(tmp_path):
    if not settings.IS_POSTGRES:
        pytest.skip("the cluster runs on PostgreSQL: `make test-postgres` runs this test")
    running = Cluster(tmp_path / "cluster")
    yield running
    running.stop()


def test_two_web_processes_behind_nginx_share_pushes_and_a_killed_worker_leaves_the_other_in_charge(cluster):
    cluster.wait_ready()
    learner = Learner(cluster.base)
    assert learner.get("/lab/")[0] == 200
    # A page view creates no session (issue 13): the first setting does, with the learner's sandbox.
    assert learner.post("/lab/lag/", {"lag": "0"}) == 200
    session_key = learner.cookie(settings.SESSION_COOKIE_NAME)

    with learner.socket() as ws:
        until_versions(ws, 0)
        page_on = served_by(cluster, '"WSCONNECT /ws/lab/"', {"web-1": 0, "web-2": 0})
        other = "web-2" if page_on == "web-1" else "web-1"

        # Commands through nginx until one lands on the other web process; each settles (both models at its
        # version) before the next, so the page showing the other's version was told by the other's push.
        through_other = None
        for expected in range(1, 9):
            before = counts(cluster, '"POST /lab/command/"')
            assert learner.post("/lab/command/", {"kind": "deposit", "amount": "5"}) == 200
            if served_by(cluster, '"POST /lab/command/"', before) == other:
                through_other = expected
            until_versions(ws, expected)
            if through_other:
                break
        assert through_other, f"nginx never sent a command to {other}"
        # Web processes run no projector (EMBEDDED_PROJECTOR=0): a worker applied it.
        assert read_model_version(session_key) == through_other

        status, body = learner.get("/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert_nginx_serves_static_files_and_refuses_big_bodies_itself(cluster, learner)

        killed = cluster.pid("worker-1")
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(killed):  # the supervisor reaps it
            assert time.monotonic() < deadline, "the killed worker was never reaped"
            time.sleep(0.05)
        assert learner.post("/lab/command/", {"kind": "deposit", "amount": "7"}) == 200
        until_versions(ws, through_other + 1, timeout=30)

    assert read_model_version(session_key) == through_other + 1
    sandbox = Sandbox.objects.get(session_key=session_key, retired_at__isnull=True)
    assert sorted(HistoryLine.objects.filter(sandbox=sandbox).values_list("applied_count", flat=True)) == [1] * (
        through_other + 1
    )
    assert alive(cluster.pid("worker-2")) and alive(cluster.pid("web-1")) and alive(cluster.pid("web-2"))
    assert "worker-1 exited with -9; its sandboxes go to worker-2" in cluster.output
    assert cluster.stop() == 0
    assert "stopped" in cluster.output.splitlines()[-1]
