"""Read-side benchmarks: projector catch-up, blue/green rebuild, push latency at lag 0, and lag accuracy at 1 s.

Measured on a temporary file SQLite database with WAL at synchronous=FULL (the app's settings), in a child
process so the figures never depend on how the caller configured Django. The projector runs as it does in
daphne: an asyncio task whose database work happens on its own thread, woken by the append path.
`run(tmpdir)` returns the figures; standalone, `.venv/bin/python bench/projector_bench.py` prints them.

Each catch-up run is followed by the peer's: the `eventsourcing` library's Projection with tracking records
catching up BENCH_PEER_EVENTS deposits (default: BENCH_EVENTS, at most 2,000) on a file beside ours at the same
settings (bench/peer_eventsourcing.py). Per event both do the same work: the balance row, a history line, and the
position (their tracking record, our checkpoint) in the same transaction as the rows. Theirs commits once per
event, as the library's projections do; ours once per batch of up to 500 events.
"""

from __future__ import annotations

import asyncio
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
CATCH_UP_EVENTS = int(os.environ.get("BENCH_EVENTS", 10_000))
# The peer commits (and fsyncs) once per event: at a few hundred commits a second on a slow disk, 10,000 would take
# most of a minute per run, and its rate does not depend on how many there are.
PEER_EVENTS = int(os.environ.get("BENCH_PEER_EVENTS", min(CATCH_UP_EVENTS, 2_000)))


