"""Hints between the lab's parts: tell the open pages that something changed, and wake the projector.

A push is only a hint carrying versions; the page's consumer re-reads the state, so a lost or coalesced push
never loses information. A wake-up only shortens the projector's sleep; its fallback scan finds whatever a lost
one leaves behind. Both go out after the change committed (`after_commit`), never before: a page told too early
would re-read the old state, and a projector woken too early would find nothing to do and sleep on.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from lab.outage import first_line

log = logging.getLogger(__name__)

MESSAGE_TYPE = "lab.changed"  # handled by LabConsumer.lab_changed
WAKEUP_GROUP = "projector-wakeup"  # run_projector workers listen here (scaled-out mode)
# Every hint (a push, a wake-up) gives up after this long: a hung channel layer must hold up neither the request
# that committed nor the projector (the Redis connection has no socket timeout of its own: see CHANNEL_LAYERS in
# reqflow/settings.py).
HINT_TIMEOUT_S = 1.0


def group_name(sandbox_id: object) -> str:
    return f"lab-{sandbox_id}"


def message(reason: str, **fields: Any) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "reason": reason, **fields}


async def apublish(sandbox_id: object, reason: str, **fields: Any) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await asyncio.wait_for(layer.group_send(group_name(sandbox_id), message(reason, **fields)), HINT_TIMEOUT_S)
    except Exception as exc:  # a push is a hint: a full, hung or unreachable layer must never fail the caller
        log.warning("push to %s failed (%s)", group_name(sandbox_id), first_line(exc))  # a line, not a traceback


def publish(sandbox_id: object, reason: str, **fields: Any) -> None:
    """From synchronous code (views, management commands). Call it after the transaction committed.

    Across processes (Redis) it never waits: the hint goes out from the hint thread (`in_background`), so a hung
    Redis costs the hint, not the learner's command (each command waited the whole HINT_TIMEOUT_S). The in-memory
    layer's queues belong to the server's event loop, so there the hint is sent from it, as before (never slow).
    """
    if settings.REDIS_URL:
        in_background(apublish, sandbox_id, reason, **fields)
    else:
        async_to_sync(apublish)(sandbox_id, reason, **fields)


# --- Hints from synchronous code, without waiting ------------------------------------------------------

MAX_HINTS_IN_FLIGHT = 500  # past this many unfinished hints (a hung layer), new ones are dropped: memory stays flat
_HINTS_LOCK = threading.Lock()
_hint_loop: asyncio.AbstractEventLoop | None = None
_hints_in_flight = 0


def _running_hint_loop() -> asyncio.AbstractEventLoop:
    global _hint_loop
    with _HINTS_LOCK:
        if _hint_loop is None or _hint_loop.is_closed():
            _hint_loop = asyncio.new_event_loop()
            threading.Thread(target=_hint_loop.run_forever, name="reqflow-hints", daemon=True).start()
        return _hint_loop


def _hint_done(_: concurrent.futures.Future[None]) -> None:
    global _hints_in_flight
    with _HINTS_LOCK:
        _hints_in_flight -= 1


def in_background(send: Callable[..., Coroutine[Any, Any, None]], *args: Any, **kwargs: Any) -> None:
    """Run `send(*args, **kwargs)`, a bounded hint that never raises, on the hint thread's loop; do not wait."""
    global _hints_in_flight
    with _HINTS_LOCK:
        if _hints_in_flight >= MAX_HINTS_IN_FLIGHT:
            log.debug("%d hints in flight: dropping one (the channel layer is not answering)", _hints_in_flight)
            return
        _hints_in_flight += 1
    future = asyncio.run_coroutine_threadsafe(send(*args, **kwargs), _running_hint_loop())
    future.add_done_callback(_hint_done)


def _flush_hints(timeout_s: float = HINT_TIMEOUT_S + 0.5) -> None:
    """At exit (a management command's last hint), give the hints in flight their bounded time to go out."""
    deadline = time.monotonic() + timeout_s
    while _hints_in_flight > 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def _forget_hint_loop_after_fork() -> None:
    # A forked child (a test's live server) inherits the loop object but not the thread that runs it.
    global _hint_loop, _hints_in_flight
    _hint_loop, _hints_in_flight = None, 0


