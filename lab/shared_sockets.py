"""The socket caps across processes: open lab sockets counted in Redis when the channel layer is Redis.

lab.sockets counts the sockets of this process. Scaled out, each daphne process kept its own count, so a session
could hold the cap on each of them (twice the cap with two web processes). With a Redis channel layer the count
lives in Redis as well, through a client of our own: one sorted set per session and per address (members are
channel names, scores the time each socket opened, so the oldest goes first), and for each socket a key that
expires unless the socket's heartbeat renews it. A web process that dies without closing its sockets leaves
members whose key expired: the next socket counted there drops them. The embedded mode (one process, the
in-memory layer) needs none of this; there the in-process count is the whole truth.

Every call is bounded (SHARED_TIMEOUT_S) and never raises: a hung or absent Redis leaves the in-process cap in
force, which still bounds what one process holds, and logs one line per minute, not one per socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis
from django.conf import settings

from lab.sockets import REGISTRY, Eviction, caps_for

log = logging.getLogger(__name__)

PREFIX = "reqflow:lab-sockets:"
ALIVE_TTL_S = 60  # a socket not heard of for this long (its process died) is no longer counted
HEARTBEAT_S = 20.0  # each open socket renews its key this often, well inside the TTL
SHARED_TIMEOUT_S = 1.0  # like a push: a slow Redis must not hold up a socket's connect or close
LOG_EVERY_S = 60.0

# KEYS: the sorted sets this socket counts in (session, address). ARGV: channel, now, ttl, the prefix of the alive
# keys, then one limit per key. Atomic, so two processes counting at once cannot both let a socket in past the cap.
_ADD = """
local channel, now, ttl, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local function alive(member) return prefix .. member end
local function forget(member)
  local keys = redis.call('GET', alive(member))
  if keys then
    for key in string.gmatch(keys, '[^\\n]+') do redis.call('ZREM', key, member) end
  end
  redis.call('DEL', alive(member))
end
redis.call('SET', alive(channel), table.concat(KEYS, '\\n'), 'EX', ttl)
local evicted = {}
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, channel)
  redis.call('EXPIRE', key, ttl)
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    if redis.call('EXISTS', alive(member)) == 0 then redis.call('ZREM', key, member) end
  end
  local extra = redis.call('ZCARD', key) - tonumber(ARGV[4 + i])
  if extra > 0 then
    for _, member in ipairs(redis.call('ZRANGE', key, 0, extra - 1)) do
      forget(member)
      table.insert(evicted, tostring(i) .. ' ' .. member)
    end
  end
end
return evicted
"""

# KEYS: none; ARGV: the alive key of the socket. Uncounts it wherever it was counted.
_REMOVE = """
local keys = redis.call('GET', ARGV[1])
if keys then
  for key in string.gmatch(keys, '[^\\n]+') do redis.call('ZREM', key, ARGV[2]) end
