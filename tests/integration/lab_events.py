"""Test helpers for the lab: sandboxes and stored events without going through the write model, visitors with a
sandbox, and waiting in async tests. (Fixtures shared by the integration tests are in conftest.py.)

The projector must cope with whatever the store holds (including rows the write model would never produce,
such as poison payloads), so these helpers write StoredEvent rows directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal

from django.db import transaction
from django.test import Client
from django.utils import timezone

from lab.models import Sandbox, StoredEvent
from lab.store import lock_for_append


def new_sandbox(**fields) -> Sandbox:
    """A sandbox at lag 0 whose rebuilds and retroactive catch-up replay unpaced (a test about the pace sets it)."""
    return Sandbox.objects.create(**{"lag_ms": 0, "replay_rate": 0, **fields})


def append(
    sandbox: Sandbox,
    kind: str = "Deposited",
    amount: str | Decimal = "10.00",
    *,
    schema: int | None = None,
    payload: dict | None = None,
    recorded_at: dt.datetime | None = None,
) -> StoredEvent:
    """Append one event at the next stream version, the way the store does: one short write transaction."""
    if payload is None:
        if kind == "Deposited" and schema == 2:
            payload = {"amount_cents": int(Decimal(amount) * 100), "currency": "USD"}
        else:
            payload = {"amount": str(Decimal(amount).quantize(Decimal("0.01")))}
    with transaction.atomic():
        lock_for_append(sandbox)
        last = StoredEvent.objects.filter(stream_id=sandbox.stream_id).order_by("-version").first()
        cause = uuid.uuid4()
        return StoredEvent.objects.create(
            sandbox=sandbox,
            stream_id=sandbox.stream_id,
            version=(last.version if last else 0) + 1,
            event_type=kind,
            schema_version=schema or 1,
            payload=payload,
            command_id=str(cause),
            correlation_id=cause,
            causation_id=cause,
            recorded_at=recorded_at or timezone.now(),
        )


def visitor(path: str = "/lab/", **client_options) -> Client:
    """A new browser that visited `path` (a page with the lab) and then acted in the lab, which gave its session a
    sandbox (a page view creates none): it set the lag to the default, 2 s, so the sandbox is as new."""
    client = Client(**client_options)
    client.get(path)
    client.post("/lab/lag/", {"lag": "2", "next": path}, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    return client


def append_many(sandbox: Sandbox, amounts: list[tuple[str, str]]) -> list[StoredEvent]:
    return [append(sandbox, kind, amount) for kind, amount in amounts]


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Wait (generously bounded) for a synchronous predicate to turn truthy; returns its value."""
    from asgiref.sync import sync_to_async

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await sync_to_async(predicate)()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def close_sync_to_async_connections() -> None:
    """Close the connection asgiref's shared thread opened for sync_to_async calls in async tests.

    PostgreSQL refuses to drop the test database while any session is open, and that thread outlives tests.
    """
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result()
