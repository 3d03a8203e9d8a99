"""The asynchronous projector: follows each sandbox's events and keeps its read models, exactly once.

One loop (`Projector`) serves both runtimes: embedded in daphne (started on the server's own event loop by
`start_embedded_projector`) and as `manage.py run_projector` worker processes in the scaled-out mode. This module
is the loop only: which sandbox goes next, when to sleep, what wakes it. Applying a batch is lab.projections,
a blue/green rebuild lab.rebuild; docs/architecture.md lists the guarantees they keep together.

A turn gives one sandbox one bounded `step`: the live balance, then a rebuild's next batch, then the retroactive
model. Only after a step's transactions committed does the loop push hints ("projected", ...) to the sandbox's
Channels group; pushes are hints (at least once) and the page re-reads, so a lost push loses nothing.
Scheduling is round-robin with bounded batches, so a busy sandbox gets one batch per turn like everyone else.
The loop sleeps until the next event falls due, or until a commit wakes it (lab.live.wake_projector), with a
slow full scan as the fallback. Every LAB_PURGE_EVERY_S it also purges idle sandboxes (lab.sandboxes), a bounded
batch at a time, so the store does not grow without a bound in either runtime.

All database work runs on one dedicated thread with its own connection: never on the event loop (which would
block every socket), and never in asgiref's thread-sensitive executor (where it would queue behind requests).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from lab import live, store
from lab.copying import copy_state
from lab.domain_projections import step_domain
from lab.models import ACCOUNT, BALANCE, LARGEST_DEPOSIT, RETRO_GENERATION, STATE_ONLY, Sandbox
from lab.outage import Outage, is_unavailable
from lab.projection_durability import relax_projection_commits
from lab.projections import Busy, checkpoint, project, sandbox_row
from lab.rebuild import REBUILD_BATCH, pace, rebuild_step
from lab.sandboxes import purge_idle_on_schedule
from lab.store.values import py_uuid
from lab.wakeups import listen, stop_listener

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH = 500  # events per sandbox per turn: big enough to catch up fast, small enough to stay fair
FALLBACK_POLL_S = 5.0  # only for wake-ups that got lost (another process without Redis, a missed notify)
MAX_BACKOFF_S = 10.0
BUSY_AGAIN_S = 1.0  # a sandbox another worker holds: its holder carries on; this is only the safety net
PURGE_BATCH = 100  # idle sandboxes purged per go; a full batch goes again after PURGE_AGAIN_S, not in one long step
PURGE_AGAIN_S = 1.0


# --- A whole turn for one sandbox -----------------------------------------------------------------


@dataclass
class StepResult:
    sandbox_id: uuid.UUID
    applied: int = 0
    more: bool = False
    next_due: float | None = None
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def step(
    sandbox_id: object, *, batch: int = BATCH, rebuild_batch: int = REBUILD_BATCH, hold_s: float = 0.0
) -> StepResult:
    """One bounded turn for one sandbox: live balance, then rebuild, then the retroactive model."""
    sid = py_uuid(sandbox_id)
    result = StepResult(sid)
    row = sandbox_row(sid)
    if row is None or row["retired_at"] is not None:
        return result
    now = timezone.now()
    crashed = row["projector_crashed_until"]
    if crashed is not None:
        if crashed > now:
            result.next_due = crashed.timestamp()
            return result
        # The "restart" after a teaching crash: nothing to recover but the checkpoint, which is in the database.
        if Sandbox.objects.filter(pk=sid, projector_crashed_until=crashed).update(projector_crashed_until=None):
            result.pushes.append(("settings", {"projector": "restarted"}))
    if row["projector_paused"]:
        return result
    lag = dt.timedelta(milliseconds=row["lag_ms"])
    if row["domain"] != ACCOUNT:  # a domain lab: its read models as JSON rows (lab.domain_projections)
        step_domain(result, row, lag, now, batch)
        return result
    if row["mode"] == STATE_ONLY:  # no log to follow: copy the write model's row once its change is due
        _step_copy(result, lag, now)
        return result
    _step_live(result, row, lag, now, batch, hold_s)
    if row["rebuilding_generation"] is not None:
        _step_rebuild(result, row, rebuild_batch)
    if row["retro_model_enabled"]:
        _step_retro(result, row, lag, now, batch)
    return result


def _step_live(
    result: StepResult, row: dict[str, Any], lag: dt.timedelta, now: dt.datetime, batch: int, hold_s: float
) -> None:
    out = project(result.sandbox_id, BALANCE, row["live_generation"], lag=lag, limit=batch, now=now, hold_s=hold_s)
    result.applied += out.applied
    result.more |= out.more
    result.next_due = _earliest(result.next_due, out.next_due)
    if out.applied:
        result.pushes.append(("projected", {"read_version": out.version, "position": out.position}))
    if out.poison is not None:
        result.pushes.append(("stalled", {"position": out.poison[0], "error": out.poison[1]}))


def _step_copy(result: StepResult, lag: dt.timedelta, now: dt.datetime) -> None:
    out = copy_state(result.sandbox_id, lag=lag, now=now)
    result.applied += out.applied
    result.more |= out.more
    result.next_due = _earliest(result.next_due, out.next_due)
    if out.applied:
        result.pushes.append(("projected", {"read_version": out.version, "position": 0}))


def _step_rebuild(result: StepResult, row: dict[str, Any], rebuild_batch: int) -> None:
    rb, swapped = rebuild_step(result.sandbox_id, rebuild_batch)  # at the sandbox's replay pace
    result.more |= rb.more
    result.next_due = _earliest(result.next_due, rb.next_due)  # a paced rebuild's next event, or a lagging one
    if rb.applied or swapped:
        total = (checkpoint(result.sandbox_id, BALANCE, row["live_generation"]) or (0, 0))[1]
        result.pushes.append(("rebuild", {"done": rb.version, "total": max(total, rb.version), "running": not swapped}))
    if swapped:
        result.pushes.append(("projected", {"read_version": rb.version, "position": rb.position, "swapped": True}))


def _step_retro(result: StepResult, row: dict[str, Any], lag: dt.timedelta, now: dt.datetime, batch: int) -> None:
    # The retroactive model replays the log at the sandbox's pace (lab.rebuild.pace); caught up, an event that
    # arrives after a quiet spell still goes at once.
    allowed = pace(result.sandbox_id, LARGEST_DEPOSIT, RETRO_GENERATION, row["replay_rate"], batch)
    retro = project(result.sandbox_id, LARGEST_DEPOSIT, RETRO_GENERATION, lag=lag, limit=allowed.limit, now=now)
    allowed.hold(retro)
    result.more |= retro.more
    result.next_due = _earliest(result.next_due, retro.next_due)
    if retro.applied:
        result.pushes.append(("retro", {"done": retro.version, "position": retro.position}))
    if retro.poison is not None:
        result.pushes.append(("stalled", {"projection": LARGEST_DEPOSIT, "position": retro.poison[0]}))


def _close_connection() -> None:
    # A function, not `connection.close`: the proxy must resolve to this thread's connection when called.
    connection.close()


# --- The loop --------------------------------------------------------------------------------------


class Projector:
    """The projector loop. Run it with `await projector.run()`; stop it with `projector.stop()`."""

    def __init__(
        self,
        *,
        batch: int = BATCH,
        rebuild_batch: int = REBUILD_BATCH,
        fallback_poll_s: float = FALLBACK_POLL_S,
        hold_s: float = 0.0,
        listen_for_wakeups: bool | None = None,
        purge_every_s: float | None = None,
        name: str = "projector",
    ) -> None:
        self.batch = batch
        self.rebuild_batch = rebuild_batch
        self.fallback_poll_s = fallback_poll_s
        self.hold_s = hold_s
        self.name = name
        # Across processes only when the layer crosses processes; the in-memory layer cannot.
        self.listen_for_wakeups = bool(settings.REDIS_URL) if listen_for_wakeups is None else listen_for_wakeups
        # Purging idle sandboxes: every this many seconds (0: never), the first time right after the start.
        self.purge_every_s = float(settings.LAB_PURGE_EVERY_S if purge_every_s is None else purge_every_s)
        self.purged_total = 0
        self._next_purge = 0.0  # (monotonic) when the next purge is due
        self.applied_total = 0
        self._due: dict[uuid.UUID, float] = {}  # insertion order = round-robin order
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reqflow-{name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        # asyncio.Event binds to a loop only when first awaited, so creating it here is safe.
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._scan_now = True
        self._failures: dict[uuid.UUID | None, int] = {}
        self._last_error_log = 0.0
        self.outage = Outage(name)  # a database that cannot serve: capped backoff, one log line (lab.outage)

    # Called from any thread.
    def notify(self, sandbox_id: object | None = None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        sid = None if sandbox_id is None else py_uuid(sandbox_id)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._mark(sid)
        else:
            try:
                loop.call_soon_threadsafe(self._mark, sid)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def stop(self) -> None:
        """Ask the loop to finish its current step and exit. Safe from any thread, before or during run()."""
        self._stopping = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            try:
                loop.call_soon_threadsafe(self._wakeup.set)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _mark(self, sid: uuid.UUID | None) -> None:
        if sid is None:
            self._scan_now = True
        else:
            self._due[sid] = 0.0
        self._wakeup.set()

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            close_old_connections()  # drops a connection that broke (errors, a restarted database)
            try:
                relax_projection_commits(connection)  # no fsync per step on SQLite: lab/projection_durability.py
                return fn(*args, **kwargs)
            finally:
                # This thread belongs to the projector and lives as long as its loop, so it keeps its connection
                # from step to step instead of closing it by CONN_MAX_AGE = 0: a new connection per step (connect,
                # pragmas, a cold page cache) cost a third of catch-up speed. run() closes it on the way out.
                connection.close_at = None

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        live.register_projector(self)
        listener = (
            asyncio.ensure_future(listen(self._mark, lambda: self._stopping)) if self.listen_for_wakeups else None
        )
        last_scan = -1e9
        try:
            while not self._stopping:
                self._wakeup.clear()
                if (backoff := self.outage.delay()) > 0:  # a wake-up only ends the wait early to check again
                    await self._sleep(backoff)
                    continue
                if self._scan_now or time.monotonic() - last_scan >= self.fallback_poll_s:
                    self._scan_now = False
                    last_scan = time.monotonic()
                    await self._scan()
                if self.purge_every_s > 0 and time.monotonic() >= self._next_purge:
                    await self._purge()
                if await self.turn():
                    await asyncio.sleep(0)  # let sockets and requests breathe between full batches
                    continue
                timeout = self.fallback_poll_s - (time.monotonic() - last_scan)
                if self.outage.tries:  # the next try is the backoff's, not the next fallback scan's
                    timeout = min(timeout, self.outage.delay())
                if self._due:
                    timeout = min(timeout, min(self._due.values()) - time.time())
                if self.purge_every_s > 0:
                    timeout = min(timeout, self._next_purge - time.monotonic())
                if timeout > 0:
                    await self._sleep(timeout)
        finally:
            if listener is not None:
                await stop_listener(listener)
            live.unregister_projector(self)
            # The dedicated thread owns a connection; close it there, or PostgreSQL keeps the session open.
            await self._loop.run_in_executor(self._executor, _close_connection)
            self._executor.shutdown(wait=True)

    async def _sleep(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except TimeoutError:
            pass

    async def _scan(self) -> None:
        """Every sandbox with pending work becomes due; the first try after an outage is this scan."""
        try:
            for sid in await self._db(store.pending_sandboxes):
                self._due.setdefault(sid, 0.0)
        except Exception as exc:
            await self._failed(exc, None, "the scan")
            return
        self.outage.recovered()

    async def _failed(self, exc: Exception, sid: uuid.UUID | None, where: str) -> int:
        """A database call failed: an unavailable database backs the whole loop off (and the next try is a scan);
        anything else is this sandbox's problem, logged with its traceback. Returns the failures in a row."""
        await self._db(_close_connection)
        if is_unavailable(exc):
            self.outage.failed(exc, where)
            self._scan_now = True
            return self.outage.tries
        return self._log_failure(sid)

    async def turn(self) -> bool:
        """Give every sandbox that is due one bounded step, in round-robin order. True if any has more."""
        if self.outage.delay() > 0:  # the scan just failed: no step until the backoff is over
            return False
        now = time.time()
        ready = [sid for sid, due in self._due.items() if due <= now]
        more = False
        for sid in ready:
            if self._stopping:
                break
            self._due.pop(sid, None)  # re-inserted at the back if it has more: that is the round robin
            try:
                result = await self._db(
                    step, sid, batch=self.batch, rebuild_batch=self.rebuild_batch, hold_s=self.hold_s
                )
            except Busy:  # another worker is applying this sandbox now; look again in a moment, in case it stops
                self._due[sid] = time.time() + BUSY_AGAIN_S
                continue
            except Exception as exc:
                failures = await self._failed(exc, sid, f"sandbox {sid}")
                if self.outage.tries:  # every sandbox would fail the same way: retry them all after the backoff
                    self._due[sid] = 0.0
                    return False
                self._due[sid] = time.time() + min(MAX_BACKOFF_S, 0.1 * 2**failures)
                continue
            self.outage.recovered()
            self._failures.pop(sid, None)
            self._failures.pop(None, None)
            self.applied_total += result.applied
            for reason, fields in result.pushes:
                await live.apublish(sid, reason, **fields)  # bounded and never raising: a push is a hint
            if result.more:
                self._due[sid] = 0.0
                more = True
            elif result.next_due is not None:
                self._due[sid] = min(self._due.get(sid, result.next_due), result.next_due)
        return more

    async def _purge(self) -> None:
        """One bounded batch of the scheduled purge of idle sandboxes, on the projector's database thread."""
        try:
            purged = await self._db(purge_idle_on_schedule, PURGE_BATCH)
        except Exception as exc:
            await self._failed(exc, None, "the purge")
            self._next_purge = time.monotonic() + min(self.purge_every_s, 60.0)
            return
        self.purged_total += purged
        full = purged >= PURGE_BATCH  # more may be waiting: the next batch soon, between other sandboxes' steps
        self._next_purge = time.monotonic() + (PURGE_AGAIN_S if full else self.purge_every_s)

    def _log_failure(self, sid: uuid.UUID | None) -> int:
        failures = self._failures.get(sid, 0) + 1
        self._failures[sid] = failures
        if time.monotonic() - self._last_error_log > 10:  # rate-limited: a down database must not flood logs
            self._last_error_log = time.monotonic()
            log.exception("projector %s: step for %s failed (%d in a row)", self.name, sid or "scan", failures)
        return failures


