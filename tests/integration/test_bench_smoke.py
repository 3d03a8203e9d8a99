"""`make bench` still runs: every benchmark script, at a few events and samples each, into a temporary results file.

Nothing else imports the benchmark scripts, so a change to the code they drive can break them silently (the lab's
move to its own app did: the store benchmark lost its append and load figures until `make bench` was run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Seven benchmarks, each starting servers or child processes, on a shared machine: more than the suite's 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def run_bench(script: str, timeout: int, **knobs: str) -> subprocess.CompletedProcess[str]:
    """A benchmark script as `make bench` runs it: its own settings, none of the suite's database or Redis."""
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}}
    done = subprocess.run(
        [sys.executable, script], cwd=ROOT, env={**env, **knobs}, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def test_every_benchmark_runs_and_reports_every_figure(tmp_path):
    results = tmp_path / "results.json"
    run_bench("bench/run.py", 840, BENCH_RESULTS=str(results), BENCH_RUNS="1", BENCH_EVENTS="300",
              BENCH_LATENCY_SAMPLES="10", BENCH_PG_APPENDS="20", BENCH_CONCURRENT_EVENTS="320",
              BENCH_APPENDS="200")  # fmt: skip
    figures = json.loads(results.read_text())["figures"]
    expected = {
        "append_events_per_s",
        "sqlite_raw_insert_per_s",
        "send_command_per_s",
        "load_10k_no_snapshot_ms",
        "load_10k_snapshot_ms",
        "projector_events_per_s",
        "rebuild_events_per_s",
        "lag_error_ms_p99",
        "visible_latency_lag0_ms_p50",
        "visible_latency_lag0_ms_p99",
        "sqlite_commit_ms_p99",  # the same run's bare commit times: what the disk adds to the latency tails
        # The eventsourcing peers, each measured beside ours in the same run (issue 12).
        "peer_append_events_per_s",
        "append_vs_peer",
        "append_floor_per_s",
        "append_floor_vs_peer",
        "peer_projector_events_per_s",
        "projector_vs_peer",
        # PostgreSQL through deploy/services.py: the local server, else a throwaway one, so never missing.
        "pg_append_concurrent16_events_per_s",
        "peer_pg_append_concurrent16_events_per_s",
        "pg_append_vs_peer",
        # 16 concurrent SQLite writers through the group commit, against one raw writer of the same run.
        "append_concurrent16_events_per_s",
        "append_concurrent_vs_raw",
        # The bare peers: a Channels group send (fanout_bench) and a bare Django site on daphne (http_bench).
        "fanout200_ms_p99",
        "fanout_vs_bare",
        "http_commands_per_s",
        "http_vs_bare",
        "page_views_per_s",
        "page_vs_bare",
    }
    assert expected <= set(figures), sorted(expected - set(figures))
    assert all(value > 0 for value in figures.values())


def test_the_write_turns_comparison_runs_both_ways(tmp_path):
    """bench/write_turns.py, the same-sitting comparison behind lab.store.write_gate, at one short round."""
    done = run_bench("bench/write_turns.py", 300, BENCH_TURNS_ROUNDS="1", BENCH_TURNS_SECONDS="0.5",
                     BENCH_TURNS_SANDBOXES="4")  # fmt: skip
    report = json.loads(done.stdout)
    (turns,), (no_turns,) = report["windows"]["turns"], report["windows"]["no_turns"]
    assert turns["commands_per_s"] > 0 and no_turns["commands_per_s"] > 0, report
    # Without turns the projector may not get the lock at all in half a second: that is what the turns are for.
    assert turns["projected_per_s"] > 0 and turns["step_ms_p99"] > 0, report
    assert {"projected_share_turns_vs_no_turns", "step_p99_turns_vs_no_turns"} <= report.keys()
