"""`/healthz`: can this web process reach its database and its channel layer? For the proxy and the monitoring.

200 `{"status": "ok", ...}` when both answer; 503 with Retry-After naming each one that did not, within
CHECK_TIMEOUT_S whatever hangs. It touches no session and sets no cookie, and nothing may cache it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
RETRY_AFTER_S = 5


def _query_database() -> None:
    # Its own connection in a thread of its own (see below), closed afterwards: the check opens a connection the
    # way a request would, so a refused or exhausted database shows.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


async def _database() -> None:
    # Not thread-sensitive: a connection attempt hanging on an unreachable host must not hold up the one thread
    # every synchronous view of this process shares.
    await sync_to_async(_query_database, thread_sensitive=False)()


async def _channel_layer() -> None:
    """A message to a channel of our own, and back: what a push to an open page goes through."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    # The default prefix: channels_redis reads every process-local channel through one shared receive, and that
    # receive follows the default prefix only (a "healthz." channel waited forever beside an open page's socket).
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "healthz.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "healthz.ping":
        raise RuntimeError(f"the channel layer returned {message!r}")


async def _outcome(name: str, check: Callable[[], Awaitable[None]]) -> str:
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        log.warning("healthz: %s did not answer within %.1f s", name, CHECK_TIMEOUT_S)
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # one line: libpq's messages run over several
        log.warning("healthz: %s failed: %s", name, " ".join(str(exc).split()) or type(exc).__name__)
        return f"error: {type(exc).__name__}"
    return "ok"


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    database, channel_layer = await asyncio.gather(
        _outcome("database", _database), _outcome("channel layer", _channel_layer)
    )
    checks = {"database": database, "channel_layer": channel_layer}
    failed = [name for name, outcome in checks.items() if outcome != "ok"]
    if not failed:
        return JsonResponse({"status": "ok", "checks": checks})
    response = JsonResponse({"status": "unavailable", "failed": failed, "checks": checks}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    response._has_been_logged = True  # type: ignore[attr-defined]  # the line above says it; Django need not again
    return response
