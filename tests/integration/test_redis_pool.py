"""The channel layer's Redis pool (reqflow.channel_layer) against real Redis: a burst of commands larger than the
pool waits for connections instead of failing with MaxConnectionsError (issue 12: 66 of them under `make load`)."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.exceptions import MaxConnectionsError

from reqflow.channel_layer import WaitingRedisChannelLayer

pytestmark = [pytest.mark.backend, pytest.mark.redis]

BURST = 40


def hosts(pool_size: int) -> list[dict[str, object]]:
    host = dict(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0])
    return [host | {"max_connections": pool_size}]


async def burst(layer: RedisChannelLayer) -> list[BaseException | None]:
    channel = await layer.new_channel()
    await layer.group_add("pool-burst", channel)
    try:
        sends = [layer.group_send("pool-burst", {"type": "x", "n": n}) for n in range(BURST)]
        return await asyncio.gather(*sends, return_exceptions=True)
    finally:
        await layer.group_discard("pool-burst", channel)
        await layer.flush()


async def test_a_burst_past_a_full_pool_waits_for_connections():
    layer = WaitingRedisChannelLayer(hosts=hosts(2), capacity=BURST * 2)
    assert await burst(layer) == [None] * BURST


async def test_channels_redis_own_pool_raised_at_the_same_burst():
    # The baseline this replaces: the same burst through channels_redis' ConnectionPool of the same size fails.
    plain = [{key: value for key, value in host.items() if key != "timeout"} for host in hosts(2)]
    results = await burst(RedisChannelLayer(hosts=plain, capacity=BURST * 2))
    assert any(isinstance(result, MaxConnectionsError) for result in results)


def test_the_project_uses_the_waiting_pool_with_its_configured_size():
    layer = get_channel_layer()
    assert isinstance(layer, WaitingRedisChannelLayer)
    pool = layer.create_pool(0)
    assert pool.max_connections == settings.REDIS_POOL_SIZE and pool.timeout == settings.REDIS_POOL_WAIT_S
