"""The Redis channel layer with a pool that waits when it is full (the scaled-out mode's CHANNEL_LAYERS).

channels_redis gives each event loop a redis-py ConnectionPool, which raises MaxConnectionsError the moment every
connection is in use. A web process's loop uses one per command in flight: a page's socket joining or leaving its
group, each hint (group_send), the shared socket count, and one held by the process's blocking receive for up to
5 s. Under `make load` that burst past the pool 66 times: sockets failed to open, hints and projector wake-ups were
lost. Here the pool is a BlockingConnectionPool of REDIS_POOL_SIZE connections: a command that finds it full waits
up to REDIS_POOL_WAIT_S for one to come back (each is busy for a round trip, milliseconds) instead of failing;
past that it fails as before, and every caller bounds its own wait anyway (lab.live's hints: 1 s).
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]
from redis.asyncio import BlockingConnectionPool


class WaitingRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> BlockingConnectionPool:
        host: dict[str, Any] = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)
