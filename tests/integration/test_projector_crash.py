"""Reliability P1: SIGKILL a real `manage.py run_projector` process at random points, 20 times.

After every kill the read model must equal a rebuild from scratch up to its checkpoint (both committed or
neither), and no event may have been applied twice (HistoryLine.applied_count counts applies). The worker
holds each transaction open a few milliseconds (a fault-injection flag), so many kills land inside one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection, transaction

from lab import queries, rebuild, store
from lab.engine import projection
from lab.engine.upcasting import decode
from lab.live import wake_projector
from lab.models import BalanceView, Checkpoint, HistoryLine, StoredEvent
from tests.integration.lab_events import append, new_sandbox

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SQLITE_PATH"] = str(db["NAME"])
    else:
        host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
        env["DATABASE_URL"] = f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"
    env["REQFLOW_TESTING"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def start_worker(stderr, batch: int = 7, hold_ms: int = 15) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_projector", f"--batch={batch}", f"--hold-ms={hold_ms}", "--poll=0.2"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = proc.stdout.readline()
    assert "projector running" in line, f"the worker did not start: {line!r}"
    return proc


def total_applied(sandboxes) -> int:
    return sum(checkpoint_version(s) for s in sandboxes)


def wait_for_progress(sandboxes, since: int, log: Path) -> None:
    """Kill only once the worker is really applying, or most kills would land in its start-up."""
    deadline = time.monotonic() + 10
    while total_applied(sandboxes) == since:
        assert time.monotonic() < deadline, f"the worker applied nothing in 10 s:\n{log.read_text()[-3000:]}"
        time.sleep(0.005)


def stop_worker(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(15)
    finally:
        proc.stdout.close()


def checkpoint_version(sandbox) -> int:
    return (
        Checkpoint.objects.filter(sandbox=sandbox, projection="balance", generation=1)
        .values_list("version", flat=True)
        .first()
        or 0
    )


@contextmanager
def one_snapshot() -> Iterator[None]:
    """Every read in the block sees one committed state. A killed worker's last COMMIT can still land while the test
    reads: PostgreSQL finishes a COMMIT it received before its client died. Read one statement at a time, a
    checkpoint read before that commit and the history lines read after it differed by exactly one batch (7 lines),
    seen once in a fresh-clone run; both committed or neither is only true of one snapshot."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def assert_equals_rebuild_from_scratch(sandbox) -> int:
    with one_snapshot():
        return _equals_rebuild_from_scratch(sandbox)


def _equals_rebuild_from_scratch(sandbox) -> int:
    cp = Checkpoint.objects.filter(sandbox=sandbox, projection="balance", generation=1).first()
    position = cp.position if cp else 0
    rows = StoredEvent.objects.filter(sandbox=sandbox, position__lte=position).order_by("position")
    state, lines = projection.fold_balance(
        [(r.position, r.version, decode(r.event_type, r.schema_version, r.payload)) for r in rows]
    )
    stored = list(
        HistoryLine.objects.filter(sandbox=sandbox, generation=1)
        .order_by("position")
        .values_list("position", "version", "kind", "amount", "balance_after", "applied_count")
    )
    assert stored == [(x.position, x.version, x.kind, x.amount, x.balance_after, 1) for x in lines]
    view = BalanceView.objects.filter(sandbox=sandbox, generation=1).first()
    got = (view.amount, view.version) if view else (projection.ZERO, 0)
    assert got == (state.amount, state.version)
    assert (cp.version if cp else 0) == state.version
    return state.version


