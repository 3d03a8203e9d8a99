"""The projector loop against a real database and the real channel layer: lag, pause, crash, poison, fairness."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from lab import controls, live, projector, queries
from lab.live import wake_projector
from lab.models import DeadLetter, HistoryLine, Sandbox
from lab.projector import Projector, start_embedded_projector, stop_embedded_projector
from tests.integration.lab_events import append, eventually, new_sandbox

pytestmark = [
    pytest.mark.backend,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]


def read_version(sandbox: Sandbox) -> int:
    return queries.query(sandbox).read_version


async def listen(sandbox: Sandbox) -> tuple[object, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live.group_name(sandbox.pk), channel)
    return layer, channel


async def next_projected(layer, channel, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(layer.receive(channel), max(0.01, deadline - time.monotonic()))
        if message["reason"] == "projected":
            return message


async def test_an_appended_event_is_projected_and_announced_with_its_read_version(running):
    sandbox = await sync_to_async(new_sandbox)()
    layer, channel = await listen(sandbox)
    running()
    event = await sync_to_async(append)(sandbox, "Deposited", "50.00")
    wake_projector(sandbox.pk)
    message = await next_projected(layer, channel)
    assert message["read_version"] == 1
    assert message["position"] == event.position
    answer = await sync_to_async(queries.query)(sandbox)
    assert (answer.balance, answer.read_version, answer.write_version, answer.stale) == (Decimal("50.00"), 1, 1, False)


async def test_an_event_waits_for_its_lag_before_it_is_applied(running):
    sandbox = await sync_to_async(new_sandbox)(lag_ms=1000)
    running()
    event = await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    await asyncio.sleep(0.5)
    assert await sync_to_async(read_version)(sandbox) == 0
    in_flight = await sync_to_async(queries.in_flight)(sandbox)
    assert [e.position for e in in_flight] == [event.position]
    assert (in_flight[0].due_at - event.recorded_at).total_seconds() == pytest.approx(1.0)
    await eventually(lambda: read_version(sandbox) == 1, timeout=5)
    applied_after = time.time() - event.recorded_at.timestamp()
    assert 1.0 <= applied_after < 3.0  # precise figures: bench lag_error_ms_p99


async def test_a_shorter_lag_takes_effect_at_once(running):
    sandbox = await sync_to_async(new_sandbox)(lag_ms=10_000)
    running()
    await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    await asyncio.sleep(0.3)
    await sync_to_async(controls.set_lag)(sandbox, "0")  # the lab's control; its commit wakes the projector
    await eventually(lambda: read_version(sandbox) == 1, timeout=3)  # the fallback scan is 30 s away


async def test_a_paused_projection_holds_still_and_resumes_from_its_checkpoint(running):
    sandbox = await sync_to_async(new_sandbox)()
    running()
    await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    await eventually(lambda: read_version(sandbox) == 1)
    await sync_to_async(controls.pause_projection)(sandbox)
    await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    await asyncio.sleep(0.5)
    assert await sync_to_async(read_version)(sandbox) == 1
    assert (await sync_to_async(queries.projector_status)(sandbox)).state == "paused"
    await sync_to_async(controls.resume_projection)(sandbox)
    await eventually(lambda: read_version(sandbox) == 2)
    assert (await sync_to_async(queries.projector_status)(sandbox)).state == "running"


async def test_a_crashed_projector_restarts_from_its_checkpoint_without_losing_or_repeating_events(running):
    sandbox = await sync_to_async(new_sandbox)()
    running()
    for _ in range(3):
        await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    await eventually(lambda: read_version(sandbox) == 3)
    await sync_to_async(controls.crash_projector)(sandbox, 1.0)
    for _ in range(2):
        await sync_to_async(append)(sandbox)
    wake_projector(sandbox.pk)
    status = await sync_to_async(queries.projector_status)(sandbox)
    assert status.state == "crashed" and status.crashed_until is not None
    await asyncio.sleep(0.5)
    assert await sync_to_async(read_version)(sandbox) == 3
    await eventually(lambda: read_version(sandbox) == 5, timeout=5)
    counts = await sync_to_async(
        lambda: list(HistoryLine.objects.filter(sandbox=sandbox).values_list("applied_count", flat=True))
    )()
    assert counts == [1] * 5
    assert (await sync_to_async(queries.projector_status)(sandbox)).state == "running"


async def test_a_poison_event_stalls_only_its_own_sandbox_and_says_why(running):
    poisoned = await sync_to_async(new_sandbox)()
    healthy = await sync_to_async(new_sandbox)()
    running()
    await sync_to_async(append)(poisoned, "Deposited", "5.00")
    bad = await sync_to_async(append)(poisoned, "Deposited", payload={"amount": 12.5})  # a float: cents lost
    await sync_to_async(append)(poisoned, "Deposited", "5.00")
    wake_projector(poisoned.pk)
    for _ in range(3):
        await sync_to_async(append)(healthy)
        wake_projector(healthy.pk)
    await eventually(lambda: read_version(healthy) == 3)
    status = await eventually(lambda: (s := queries.projector_status(poisoned)).state == "stalled" and s)
    assert status.stalled_position == bad.position
    assert "decimal string" in status.stalled_reason
    assert status.read_version == 1  # the event before the poison was applied, nothing after it
    await sync_to_async(append)(healthy)
    wake_projector(healthy.pk)
    await eventually(lambda: read_version(healthy) == 4)
    # Retrying without fixing the cause dead-letters it again: the projection never skips an event.
    assert await sync_to_async(controls.retry_dead_letter)(poisoned) == 1
    await eventually(lambda: DeadLetter.objects.filter(sandbox=poisoned, resolved_at__isnull=True).exists())
    assert await sync_to_async(read_version)(poisoned) == 1


async def test_a_busy_sandbox_gets_one_batch_per_turn_so_a_quiet_one_is_not_kept_waiting():
    busy = await sync_to_async(new_sandbox)()
    quiet = await sync_to_async(new_sandbox)()
    await sync_to_async(lambda: [append(busy) for _ in range(300)])()
    await sync_to_async(append)(quiet)
    p = Projector(batch=50)
    p._mark(busy.pk)  # the busy one asked first
    p._mark(quiet.pk)
    try:
        assert await p.turn() is True
        assert await sync_to_async(read_version)(quiet) == 1
        assert await sync_to_async(read_version)(busy) == 50
        assert list(p._due) == [busy.pk]
        while await p.turn():
            pass
        assert await sync_to_async(read_version)(busy) == 300
    finally:
        await asyncio.get_running_loop().run_in_executor(p._executor, _close_connection)
        p._executor.shutdown()


def _close_connection() -> None:
    from django.db import connection

    connection.close()


async def test_the_fallback_scan_finds_work_nobody_announced(running):
    sandbox = await sync_to_async(new_sandbox)()
    await sync_to_async(append)(sandbox)
    running()  # no notify: the startup scan must find the pending event
    await eventually(lambda: read_version(sandbox) == 1)


async def test_the_embedded_projector_starts_exactly_once_per_process():
    try:
        first = start_embedded_projector()
        again = [start_embedded_projector() for _ in range(5)]
        assert all(p is first for p in again)
        tasks = [t for t in asyncio.all_tasks() if t.get_name() == "reqflow-embedded-projector"]
        assert len(tasks) == 1
        assert projector.embedded_projector() is first
    finally:
        await stop_embedded_projector()
    assert projector.embedded_projector() is None


async def test_the_asgi_app_starts_the_embedded_projector_on_its_first_connection(settings):
    from channels.testing import HttpCommunicator

    from reqflow.asgi import StartProjectorOnFirstScope

    settings.EMBEDDED_PROJECTOR = True
    seen = []

    async def app(scope, receive, send):
        seen.append(projector.embedded_projector())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = StartProjectorOnFirstScope(app)
    try:
        for _ in range(3):
            response = await HttpCommunicator(wrapped, "GET", "/").get_response()
            assert response["status"] == 204
        assert seen[0] is not None and all(p is seen[0] for p in seen)
        assert len([t for t in asyncio.all_tasks() if t.get_name() == "reqflow-embedded-projector"]) == 1
    finally:
        # Bounded: a stop that hangs is itself the failure (it once hung for good on PostgreSQL + Redis).
        await asyncio.wait_for(stop_embedded_projector(), 10)


@pytest.mark.redis
async def test_a_projector_listening_for_wakeups_stops_promptly_even_right_after_it_started():
    # Stopping at once lands the cancellation inside the listener's first connection to Redis, where Python 3.11's
    # wait_for can swallow it; the listener then waited in Redis' blocking receive and the stop never returned.
    for _ in range(5):
        p = Projector(name="probe", listen_for_wakeups=True, fallback_poll_s=30.0)
        task = asyncio.ensure_future(p.run())
        await asyncio.sleep(0)
        started = time.monotonic()
        p.stop()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 3


@pytest.mark.redis
@pytest.mark.slow
async def test_an_idle_wakeup_listener_stays_quiet_and_still_wakes_the_projector(running, caplog):
    sandbox = await sync_to_async(new_sandbox)()
    await sync_to_async(lambda: Sandbox.objects.filter(pk=sandbox.pk).update(lag_ms=0))()
    running(name="probe", listen_for_wakeups=True)
    await asyncio.sleep(6.5)  # past channels_redis' 5 s blocking receive: one idle round trip at least
    await sync_to_async(append)(sandbox)
    await sync_to_async(live.send_wakeup)(sandbox.pk)  # as a web process without a local projector does
    await eventually(lambda: read_version(sandbox) == 1, timeout=3)
    assert not [r for r in caplog.records if "listener failed" in r.getMessage()]


async def test_database_work_runs_on_the_projector_thread_not_the_event_loop(running):
    import threading

    sandbox = await sync_to_async(new_sandbox)()
    threads = []
    original = projector.step

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    projector.step = spy
    try:
        running(name="probe")
        await sync_to_async(append)(sandbox)
        wake_projector(sandbox.pk)
        await eventually(lambda: read_version(sandbox) == 1)
    finally:
        projector.step = original
    assert threads and all(name.startswith("reqflow-probe") for name in threads)
