"""Fan-out: one update to 200 open lab pages of one sandbox, against a bare Channels group send, same run.

`fanout200_ms_p99`: from the hint's publish to the 200th socket's receipt of the push showing the new write
version (p99 over the updates). `fanout_vs_bare`: that ÷ the same for the bare consumer of bench/bare/ relaying one
message to 200 channels of the same in-memory layer; the message is as large as what a lab socket received for an
update until it showed the new version (`fanout_push_bytes`, the median over sockets and updates).
`fanout200_unshared_ms_p99`: the lab's push with lab.consumers.SHARED_PUSHES off (each socket reads and renders
for itself, as before), for comparison. The state changes for real (a command) with its own hint held back, so the
timed publish is the only one. Child process, temporary file SQLite (WAL, synchronous=FULL), in-memory layer.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOCKETS = int(os.environ.get("BENCH_SOCKETS", 200))
# 8 updates per run of the other benchmarks (BENCH_RUNS, default 5): 40, or 8 in make test's one-run smoke test.
UPDATES = int(os.environ.get("BENCH_FANOUT_UPDATES") or 8 * int(os.environ.get("BENCH_RUNS") or 5))
UNSHARED_UPDATES = max(3, UPDATES // 4)  # each costs 200 reads and renders
WRITE_VERSION = re.compile(r'data-testid="write-version">(\d+)<')


def run(tmpdir: pathlib.Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    # REQFLOW_TESTING: plain static storage, since a fresh clone has no collectstatic manifest. The socket caps: 200
    # pages of one sandbox are far past what one session may hold open (lab.sockets).
    env.update(SQLITE_PATH=str(pathlib.Path(tmpdir) / "fanout.sqlite3"), DJANGO_SETTINGS_MODULE="reqflow.settings",
               LOG_LEVEL="WARNING", EMBEDDED_PROJECTOR="0", REQFLOW_TESTING="1",
               LAB_MAX_SOCKETS_PER_SESSION=str(SOCKETS), LAB_MAX_SOCKETS_PER_ADDRESS=str(SOCKETS))  # fmt: skip
    done = subprocess.run([sys.executable, str(pathlib.Path(__file__).resolve()), "--child"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"fanout bench failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def _measure() -> dict[str, float]:
    from bench_db import setup_django

    setup_django()
    return asyncio.run(_measure_async())


async def _until_all(sockets: list, predicate) -> tuple[float, float]:  # type: ignore[type-arg, no-untyped-def]
    """When the last socket received a frame satisfying the predicate (perf_counter seconds), and the median of the
    characters each socket received until then (that frame included)."""

    async def one(communicator) -> tuple[float, int]:  # type: ignore[no-untyped-def]
        size = 0
        while True:
            frame = await communicator.receive_from(timeout=60)
            size += len(frame)
            if predicate(frame):
                return time.perf_counter(), size

    done = await asyncio.gather(*(one(s) for s in sockets))
    return max(at for at, _ in done), statistics.median(size for _, size in done)


async def _drain(sockets: list) -> None:  # type: ignore[type-arg]
    for communicator in sockets:
        while not await communicator.receive_nothing(timeout=0.001):
            await communicator.receive_from()


async def _lab(sockets: list, sandbox, updates: int, sizes: list[float]) -> list[float]:  # type: ignore[no-untyped-def]
    from asgiref.sync import sync_to_async

    from lab import commands, live

    samples = []
    for _ in range(updates):
        held, live.publish = live.publish, lambda *a, **k: None  # the command's own hint: the timed one is below
        try:
            outcome = await sync_to_async(commands.send_command, thread_sensitive=False)(sandbox, "deposit", "1")
        finally:
            live.publish = held
        version = outcome.write_version
        started = time.perf_counter()
        await live.apublish(sandbox.pk, "command", write_version=version, projects_at_once=False)
        last, size = await _until_all(sockets, lambda m, v=version: (f := WRITE_VERSION.search(m)) and int(f[1]) == v)
        samples.append((last - started) * 1000)
        sizes.append(size)
        await asyncio.sleep(0.2)  # past the push's second frame and the per-socket rate limit
        await _drain(sockets)
    return samples


async def _bare(size: int, updates: int) -> list[float]:
    from bare.consumers import GROUP, Bare
    from channels.layers import get_channel_layer
    from channels.testing import WebsocketCommunicator

    sockets = [WebsocketCommunicator(Bare.as_asgi(), "/") for _ in range(SOCKETS)]
    for communicator in sockets:
        await communicator.connect()
    layer, samples = get_channel_layer(), []
    for i in range(updates):
        text = f"{i:08d}" + "x" * max(0, size - 8)
        started = time.perf_counter()
        await layer.group_send(GROUP, {"type": "bare.message", "text": text})
        last, _ = await _until_all(sockets, lambda m, t=text[:8]: m.startswith(t))
        samples.append((last - started) * 1000)
        await asyncio.sleep(0.05)
    for communicator in sockets:
        await communicator.disconnect()
    return samples


async def _measure_async() -> dict[str, float]:
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.conf import settings
    from django.test import Client

    from lab import consumers
    from lab.sandboxes import sandbox_for_session_key
    from reqflow.asgi import application

    def learner():  # type: ignore[no-untyped-def]
        client = Client(SERVER_NAME="127.0.0.1")
        client.get("/lab/")
        client.post("/lab/command/", {"kind": "deposit", "amount": "5"})
        key = client.cookies[settings.SESSION_COOKIE_NAME].value
        return key, sandbox_for_session_key(key)

    key, sandbox = await sync_to_async(learner)()
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1"),
               (b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]  # fmt: skip
    sockets = [WebsocketCommunicator(application, "/ws/lab/", headers=headers) for _ in range(SOCKETS)]
    for communicator in sockets:
        await communicator.connect()
        await communicator.receive_from(timeout=60)
    sizes: list[float] = []
    shared = await _lab(sockets, sandbox, UPDATES, sizes)
    consumers.SHARED_PUSHES = False
    unshared = await _lab(sockets, sandbox, UNSHARED_UPDATES, [])
    consumers.SHARED_PUSHES = True
    for communicator in sockets:
        await communicator.disconnect()
    # The bare message carries as many characters as a lab socket received for an update (before, the size of a
    # whole first push: every live part, far more than an update's diffed push, which flattered the lab).
    push_bytes = round(statistics.median(sizes))
    bare = await _bare(push_bytes, UPDATES)
    return {
        "fanout200_ms_p99": round(percentile(shared, 99), 2),
        "fanout200_ms_p50": round(percentile(shared, 50), 2),
        "fanout200_unshared_ms_p99": round(percentile(unshared, 99), 2),
        "fanout_bare200_ms_p99": round(percentile(bare, 99), 2),
        "fanout_vs_bare": round(percentile(shared, 99) / percentile(bare, 99), 2),
        "fanout_unshared_vs_bare": round(percentile(unshared, 99) / percentile(bare, 99), 2),
        "fanout_push_bytes": push_bytes,
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        print(json.dumps(_measure()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(pathlib.Path(tmp)), indent=2))