# --- Process-level entry points --------------------------------------------------------------------

_EMBEDDED: Projector | None = None
_EMBEDDED_TASK: asyncio.Task[None] | None = None
_EMBEDDED_LOCK = threading.Lock()


def start_embedded_projector() -> Projector:
    """Start the in-process projector on the running event loop (daphne's), once per process."""
    global _EMBEDDED, _EMBEDDED_TASK
    loop = asyncio.get_running_loop()
    with _EMBEDDED_LOCK:
        if _EMBEDDED is None or _EMBEDDED_TASK is None or _EMBEDDED_TASK.done():
            _EMBEDDED = Projector(name="embedded")
            _EMBEDDED_TASK = loop.create_task(_EMBEDDED.run(), name="reqflow-embedded-projector")
            log.info("embedded projector started (pid %s)", os.getpid())
        return _EMBEDDED


async def stop_embedded_projector() -> None:
    """Stop and forget the embedded projector (tests; daphne simply exits)."""
    global _EMBEDDED, _EMBEDDED_TASK
    with _EMBEDDED_LOCK:
        projector, task = _EMBEDDED, _EMBEDDED_TASK
        _EMBEDDED = _EMBEDDED_TASK = None
    if projector is not None and task is not None:
        projector.stop()
        await task


def embedded_projector() -> Projector | None:
    return _EMBEDDED


def drain(sandbox_ids: Iterable[object] | None = None, *, batch: int = BATCH, max_steps: int = 1_000_000) -> int:
    """Synchronously apply everything that is due now, in this thread, without a running loop or wake-ups (events
    still inside their lag stay in flight): for management commands and benchmarks."""
    ids = [py_uuid(s) for s in sandbox_ids] if sandbox_ids is not None else store.pending_sandboxes()
    applied = 0
    queue = list(ids)
    steps = 0
    while queue and steps < max_steps:
        sid = queue.pop(0)
        result = step(sid, batch=batch)
        applied += result.applied
        steps += 1
        if result.more:
            queue.append(sid)
    return applied
