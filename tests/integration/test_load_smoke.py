"""`make load` still runs: `python -m bench.load` at ten learners for a few seconds, against a real `make run` server
it starts itself (and, on PostgreSQL + Redis, against a real `make cluster`), into a temporary results file.

Nothing else runs the load generator, so a change to the lab's pages, forms, socket or push format could break it
silently (it parses what lab.js parses). The figures are the machine's; what must hold anywhere is zero errors, every
learner holding its socket, and the store exact afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHASE_KEYS = {
    "date", "machine", "site", "learners", "learners_ready", "sockets_held", "rate_target", "rate_sent",
    "duration_s", "commands", "errors", "error_kinds", "p50_command_ms", "p99_command_ms", "p50_visible_ms",
    "p99_visible_ms", "goals", "goals_met", "lag_ms", "alone", "exact", "exactness", "report", "site_cpu_share",
}  # fmt: skip


def run_load(tmp_path: Path, phase: str, *extra: str) -> dict:
    results, reports = tmp_path / "results.json", tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "REQFLOW_TESTING"}}
    argv = [sys.executable, "-m", "bench.load", "--phases", phase, f"--{phase}-learners", "10", f"--{phase}-rate",
            "5", "--duration", "5", "--baseline-duration", "3", "--results", str(results), "--reports", str(reports),
            "--workdir", str(tmp_path / "work"), *extra]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    entry = json.loads(results.read_text())["phases"][phase]
    assert (reports / f"{phase}.html").stat().st_size > 10_000  # Locust's report, charts included
    return dict(entry)


def assert_clean_and_exact(entry: dict) -> None:
    assert PHASE_KEYS <= set(entry), PHASE_KEYS - set(entry)
    assert entry["errors"] == 0, entry["error_kinds"]
    assert (entry["learners_ready"], entry["sockets_held"]) == (10, 10)
    assert entry["commands"] > 0 and entry["p99_command_ms"] is not None and entry["p99_visible_ms"] is not None
    verdict = entry["exactness"]
    assert verdict["accepted_commands"] > 0
    assert entry["exact"] is True, verdict
    assert verdict["accepted_lost"] == verdict["accepted_duplicated"] == verdict["events_of_unanswered_commands"] == 0


@pytest.mark.slow
def test_make_load_against_make_run_reports_every_figure_with_no_error_and_an_exact_store(tmp_path):
    entry = run_load(tmp_path, "run")
    assert entry["site"] == "make run"
    assert_clean_and_exact(entry)


@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.redis
@pytest.mark.cluster
def test_make_load_against_make_cluster_reports_every_figure_with_no_error_and_an_exact_store(tmp_path):
    # The test run's own PostgreSQL server, in a database of the load's own (it drops and creates it).
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    database_url = urllib.parse.urlunsplit(parts._replace(path="/reqflow_load_smoke"))
    entry = run_load(tmp_path, "cluster", "--database-url", database_url, "--redis-url", os.environ["REDIS_URL"])
    assert entry["site"] == "make cluster"
    assert_clean_and_exact(entry)