end
redis.call('DEL', ARGV[1])
return 1
"""

# ARGV: alive key, ttl. Renews the socket's key and the sets it is counted in (they expire with their last socket).
_RENEW = """
local keys = redis.call('GET', ARGV[1])
if not keys then return 0 end
redis.call('EXPIRE', ARGV[1], tonumber(ARGV[2]))
for key in string.gmatch(keys, '[^\\n]+') do redis.call('EXPIRE', key, tonumber(ARGV[2])) end
return 1
"""

_last_logged = 0.0


def _quiet_warning(what: str) -> None:
    global _last_logged
    now = time.monotonic()
    if now - _last_logged >= LOG_EVERY_S:
        _last_logged = now
        log.warning("the shared socket count is unavailable (%s); each process counts its own sockets", what)


_client: Any = None


def _redis(layer: Any) -> Any:
    """A Redis client of our own when the channel layer is Redis (the scaled-out mode); None for any other layer.
    Synchronous, on a thread: the channel layer's own asyncio connection (its pool also serves its blocking
    receive) changed when the other sockets' hints were delivered, and a client per event loop would outlive the
    loops a test run opens and closes."""
    global _client
    if not callable(getattr(layer, "connection", None)) or not settings.REDIS_URL:
        return None
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=SHARED_TIMEOUT_S, socket_connect_timeout=SHARED_TIMEOUT_S
        )
    return _client


async def _eval(client: Any, *args: Any) -> Any:
    return await asyncio.wait_for(asyncio.to_thread(client.eval, *args), SHARED_TIMEOUT_S + 0.5)


def set_key(per: str, value: str) -> str:
    return f"{PREFIX}set:{per}:{value}"


ALIVE_PREFIX = f"{PREFIX}alive:"


def alive_key(channel_name: str) -> str:
    return ALIVE_PREFIX + channel_name


async def add(layer: Any, channel_name: str, caps: list[tuple[str, str, int]]) -> list[Eviction] | None:
    """Count a socket in Redis under each (per, value, limit) with a value; returns the sockets, of any process, it
    pushes out past a cap (already uncounted). None when there is no shared count (not Redis, or Redis failed)."""
    client = _redis(layer)
    counted = [(per, value, limit) for per, value, limit in caps if value]
    if client is None or not counted:
        return None
    keys = [set_key(per, value) for per, value, _ in counted]
    argv = [channel_name, time.time(), ALIVE_TTL_S, ALIVE_PREFIX, *(limit for _, _, limit in counted)]
    try:
        evicted = await _eval(client, _ADD, len(keys), *keys, *argv)
    except Exception as exc:
        _quiet_warning(type(exc).__name__)
        return None
    evictions = []
    for item in evicted:
        index, member = (item.decode() if isinstance(item, bytes) else str(item)).split(" ", 1)
        per, _, limit = counted[int(index) - 1]
        evictions.append(Eviction(member, limit, per))
    return evictions


async def remove(layer: Any, channel_name: str) -> None:
    client = _redis(layer)
    if client is None:
        return
    try:
        await _eval(client, _REMOVE, 0, alive_key(channel_name), channel_name)
    except Exception as exc:  # its key expires by itself
        _quiet_warning(type(exc).__name__)


async def heartbeat(layer: Any, channel_name: str) -> None:
    """Renew the socket's key until cancelled (at disconnect). Runs as a task per open socket in Redis mode."""
    client = _redis(layer)
    if client is None:
        return
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await _eval(client, _RENEW, 0, alive_key(channel_name), ALIVE_TTL_S)
        except Exception as exc:
            _quiet_warning(type(exc).__name__)


async def count(layer: Any, *, per: str, value: str) -> int | None:
    """How many sockets Redis counts under a session or address (for tests and the probe); None without Redis."""
    client = _redis(layer)
    if client is None:
        return None
    return int(await asyncio.wait_for(asyncio.to_thread(client.zcard, set_key(per, value)), SHARED_TIMEOUT_S))


async def count_open(layer: Any, channel_name: str, *, session: str, address: str) -> list[Eviction]:
    """Count a newly accepted socket, in Redis when there is one and in this process always; returns the sockets
    to close. The shared count decides when it answered; otherwise this process's count does."""
    shared = await add(layer, channel_name, caps_for(session=session, address=address))
    local = REGISTRY.add(channel_name, session=session, address=address, enforce=shared is None)
    if shared is None:
        return local
    for eviction in shared:  # uncounted here too, as this process's own evictions are (some are other processes')
        REGISTRY.remove(eviction.channel_name)
    return shared


async def forget(layer: Any, channel_name: str) -> None:
    REGISTRY.remove(channel_name)
    await remove(layer, channel_name)


def start_heartbeat(layer: Any, channel_name: str) -> asyncio.Task[None] | None:
    """The task that keeps a socket counted in Redis while it is open; None without Redis. Cancel it on close."""
    if _redis(layer) is None:
        return None
    return asyncio.ensure_future(heartbeat(layer, channel_name))
