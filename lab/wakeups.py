"""The projector's wake-up listener (scaled-out mode): commits in web processes wake `run_projector` workers through
the channel layer (lab.live.wake_projector sends to WAKEUP_GROUP); this receives them and marks the sandbox due.

A lost wake-up costs only time: the projector's fallback scan finds the work anyway. So a failing Redis is logged as
one line per try (no traceback: Redis down is an outage, not a bug), and a hung one (SIGSTOP) just keeps the
receive waiting until it answers again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from channels.layers import get_channel_layer
from redis.exceptions import TimeoutError as RedisTimeoutError

from lab import live
from lab.outage import first_line
from lab.store.values import py_uuid

log = logging.getLogger(__name__)

STOP_TRIES = 10
STOP_WAIT_S = 0.2
RETRY_S = 1.0


async def listen(mark: Callable[[uuid.UUID | None], None], stopping: Callable[[], bool]) -> None:
    """Until cancelled (or `stopping()`): `mark(sandbox id)` for each wake-up, `mark(None)` for "scan everything"."""
    layer = get_channel_layer()
    if layer is None:
        return
    channel = None
    while not stopping():
        try:
            if channel is None:
                channel = await layer.new_channel()
                await layer.group_add(live.WAKEUP_GROUP, channel)
            message = await layer.receive(channel)
            mark(py_uuid(message["sandbox"]) if message.get("sandbox") else None)
        except asyncio.CancelledError:
            if channel is not None:
                try:
                    await asyncio.wait_for(layer.group_discard(live.WAKEUP_GROUP, channel), live.HINT_TIMEOUT_S)
                except Exception:  # noqa: S110 (the group entry expires on its own)
                    pass
            raise
        except RedisTimeoutError:
            # Nothing arrived within a read timeout: an idle listener, not a failure. Same channel, go again.
            continue
        except Exception as exc:
            log.warning("projector wake-up listener failed (%s); retrying in %.0f s", first_line(exc), RETRY_S)
            channel = None
            await asyncio.sleep(RETRY_S)


async def stop_listener(listener: asyncio.Task[None]) -> None:
    """Cancel the wake-up listener and wait for it, bounded.

    One cancel is not always enough: on Python 3.11, asyncio.wait_for (inside redis-py's connect) swallows a
    cancellation that arrives just as the connection completes, and the listener then sat in Redis' blocking
    receive for good, so stopping the projector hung. Cancelling again reaches it at its next wait.
    """
    for _ in range(STOP_TRIES):
        listener.cancel()
        done, _ = await asyncio.wait({listener}, timeout=STOP_WAIT_S)
        if done:
            if not listener.cancelled() and listener.exception() is not None:
                log.debug("the wake-up listener ended with %r", listener.exception())
            return
    log.warning("the projector's wake-up listener did not stop; leaving it to the event loop's shutdown")
