"""Start-up against a database or Redis that does not answer: one clear line naming which and where, a non-zero exit
within seconds, no traceback and no retry loop. For a worker (`manage.py run_projector`), for `make run`'s first
step (`manage.py check_store`) and for `make cluster` (`python -m deploy.cluster`). And one event logs one line:
under daphne a record used to come out twice (our handler and daphne's root handler).

Real parts: the processes themselves, pointed at ports nobody listens on (and at the test run's own PostgreSQL
where the other service must answer)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.reliability.live import ROOT, Learner, Site, free_port, site_env

CONNECT_TIMEOUT_S = 5.0  # reqflow.startup's; a refused port answers at once, so this is only the worst case


def run(argv: list[str], **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        argv, cwd=ROOT, env=site_env(EMBEDDED_PROJECTOR="0", **env), capture_output=True, text=True, timeout=60
    )
    return done, time.monotonic() - started


def started_and_stopped_s(tmp_path: Path) -> float:
    """The baseline, measured beside each case: a process that starts Django, finds all well and exits (the machine
    is shared and its speed drifts, so a fixed number of seconds would be a guess)."""
    done, took = run([sys.executable, "manage.py", "check_store"], SQLITE_PATH=str(tmp_path / "baseline.sqlite3"))
    assert done.returncode == 0, done.stderr
    return took


def assert_one_clear_line(done: subprocess.CompletedProcess[str], took: float, baseline: float, *needles: str) -> str:
    """A non-zero exit, one line with each needle, no traceback, and no longer than starting plus one connect
    timeout (a retry loop would run into the 60 s limit of `run`)."""
    output = (done.stdout + done.stderr).strip()
    assert done.returncode != 0, output
    assert took < 2 * baseline + CONNECT_TIMEOUT_S, f"took {took:.1f} s against a baseline of {baseline:.1f} s"
    assert "Traceback" not in output, output
    lines = output.splitlines()
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], output
    return lines[0]


def closed_postgres() -> tuple[str, int]:
    port = free_port()
    return f"postgres://postgres@127.0.0.1:{port}/reqflow_faults_nowhere", port


def closed_redis() -> tuple[str, int]:
    port = free_port()
    return f"redis://127.0.0.1:{port}/5", port


@pytest.mark.parametrize("command", ["run_projector", "check_store"])
def test_an_unreachable_database_stops_the_start_with_one_line(tmp_path, command):
    url, port = closed_postgres()
    baseline = started_and_stopped_s(tmp_path)
    done, took = run([sys.executable, "manage.py", command], DATABASE_URL=url)
    assert_one_clear_line(done, took, baseline, "PostgreSQL", f"127.0.0.1:{port}", "cannot be reached", "not starting")


@pytest.mark.parametrize("command", ["run_projector", "check_store"])
def test_an_unreachable_redis_stops_the_start_with_one_line(tmp_path, command):
    url, port = closed_redis()
    baseline = started_and_stopped_s(tmp_path)
    done, took = run([sys.executable, "manage.py", command], SQLITE_PATH=str(tmp_path / "db.sqlite3"), REDIS_URL=url)
    assert_one_clear_line(done, took, baseline, "Redis", f"127.0.0.1:{port}", "cannot be reached", "not starting")


def test_make_cluster_with_an_unreachable_database_says_so_in_one_line(tmp_path):
    url, port = closed_postgres()
    redis_url, _ = closed_redis()
    argv = [sys.executable, "-m", "deploy.cluster", "--port", str(free_port()), "--dir", str(tmp_path / "cluster")]
    baseline = started_and_stopped_s(tmp_path)
    done, took = run([*argv, "--database-url", url, "--redis-url", redis_url])
    assert_one_clear_line(done, took, baseline, "make cluster: PostgreSQL", f"127.0.0.1:{port}", "does not answer")


@pytest.mark.backend
@pytest.mark.postgres
def test_make_cluster_with_an_unreachable_redis_says_so_in_one_line(tmp_path):
    if not settings.IS_POSTGRES:
        pytest.skip("the cluster needs a PostgreSQL that answers: `make test-postgres` runs this test")
    db = connection.settings_dict
    database = f"postgres://{db.get('USER') or 'postgres'}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/"
    redis_url, port = closed_redis()
    argv = [sys.executable, "-m", "deploy.cluster", "--port", str(free_port()), "--dir", str(tmp_path / "cluster")]
    baseline = started_and_stopped_s(tmp_path)
    done, took = run([*argv, "--database-url", database + "postgres", "--redis-url", redis_url])
    assert_one_clear_line(done, took, baseline, "make cluster: Redis", f"127.0.0.1:{port}", "does not answer")


def test_one_event_logs_one_line_under_daphne(tmp_path: Path):
    url, _ = closed_postgres()
    site = Site(tmp_path / "site.log", DATABASE_URL=url, EMBEDDED_PROJECTOR="0")
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200  # a new visitor's page reads nothing from the database
        assert learner.deposit("5").status == 503  # a command does: one failure, one line
        time.sleep(0.3)  # the log line is written before the answer; give a second copy the time to show
        log = site.log()
    finally:
        site.stop()
    assert sum("database unavailable: answering 503" in line for line in log.splitlines()) == 1, log


def test_an_unhealthy_healthz_logs_one_line_per_check(tmp_path: Path):
    url, port = closed_postgres()
    site = Site(tmp_path / "site.log", DATABASE_URL=url, EMBEDDED_PROJECTOR="0")
    try:
        answer = Learner(site.base).get("/healthz")
        time.sleep(0.3)
        log = site.log()
    finally:
        site.stop()
    assert answer.status == 503 and "database" in answer.body
    lines = [line for line in log.splitlines() if "healthz" in line and '"GET /healthz"' not in line]
    assert len(lines) == 1 and f"port {port} failed" in lines[0], log
    assert "Service Unavailable" not in log, log
