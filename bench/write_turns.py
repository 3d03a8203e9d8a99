"""The projector beside busy writers, with and without turns at SQLite's write lock (lab.store.write_gate).

  .venv/bin/python bench/write_turns.py        # 6 rounds of two 4-second windows, alternating; prints JSON

In one process, as in `make run`: BENCH_TURNS_SENDERS threads send deposits to SANDBOXES sandboxes (lag 0) as
fast as they are answered, one thread steps the projector over them round-robin, and two threads read the panel's
state (a push's reads). Each window runs either with this process's turns (the shipped code) or with the turn
never taken (SQLite's busy handler alone, as before), in alternating order; between windows the projector catches
up. Per window: commands/s, events projected/s, and the time of each projector step that applied an event. The
figures that matter are ratios from one sitting: the projector's share of the writes, and its steps' tail.
Knobs: BENCH_TURNS_ROUNDS (6), BENCH_TURNS_SECONDS (4), BENCH_TURNS_SANDBOXES (60), BENCH_TURNS_SENDERS (4).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("BENCH_TURNS_ROUNDS", 6))
SECONDS = float(os.environ.get("BENCH_TURNS_SECONDS", 4))
SANDBOXES = int(os.environ.get("BENCH_TURNS_SANDBOXES", 60))
SENDERS = int(os.environ.get("BENCH_TURNS_SENDERS", 4))


class NoTurns:
    """A gate that is never held: every writer goes straight to SQLite's lock and its busy handler."""

    def acquire(self, timeout: float) -> bool:
        return False

    def release(self) -> None:
        raise AssertionError("never acquired")

    def waiting(self) -> int:
        return 0


def _setup(folder: pathlib.Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="reqflow.settings",
        SQLITE_PATH=str(folder / "write_turns.sqlite3"),
        LAB_MAX_EVENTS_PER_SANDBOX="1000000",
    )
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _loop(
    stop: threading.Event, body: Callable[[int], None], start: int, errors: list[BaseException]
) -> Callable[[], None]:
    def run() -> None:
        from django.db import connection

        i = start
        try:
            while not stop.is_set():
                body(i)
                i += 1
        except BaseException as exc:  # a thread's error would only be printed: the window must fail with it
            errors.append(exc)
            stop.set()
        finally:
            connection.close()

    return run


def _window(sandboxes: list[Any], gate: Any) -> dict[str, float]:
    from django.db import connection

    from lab import commands, projector, queries
    from lab.projection_durability import relax_projection_commits
    from lab.store import write_gate

    write_gate._gate = gate
    stop, counts, steps = threading.Event(), {"commands": 0, "projected": 0}, []

    def send(i: int) -> None:
        commands.send_command(sandboxes[(i * 7) % len(sandboxes)], "deposit", "1", str(uuid.uuid4()))
        counts["commands"] += 1

    def project(i: int) -> None:
        if i == 0:
            relax_projection_commits(connection)  # synchronous=NORMAL, as the projector's thread sets it
        started = time.perf_counter()
        applied = projector.step(sandboxes[i % len(sandboxes)].pk).applied
        if applied:
            steps.append(time.perf_counter() - started)
            counts["projected"] += applied

    def read(i: int) -> None:
        queries.lab_state(sandboxes[i % len(sandboxes)])

    bodies = [(send, k) for k in range(SENDERS)] + [(project, 0)] + [(read, k) for k in range(2)]
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_loop(stop, body, k, errors)) for body, k in bodies]
    for thread in threads:
        thread.start()
    stop.wait(SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    steps.sort()
    return {
        "commands_per_s": counts["commands"] / SECONDS,
        "projected_per_s": counts["projected"] / SECONDS,
        "step_ms_mean": statistics.mean(steps) * 1000 if steps else 0.0,
        "step_ms_p99": steps[int(len(steps) * 0.99)] * 1000 if steps else 0.0,
    }


def _catch_up(sandboxes: list[Any]) -> None:
    from lab import projector

    for sandbox in sandboxes:
        while projector.step(sandbox.pk).more:
            pass


def measure(folder: pathlib.Path) -> dict[str, Any]:
    _setup(folder)
    from lab.models import Sandbox
    from lab.store import write_gate

    sandboxes = [Sandbox.objects.create(lag_ms=0) for _ in range(SANDBOXES)]
    gates = {"turns": write_gate._gate, "no_turns": NoTurns()}
    windows: dict[str, list[dict[str, float]]] = {"turns": [], "no_turns": []}
    for round_ in range(ROUNDS):
        for name in ("turns", "no_turns") if round_ % 2 == 0 else ("no_turns", "turns"):
            windows[name].append(_window(sandboxes, gates[name]))
            write_gate._gate = gates["turns"]
            _catch_up(sandboxes)
    medians = {name: {k: statistics.median(w[k] for w in ws) for k in ws[0]} for name, ws in windows.items()}
    share = {n: m["projected_per_s"] / m["commands_per_s"] if m["commands_per_s"] else 0.0 for n, m in medians.items()}
    return {
        "windows": windows,
        "medians": medians,
        "projected_share_turns_vs_no_turns": round(share["turns"] / share["no_turns"], 3) if share["no_turns"] else 0,
        "step_p99_turns_vs_no_turns": round(medians["turns"]["step_ms_p99"] / medians["no_turns"]["step_ms_p99"], 3)
        if medians["no_turns"]["step_ms_p99"]
        else 0,
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(pathlib.Path(tmp)), indent=2))