@pytest.mark.slow
def test_a_projector_killed_at_random_points_resumes_exactly_once_from_its_checkpoint(tmp_path):
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261127")))
    sandboxes = [new_sandbox(), new_sandbox()]
    for i in range(300):
        for sandbox in sandboxes:
            append(sandbox, "Deposited" if i % 4 else "Withdrew", f"{(i % 9) + 1}.00" if i % 4 else "0.50")
    progress_seen = [0]
    log = tmp_path / "worker.log"
    stderr = log.open("w")
    for kill in range(KILLS):
        worker = start_worker(stderr)
        wait_for_progress(sandboxes, progress_seen[-1], log)
        time.sleep(rng.uniform(0, 0.15))
        stop_worker(worker, signal.SIGKILL)
        connection.close()  # read what the killed process committed, nothing cached
        progress_seen.append(sum(assert_equals_rebuild_from_scratch(s) for s in sandboxes))
        for sandbox in sandboxes:  # keep work arriving between crashes
            append(sandbox, "Deposited", f"{kill + 1}.00")
    assert progress_seen == sorted(progress_seen), "a checkpoint moved backwards"
    assert progress_seen[-1] > progress_seen[0], "the kills never let the projector make progress"

    # Let a final worker finish, then a real blue/green rebuild must agree with what survived 20 crashes.
    worker = start_worker(stderr, batch=500, hold_ms=0)
    try:
        heads = [queries.write_version(s) for s in sandboxes]
        deadline = time.monotonic() + 60
        while [checkpoint_version(s) for s in sandboxes] != heads:
            assert time.monotonic() < deadline, "the last worker did not catch up"
            time.sleep(0.05)
    finally:
        assert stop_worker(worker, signal.SIGTERM) == 0  # SIGTERM exits cleanly
        stderr.close()
    for sandbox in sandboxes:
        before = queries.read_side(sandbox)
        assert_equals_rebuild_from_scratch(sandbox)
        rebuild.rebuild_now(sandbox.pk)
        after = queries.read_side(sandbox)
        assert (after.balance, after.version, after.history) == (before.balance, before.version, before.history)
    assert store.pending_sandboxes() == []


@pytest.mark.slow
def test_two_projector_workers_at_once_never_apply_an_event_twice(tmp_path):
    """Reliability P3: scaled out, workers share sandboxes (advisory lock on PostgreSQL, the checkpoint CAS on
    both), so every event lands once whichever worker applied it."""
    sandboxes = [new_sandbox() for _ in range(4)]
    for i in range(150):
        for sandbox in sandboxes:
            append(sandbox, "Deposited", f"{(i % 7) + 1}.00")
    log = tmp_path / "workers.log"
    with log.open("w") as stderr:
        workers = [start_worker(stderr, batch=5, hold_ms=2) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while total_applied(sandboxes) < 150 * len(sandboxes):
                assert time.monotonic() < deadline, f"the workers did not catch up:\n{log.read_text()[-3000:]}"
                time.sleep(0.05)
        finally:
            codes = [stop_worker(w, signal.SIGTERM) for w in workers]
    assert codes == [0, 0]
    for sandbox in sandboxes:
        assert assert_equals_rebuild_from_scratch(sandbox) == 150


@pytest.mark.redis
def test_an_append_in_another_process_wakes_a_worker_through_the_channel_layer(tmp_path, settings):
    """Scaled out: the web process's wake-up (lab.live.wake_projector) reaches worker processes over Redis, so a
    worker whose fallback scan is a minute away still applies the event at once."""
    sandbox = new_sandbox()
    log = tmp_path / "worker.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_projector", "--poll=60"],
            cwd=ROOT,
            env=child_env() | {"REDIS_URL": settings.REDIS_URL},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert "projector running" in proc.stdout.readline()
            time.sleep(1.0)  # past its start-up scan and subscribed to the wake-up group
            append(sandbox)
            wake_projector(sandbox.pk)
            deadline = time.monotonic() + 10
            while checkpoint_version(sandbox) < 1:
                assert time.monotonic() < deadline, f"no wake-up reached the worker:\n{log.read_text()[-3000:]}"
                time.sleep(0.02)
        finally:
            assert stop_worker(proc, signal.SIGTERM) == 0
