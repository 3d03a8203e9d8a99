"""Tell open lab pages that something changed. A push is only a hint carrying versions; the page (its
consumer) re-reads the state, so a lost or coalesced push never loses information."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger("concepts.live")

MESSAGE_TYPE = "lab.changed"  # handled by LabConsumer.lab_changed


def group_name(sandbox_id: object) -> str:
    return f"lab-{sandbox_id}"


def message(reason: str, **fields: Any) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "reason": reason, **fields}


async def apublish(sandbox_id: object, reason: str, **fields: Any) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group_name(sandbox_id), message(reason, **fields))
    except Exception:  # a push is a hint: a full or unreachable layer must never fail the caller
        log.warning("push to %s failed", group_name(sandbox_id), exc_info=True)


def publish(sandbox_id: object, reason: str, **fields: Any) -> None:
    """From synchronous code (views, management commands). Call it after the transaction committed."""
    async_to_sync(apublish)(sandbox_id, reason, **fields)
