"""The Redis channel layer as the project configures it (reqflow/settings.py CHANNEL_LAYERS), against real Redis."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer

pytestmark = [pytest.mark.backend, pytest.mark.redis]


async def test_a_cancelled_receive_always_ends_wherever_the_cancellation_lands():
    # A consumer's receive is cancelled whenever its WebSocket closes, the projector's listener whenever it stops.
    # With a socket timeout, redis-py sent each command through asyncio.wait_for, which on Python 3.11 loses a
    # cancellation that lands as the send completes: cancelled 9 to 37 loop turns after it started (while the
    # connection said HELLO), a receive went on polling Redis forever and the test's event loop never closed.
    layer = get_channel_layer()
    stuck = []
    for turns in range(45):
        channel = await layer.new_channel()
        receive = asyncio.ensure_future(layer.receive(channel))
        for _ in range(turns):
            await asyncio.sleep(0)
        receive.cancel()
        done, _ = await asyncio.wait({receive}, timeout=2)
        if not done:
            stuck.append(turns)
            while not receive.done():  # do not leave it polling past the test
                receive.cancel()
                await asyncio.wait({receive}, timeout=0.5)
    assert stuck == []


async def test_an_idle_receive_waits_without_an_error_and_then_gets_its_message():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    receive = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(6.5)  # past channels_redis' 5 s blocking pop, where a 5 s read timeout used to fire
    assert not receive.done()
    await layer.send(channel, {"type": "probe"})
    assert (await asyncio.wait_for(receive, 5)) == {"type": "probe"}