def run(tmpdir: pathlib.Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        SQLITE_PATH=str(pathlib.Path(tmpdir) / "projector_bench.sqlite3"),
        DJANGO_SETTINGS_MODULE="reqflow.settings",
        LAB_MAX_EVENTS_PER_SANDBOX="100000",
        LOG_LEVEL="WARNING",
    )
    done = subprocess.run(
        [sys.executable, str(pathlib.Path(__file__).resolve()), "--child"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"projector bench failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _measure() -> dict[str, float]:
    from bench_db import setup_django

    setup_django()
    return asyncio.run(_measure_async())


def _seed(count: int):
    from decimal import Decimal

    from lab import store
    from lab.engine.messages import Deposited, Withdrew
    from lab.models import Sandbox

    sandbox = Sandbox.objects.create(lag_ms=0, snapshot_interval=0, replay_rate=0)  # the rebuild's full speed
    events = [
        Withdrew(amount=Decimal("1.00")) if i % 5 == 4 else Deposited(amount=Decimal("12.34")) for i in range(count)
    ]
    for start in range(0, count, 500):
        store.append(
            sandbox, events[start : start + 500], start, f"seed-{start}", deposit_schema=1 + (start // 500) % 2
        )
    return sandbox


async def _measure_async() -> dict[str, float]:
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer
    from django.db import connection
    from peer_eventsourcing import projection_catch_up, sqlite_bank

    from lab import commands, controls, live, queries
    from lab.live import wake_projector
    from lab.models import Sandbox
    from lab.projector import Projector
    from lab.types import Progress

    to_thread = sync_to_async  # thread-sensitive: one thread, like a sync view under daphne
    layer = get_channel_layer()
    projector = Projector(name="bench")
    task = asyncio.ensure_future(projector.run())
    results: dict[str, float] = {}

    async def subscribe(sandbox) -> str:
        channel = await layer.new_channel()
        await layer.group_add(live.group_name(sandbox.pk), channel)
        return channel

    async def until_projected(channel: str, version: int, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(layer.receive(channel), deadline - time.monotonic())
            if message["reason"] == "projected" and message["read_version"] >= version:
                return time.perf_counter()

    async def until_rebuilt(channel: str, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(layer.receive(channel), deadline - time.monotonic())
            if message["reason"] == "rebuild" and not message["running"]:
                return time.perf_counter()

    # --- catch-up at lag 0 and blue/green rebuild ---------------------------------------------------------
    peer = sqlite_bank(str(connection.settings_dict["NAME"]) + ".peer")
    catch_up, rebuild, peer_catch_up = [], [], []
    for _ in range(RUNS):
        sandbox = await to_thread(_seed)(CATCH_UP_EVENTS)
        channel = await subscribe(sandbox)
        started = time.perf_counter()
        wake_projector(sandbox.pk)
        finished = await until_projected(channel, CATCH_UP_EVENTS)
        catch_up.append(CATCH_UP_EVENTS / (finished - started))
        answer = await to_thread(queries.query)(sandbox)
        assert answer.read_version == CATCH_UP_EVENTS and not answer.stale
        # The lab's path: start_rebuild marks the sandbox, the running projector fills the new generation in
        # bounded batches and swaps it in; the clock stops when its final "rebuild" push arrives.
        started = time.perf_counter()
        await to_thread(controls.start_rebuild)(sandbox)
        finished = await until_rebuilt(channel)
        rebuild.append(CATCH_UP_EVENTS / (finished - started))
        assert await to_thread(queries.rebuild_progress)(sandbox) == Progress(CATCH_UP_EVENTS, CATCH_UP_EVENTS, False)
        assert (await to_thread(queries.query)(sandbox)).balance == answer.balance
        peer_catch_up.append(await to_thread(projection_catch_up)(peer, PEER_EVENTS))
    results["projector_events_per_s"] = round(statistics.median(catch_up), 1)
    results["rebuild_events_per_s"] = round(statistics.median(rebuild), 1)
    results["peer_projector_events_per_s"] = round(statistics.median(peer_catch_up), 1)
    # Ours ÷ the peer's run that followed it, then the median (a pair sees nearly the same disk and CPU).
    pairs = zip(catch_up, peer_catch_up, strict=True)
    results["projector_vs_peer"] = round(statistics.median(o / p for o, p in pairs), 2)

    # --- command accepted -> "projected" push on the sandbox's group, lag 0 (no WebSocket in between) ------
    sandbox = await to_thread(Sandbox.objects.create)(lag_ms=0)
    channel = await subscribe(sandbox)
    latencies = []
    for i in range(300):
        outcome = await to_thread(commands.send_command)(sandbox, "deposit", "1")
        accepted = time.perf_counter()
        assert outcome.accepted and outcome.write_version == i + 1
        latencies.append((await until_projected(channel, outcome.write_version) - accepted) * 1000)
        await asyncio.sleep(0.005)
    results["projected_push_lag0_ms_p50"] = round(percentile(latencies, 50), 2)
    results["projected_push_lag0_ms_p99"] = round(percentile(latencies, 99), 2)

    # --- lag accuracy at 1 s: |observed delay - lag|, delay measured from the event's recorded_at -----------
    sandbox = await to_thread(Sandbox.objects.create)(lag_ms=1000)
    channel = await subscribe(sandbox)
    recorded: dict[int, float] = {}
    seen: dict[int, float] = {}

    async def receive_all(expected: int) -> None:
        while len(seen) < expected:
            message = await asyncio.wait_for(layer.receive(channel), 30)
            if message["reason"] == "projected":
                now = time.time()
                for v in range(1, message["read_version"] + 1):
                    seen.setdefault(v, now)

    samples = 120  # p99 of 120 is not simply the single worst sample
    receiver = asyncio.ensure_future(receive_all(samples))
    for _ in range(samples):
        outcome = await to_thread(commands.send_command)(sandbox, "deposit", "1")
        recorded[outcome.write_version] = outcome.events[-1].recorded_at.timestamp()
        await asyncio.sleep(0.07)
    await receiver
    errors = [abs((seen[v] - recorded[v]) * 1000 - 1000) for v in recorded]
    results["lag_error_ms_p50"] = round(percentile(errors, 50), 2)
    results["lag_error_ms_p99"] = round(percentile(errors, 99), 2)

    projector.stop()
    await task
    return results


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(_measure()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(pathlib.Path(tmp)), indent=2))
