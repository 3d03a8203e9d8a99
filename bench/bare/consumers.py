"""A bare Channels consumer: it joins one group and relays each message's text to its socket, nothing more."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

GROUP = "bare"


class Bare(AsyncWebsocketConsumer):
    groups = [GROUP]

    async def bare_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