atexit.register(_flush_hints)
os.register_at_fork(after_in_child=_forget_hint_loop_after_fork)


def after_commit(sandbox_id: object, reason: str, *, wake: bool = True, **fields: Any) -> None:
    """Once the current transaction commits: wake the projector (unless `wake` is False) and tell the sandbox's
    open pages why (`reason`, with `fields`). Outside a transaction both happen at once.

    Each hint runs on its own and robustly: the change is committed, so a failing hint must never turn it into
    an error for the learner, nor stop the other hint.
    """
    if wake:
        transaction.on_commit(Hint(lambda: wake_projector(sandbox_id), _wake_on_loop(sandbox_id)), robust=True)
    publish_on_loop = _publish_on_loop(sandbox_id, reason, fields)
    transaction.on_commit(Hint(lambda: publish(sandbox_id, reason, **fields), publish_on_loop), robust=True)


class Hint:
    """An on_commit hook that sends a hint. Called as any hook is, from sync code; `on_loop` sends the same hint
    from the event loop, for an async caller that waited for the commit there (lab.store.group_commit.wait): a
    push to the in-memory layer from a thread hops to the loop and back (async_to_sync), and reaching that thread
    was a hop of its own."""

    __slots__ = ("on_loop", "send")

    def __init__(self, send: Callable[[], None], on_loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.send = send
        self.on_loop = on_loop

    def __call__(self) -> None:
        self.send()


def _wake_on_loop(sandbox_id: object) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:  # wake_projector never blocks, and is safe on the loop
        wake_projector(sandbox_id)

    return run


def _publish_on_loop(
    sandbox_id: object, reason: str, fields: dict[str, Any]
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        if settings.REDIS_URL:  # as `publish`: across processes it never waits
            in_background(apublish, sandbox_id, reason, **fields)
        else:
            await apublish(sandbox_id, reason, **fields)

    return run


# --- Waking the projector ------------------------------------------------------------------------------


class Wakeable(Protocol):
    def notify(self, sandbox_id: object | None = None) -> None: ...


_LOCAL: set[Wakeable] = set()  # projectors running in this process
_LOCAL_LOCK = threading.Lock()
_PENDING_SENDS: set[asyncio.Task[None]] = set()


def register_projector(projector: Wakeable) -> None:
    with _LOCAL_LOCK:
        _LOCAL.add(projector)


def unregister_projector(projector: Wakeable) -> None:
    with _LOCAL_LOCK:
        _LOCAL.discard(projector)


def wake_projector(sandbox_id: object) -> None:
    """Wake the projector after a change committed. Thread-safe; cheap when no projector runs here.

    A projector in this process is told directly; worker processes (scaled-out mode, `manage.py run_projector`)
    through the channel layer, unless this process runs the embedded projector, which then does the work.
    """
    with _LOCAL_LOCK:
        local = list(_LOCAL)
    for projector in local:
        projector.notify(sandbox_id)
    if settings.REDIS_URL and not (local and settings.EMBEDDED_PROJECTOR):
        send_wakeup(sandbox_id)


def send_wakeup(sandbox_id: object) -> None:
    """Tell worker processes through the channel layer. Best effort: their fallback scan catches anything a lost
    wake-up leaves behind."""
    layer = get_channel_layer()
    if layer is None:
        return
    wakeup = {"type": "projector.wakeup", "sandbox": str(sandbox_id)}

    async def send() -> None:
        try:
            await asyncio.wait_for(layer.group_send(WAKEUP_GROUP, wakeup), HINT_TIMEOUT_S)
        except Exception as exc:
            log.warning("projector wake-up could not be sent (%s)", first_line(exc))

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(send())
        _PENDING_SENDS.add(task)  # a strong reference until it is done: the loop keeps only a weak one
        task.add_done_callback(_PENDING_SENDS.discard)
    else:
        in_background(send)
