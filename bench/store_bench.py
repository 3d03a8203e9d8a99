"""Write-side benchmarks: appends per second (one command per transaction) and write-model load times.

Measured on a temporary file SQLite database with WAL at synchronous=FULL, exactly as the app runs it. Each append
run is paired with two others in the same folder at the same settings, back to back: raw sqlite3 inserts (this
disk's fsync floor right now) and the peer, the `eventsourcing` library's application saving one event per
transaction (bench/peer_eventsourcing.py).
`run(tmpdir)` measures in a child process so the numbers never depend on how the caller configured Django.
Standalone: `.venv/bin/python bench/store_bench.py` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", 5))
APPENDS = int(os.environ.get("BENCH_APPENDS", 2000))  # per run, for ours, raw sqlite3 and the peer alike


def run(tmpdir: pathlib.Path) -> dict[str, float]:
    """Figures for bench/results.json (keys: append_events_per_s, load_10k_no_snapshot_ms, load_10k_snapshot_ms,
    plus a few extra ones that show the shape)."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(SQLITE_PATH=str(pathlib.Path(tmpdir) / "store_bench.sqlite3"), DJANGO_SETTINGS_MODULE="reqflow.settings")
    done = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).resolve()), "--child"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _measure() -> dict[str, float]:
    from bench_db import plain_sqlite, raw_insert, raw_sqlite, setup_django

    setup_django()
    from django.db import connection

    from lab import commands, store
    from lab.engine import decider
    from lab.engine.messages import Deposited
    from lab.engine.store import Metadata, NewEvent
    from lab.models import Sandbox

    event_store = store.event_store
    results: dict[str, float] = {}

    # --- appends: one event, one transaction, one fsync each ----------------------------------------------
    # Each run is paired with raw sqlite3 doing the same one-insert transactions on a bare table in the same
    # folder at the same settings: that is the fsync floor of this disk, and on a shared machine it moves a lot.
    raw_path = pathlib.Path(str(connection.settings_dict["NAME"]) + ".raw")
    raw = raw_sqlite(raw_path)
    from peer_eventsourcing import sequential_appends, sqlite_bank

    peer = sqlite_bank(str(connection.settings_dict["NAME"]) + ".peer")
    floor = plain_sqlite(pathlib.Path(connection.settings_dict["NAME"]))  # the app's own file and events table
    rates, raw_rates, peer_rates, floor_rates = [], [], [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        for _i in range(APPENDS):
            raw_insert(raw)
        raw_rates.append(APPENDS / (time.perf_counter() - started))
        floor_rates.append(schema_floor_appends(floor, APPENDS))
        sandbox = Sandbox.objects.create()
        n = APPENDS
        event = NewEvent("Deposited", 2, {"amount_cents": 5000, "currency": "USD"})
        meta = Metadata.for_command("bench")
        batches = [[NewEvent(event.event_type, event.schema_version, event.payload)] for _ in range(n)]
        started = time.perf_counter()
        for version, batch in enumerate(batches):
            event_store.append(sandbox.stream_id, batch, version, meta)
        rates.append(n / (time.perf_counter() - started))
        peer_rates.append(sequential_appends(peer, n))
    results["append_events_per_s"] = round(statistics.median(rates), 1)
    results["sqlite_raw_insert_per_s"] = round(statistics.median(raw_rates), 1)
    results["peer_append_events_per_s"] = round(statistics.median(peer_rates), 1)
    # Ours ÷ the peer run right after it, then the median: the disk's fsync time drifts several-fold within minutes
    # on this shared machine, and a pair sees nearly the same disk.
    results["append_vs_peer"] = round(statistics.median(o / p for o, p in zip(rates, peer_rates, strict=True)), 2)
    # Our table's own floor: what `append_vs_peer` could reach if our Python cost nothing.
    results["append_floor_per_s"] = round(statistics.median(floor_rates), 1)
    pairs = zip(floor_rates, peer_rates, strict=True)
    results["append_floor_vs_peer"] = round(statistics.median(f / p for f, p in pairs), 2)
    raw.close()
    floor.close()

    # The whole command path (idempotency check, load, decide, append, command record), for comparison.
    rates = []
    for _ in range(3):
        sandbox = Sandbox.objects.create(snapshot_interval=10)
        n = 500
        started = time.perf_counter()
        for _ in range(n):
            commands.send_command(sandbox, "deposit", "50")
        rates.append(n / (time.perf_counter() - started))
    results["send_command_per_s"] = round(statistics.median(rates), 1)

    # --- loads ------------------------------------------------------------------------------------------------
    def stream_of(count: int, snapshot_every: int) -> Sandbox:
        sandbox = Sandbox.objects.create(snapshot_interval=snapshot_every)
        events = [
            Deposited(amount=Decimal("50.00")) if i % 4 else Deposited(amount=Decimal("12.34")) for i in range(count)
        ]
        state = decider.initial_state()
        for start in range(0, count, 500):
            chunk = events[start : start + 500]
            store.append(sandbox, chunk, start, "seed", deposit_schema=1 + (start // 500) % 2)
            if snapshot_every:
                for e in chunk:
                    state = decider.evolve(state, e)
                    if state.version % snapshot_every == 0:
                        store.save_snapshot(sandbox, state, "auto")
        return sandbox

    def load_ms(sandbox: Sandbox, expected_version: int) -> float:
        timings = []
        for _ in range(RUNS * 2 + 1):
            started = time.perf_counter()
            loaded = store.load_state(sandbox)
            timings.append((time.perf_counter() - started) * 1000)
            assert loaded.state.version == expected_version
        return round(statistics.median(timings), 3)

    results["load_10k_no_snapshot_ms"] = load_ms(stream_of(10_000, 0), 10_000)
    results["load_10k_snapshot_ms"] = load_ms(stream_of(10_000, 100), 10_000)
    # The worst case for snapshot-every-100 (99 events after the snapshot), and flatness as the stream grows.
    results["load_10k_snapshot_tail99_ms"] = load_ms(stream_of(10_099, 100), 10_099)
    results["load_1k_snapshot_ms"] = load_ms(stream_of(1_000, 100), 1_000)
    results["load_50k_snapshot_ms"] = load_ms(stream_of(50_000, 100), 50_000)
    return results


def schema_floor_appends(floor: sqlite3.Connection, n: int) -> float:
    """Appends per second of our exact guarded INSERT (lab.store.events) on our events table, with its indexes and
    AUTOINCREMENT counter, one transaction each, through plain sqlite3 with the parameters built beforehand: the
    pages our schema writes per commit on this disk, and none of our Python. Run beside the peer, it is the ceiling
    of `append_vs_peer` with this schema."""
    from lab.store.events import _INSERT_QMARK

    sandbox = uuid.uuid4()
    stream = f"account-{sandbox}"
    at = "2026-12-02 00:00:00.000000"
    payload = json.dumps({"amount_cents": 5000, "currency": "USD"})
    rows = [
        (sandbox.hex, stream, v + 1, "Deposited", 2, payload, uuid.uuid4().hex, "bench", *ids, at, stream, v)
        for v, ids in enumerate((uuid.uuid4().hex, uuid.uuid4().hex) for _ in range(n))
    ]
    started = time.perf_counter()
    for params in rows:
        floor.execute("BEGIN IMMEDIATE")
        assert floor.execute(_INSERT_QMARK, params).fetchone() is not None
        floor.execute("COMMIT")
    return n / (time.perf_counter() - started)


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(_measure()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(pathlib.Path(tmp)), indent=2))
