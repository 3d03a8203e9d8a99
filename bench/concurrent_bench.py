"""SQLite appends with 16 concurrent writers (group commit), against this disk's fsync floor in the same run.

16 threads, each appending one event per call to a sandbox of its own through the store's own append
(`store.event_store.append`, outside any transaction: on SQLite the group commit shares one transaction and its
fsync between the appends that arrive while one is being written). The baselines come from the same child, the
same folder and the same settings (WAL, synchronous=FULL), alternating with our runs, so the machine's mood cancels:
  - raw sqlite3, one thread, one INSERT per BEGIN IMMEDIATE ... COMMIT on a bare table: the fsync floor
    (`sqlite_raw_insert_per_s`, the same measurement as bench/store_bench.py's);
  - the same 16 writers with the group commit off, each append its own transaction as before
    (`append_concurrent16_solo_commit_events_per_s`): what the group commit replaced.
`measure(events)` measures in a child process, so the figures never depend on how the caller configured Django.
Standalone: `.venv/bin/python bench/concurrent_bench.py` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", 5))
WRITERS = 16
EVENTS = int(os.environ.get("BENCH_CONCURRENT_EVENTS", 1600))  # per run, shared by the writers


def measure(events: int = EVENTS) -> dict[str, float]:
    """Figures for bench/results.json: append_concurrent16_events_per_s, sqlite_raw_insert_per_s (same run, same
    folder and settings), their ratio append_concurrent_vs_raw, and for context the 16 writers without the group
    commit, one writer with and without it, and the mean number of appends per commit."""
    with tempfile.TemporaryDirectory(prefix="reqflow-concurrent-") as tmp:
        return run(pathlib.Path(tmp), events)


def run(tmpdir: pathlib.Path, events: int = EVENTS) -> dict[str, float]:
    """As `measure`, in `tmpdir` (bench/run.py's calling convention)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(SQLITE_PATH=str(pathlib.Path(tmpdir) / "concurrent.sqlite3"), DJANGO_SETTINGS_MODULE="reqflow.settings")
    done = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).resolve()), "--child", str(events)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _raw_rate(path: pathlib.Path, events: int) -> float:
    """One thread, one INSERT per transaction, each COMMIT an fsync: what one writer gets from this disk."""
    from bench_db import raw_insert, raw_sqlite

    raw = raw_sqlite(path)
    try:
        started = time.perf_counter()
        for _ in range(events):
            raw_insert(raw)
        return events / (time.perf_counter() - started)
    finally:
        raw.close()


def _measure(events: int) -> dict[str, float]:
    from bench_db import setup_django, writers_rate

    setup_django()
    from django.db import connection

    from lab import store
    from lab.engine.store import Metadata, NewEvent
    from lab.models import Sandbox
    from lab.store import group_commit

    meta = Metadata.for_command("bench")
    payload = {"amount_cents": 5000, "currency": "USD"}
    raw_path = pathlib.Path(str(connection.settings_dict["NAME"]) + ".raw")
    per_writer = max(1, events // WRITERS)

    def append_one(sandbox: Sandbox, version: int) -> None:
        store.event_store.append(sandbox.stream_id, [NewEvent("Deposited", 2, payload)], version, meta)

    def solo_one(sandbox: Sandbox, version: int) -> None:
        with group_commit.bypassed():  # each append its own BEGIN IMMEDIATE ... COMMIT, as before
            append_one(sandbox, version)

    rates: dict[str, list[float]] = {"ours": [], "raw": [], "solo": [], "one": [], "one_solo": []}
    commits = jobs = 0
    for _ in range(RUNS):  # alternating, so a slow moment of the machine hits each
        rates["raw"].append(_raw_rate(raw_path, events))
        before = group_commit.stats()
        rates["ours"].append(writers_rate(append_one, [Sandbox.objects.create() for _ in range(WRITERS)], per_writer))
        after = group_commit.stats()
        commits, jobs = commits + after.commits - before.commits, jobs + after.jobs - before.jobs
        rates["solo"].append(writers_rate(solo_one, [Sandbox.objects.create() for _ in range(WRITERS)], per_writer))
        # One writer alone pays the hand-over to the writer thread and shares nothing: its cost, measured.
        rates["one"].append(writers_rate(append_one, [Sandbox.objects.create()], min(events, 500)))
        rates["one_solo"].append(writers_rate(solo_one, [Sandbox.objects.create()], min(events, 500)))
    ours, raw = statistics.median(rates["ours"]), statistics.median(rates["raw"])
    return {
        "append_concurrent16_events_per_s": round(ours, 1),
        "sqlite_raw_insert_per_s": round(raw, 1),
        "append_concurrent_vs_raw": round(ours / raw, 2),
        "append_concurrent16_solo_commit_events_per_s": round(statistics.median(rates["solo"]), 1),
        "append_one_writer_group_commit_events_per_s": round(statistics.median(rates["one"]), 1),
        "append_one_writer_solo_commit_events_per_s": round(statistics.median(rates["one_solo"]), 1),
        "group_commit_appends_per_commit": round(jobs / commits, 2) if commits else 0.0,  # the 16 writers' runs
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(_measure(int(sys.argv[-1]))))
    else:
        print(json.dumps(measure(), indent=2))
