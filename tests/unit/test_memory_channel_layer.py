"""The embedded default's in-memory channel layer sweeps expired entries at most once per SWEEP_EVERY_S
(reqflow/memory_channel_layer.py): Channels' own swept every channel and group on each send and receive, which with
300 open lab pages kept the event loop busy. Expired messages and memberships must still go."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer

from reqflow import memory_channel_layer
from reqflow.memory_channel_layer import SweepingInMemoryChannelLayer


async def test_a_burst_of_sends_and_receives_sweeps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sweeps = []
    original = InMemoryChannelLayer._clean_expired
    monkeypatch.setattr(InMemoryChannelLayer, "_clean_expired", lambda self: sweeps.append(1) or original(self))
    monkeypatch.setattr(memory_channel_layer, "SWEEP_EVERY_S", 60.0)  # nothing in this test waits that long
    layer = SweepingInMemoryChannelLayer()
    channels = [await layer.new_channel() for _ in range(300)]
    for channel in channels:
        await layer.group_add("lab-x", channel)
    for _ in range(20):
        await layer.group_send("lab-x", {"type": "lab.changed"})
    for channel in channels:
        assert (await layer.receive(channel))["type"] == "lab.changed"
    assert len(sweeps) == 1  # Channels' own layer: 320 sweeps of 300 channels each


async def test_expired_messages_and_their_channels_still_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_channel_layer, "SWEEP_EVERY_S", 0.05)
    layer = SweepingInMemoryChannelLayer(expiry=0.1)
    stale, fresh = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("lab-x", stale)
    await layer.group_add("lab-x", fresh)
    await layer.send(stale, {"type": "old"})
    await asyncio.sleep(0.3)  # past the message's expiry and the sweep interval
    await layer.group_send("lab-x", {"type": "new"})  # sweeps first: the stale channel's message expired
    assert stale not in layer.groups.get("lab-x", {})  # an expired message drops its channel from every group
    assert (await layer.receive(fresh))["type"] == "new"
    assert layer.channels.get(stale) is None
