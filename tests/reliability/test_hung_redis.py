"""A hung Redis (SIGSTOP) holds up no command: publishing the push after a commit is bounded and never waits in
the request; the projector's wake-up listener takes Redis' silence as idle; after SIGCONT pushes arrive again.

Real parts: a throwaway redis-server on a free port (db 2), a live daphne with the embedded projector, a
WebSocket opened like a page's. Times are compared with a baseline measured in the same run."""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.reliability.live import Learner, Site, copy_database, free_port, migrate

FACTOR = 10  # generous: a hung publish used to cost 6 s against a baseline of some ms


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    migrate(path)
    return path


@pytest.fixture
def redis_server(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
    yield process, port
    os.kill(process.pid, signal.SIGCONT)
    process.terminate()
    process.wait(10)


def read_version(html: str) -> int | None:
    match = re.search(r'data-testid="read-version">(\d+)<', html)
    return int(match.group(1)) if match else None


def until_read_version(ws: ClientConnection, expected: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no push showed the read model at v{expected} within {timeout} s"
        if read_version(str(ws.recv(timeout=left))) == expected:
            return


def timed_deposit(learner: Learner) -> float:
    started = time.monotonic()
    answer = learner.deposit("1")
    elapsed = time.monotonic() - started
    assert answer.status == 200, answer.body[:300]
    return elapsed


def test_a_hung_redis_delays_no_command_and_pushes_resume_after_it(tmp_path, template_db, redis_server):
    redis, port = redis_server
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db), REDIS_URL=f"redis://127.0.0.1:{port}/2")
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200
        timed_deposit(learner)  # the first command creates the sandbox (and the session): not a fair baseline
        cookies = "; ".join(f"{c.name}={c.value}" for c in learner.jar)
        with connect(
            site.base.replace("http://", "ws://") + "/ws/lab/",
            additional_headers={"Origin": site.base, "Cookie": cookies}, open_timeout=10,
        ) as ws:  # fmt: skip
            baseline = max(timed_deposit(learner) for _ in range(3))
            until_read_version(ws, 4)
            os.kill(redis.pid, signal.SIGSTOP)
            try:
                hung = [timed_deposit(learner) for _ in range(5)]
            finally:
                os.kill(redis.pid, signal.SIGCONT)
            assert statistics.median(hung) < FACTOR * baseline, f"baseline {baseline:.3f} s, hung Redis {hung}"
            assert max(hung) < FACTOR * 3 * baseline, f"baseline {baseline:.3f} s, hung Redis {hung}"
            timed_deposit(learner)
            until_read_version(ws, 10)  # pushes flow again (the socket stayed open)
        log = site.log()
        assert "django/core/handlers" not in log, log[-3000:]
        # Redis' silence (idle, or stopped) is no failure for the projector's wake-up listener.
        assert "wake-up listener failed" not in log, log[-3000:]
    finally:
        site.stop()
