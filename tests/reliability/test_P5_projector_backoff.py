"""P5 up close: one projector loop, its PostgreSQL behind the fault proxy, which refuses every connection for a
while (the server is "down"). The loop backs off exactly as lab.outage says (0.2 s doubling to 5 s), logs the
outage in one line and its end in another, with no traceback, and once the database is back it catches up with
what arrived meanwhile, each event applied once, the checkpoint only moving forward.

tests/reliability/test_cluster_faults.py restarts a real PostgreSQL under the whole cluster; this one counts the
tries of a single loop, in process, where nothing else can retry on its behalf."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection

from lab import commands
from lab.models import Checkpoint, HistoryLine, Sandbox
from lab.projector import Projector
from reqflow.pooled_postgresql.base import close_kept
from tests.reliability.faultproxy import FaultProxy

pytestmark = [pytest.mark.backend, pytest.mark.postgres, pytest.mark.long, pytest.mark.django_db(transaction=True)]

DOWN_S = 6.5


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    """Every new connection of this process (the test's and the projector thread's) goes through the proxy: they
    share one settings dict."""
    if not settings.IS_POSTGRES:
        pytest.skip("refuses PostgreSQL connections through a proxy: `make test-long` runs this on PostgreSQL")
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    connection.close()
    with FaultProxy(int(port), host) as running:
        db["HOST"], db["PORT"] = "127.0.0.1", str(running.port)
        close_kept()  # the connections this process keeps lead to the server itself: connect anew, through the proxy
        try:
            yield running
        finally:
            connection.close()
            db["HOST"], db["PORT"] = host, port
            close_kept()


class LoopThread:
    """The projector's loop on an event loop of its own, as `run_projector` runs it."""

    def __init__(self) -> None:
        self.projector = Projector(name="p5", fallback_poll_s=5.0, listen_for_wakeups=False, purge_every_s=0)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.projector.run()), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.projector.stop()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the projector did not stop"


def read_version(sandbox: Sandbox) -> int:
    row = Checkpoint.objects.filter(sandbox=sandbox, projection="balance").order_by("-generation").first()
    return row.version if row else 0


def until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_P5_one_loop_backs_off_while_refused_logs_two_lines_and_catches_up(proxy, caplog):
    sandbox = Sandbox.objects.create(lag_ms=0, replay_rate=0)
    for amount in ("5", "7"):
        assert commands.send_command(sandbox, "deposit", amount).accepted
    loop = LoopThread()
    try:
        until(lambda: read_version(sandbox) == 2, 15, "the first projections")
        with caplog.at_level(logging.INFO, logger="lab"):
            proxy.refuse()  # down: open connections reset, new ones refused
            loop.projector.notify(sandbox.pk)  # work to try for at once (a woken loop must not spin either)
            time.sleep(DOWN_S)
            tries_while_down = loop.projector.outage.tries
            proxy.restore()
            connection.close()  # the test's own connection was reset with the rest
            assert commands.send_command(sandbox, "deposit", "11").accepted
            loop.projector.notify(sandbox.pk)
            back = until(lambda: read_version(sandbox) == 3, 10, "the catch-up")
    finally:
        loop.stop()

    # Tries at 0, 0.2, 0.6, 1.4, 3.0 and 6.2 s: six in 6.5 s. Each wake-up during the wait only re-checks.
    assert 4 <= tries_while_down <= 7, tries_while_down
    assert back < 5.0 + 2.0  # within the backoff cap of the database's return (plus the step, on a loaded machine)
    lines = [r.getMessage() for r in caplog.records if r.name == "lab.outage"]
    assert len(lines) == 2, lines
    assert "database unavailable" in lines[0] and "database reachable again after" in lines[1]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    counts = list(
        HistoryLine.objects.filter(sandbox=sandbox).order_by("version").values_list("applied_count", flat=True)
    )
    assert counts == [1, 1, 1]
    print(f"\nP5 (one loop): {tries_while_down} tries in {DOWN_S} s down; caught up {back:.1f} s after the return")
