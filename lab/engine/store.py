"""The event store contract, and an in-memory store that keeps it (the Django store in lab.store
keeps the same one; tests/integration/test_event_store_contract.py runs one suite against both).

A stream is a list of events numbered 1, 2, 3...; every event also gets a global position that only grows.
An append names the version it expects the stream to be at; anything else is a ConcurrencyError, never an
overwrite.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class ConcurrencyError(Exception):
    """The stream was not at the expected version: someone else appended first."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version  # None when it could not be read inside a broken transaction
        at = "another version" if actual_version is None else f"version {actual_version}"
        super().__init__(f"stream {stream_id} is at {at}, the append expected {expected_version}")


@dataclass(frozen=True)
class NewEvent:
    """An event about to be stored: its type, the schema its payload is written in, and the payload."""

    event_type: str
    schema_version: int
    payload: dict[str, Any]
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True)
class Metadata:
    """Why an event exists: the command that caused it and the conversation it belongs to."""

    command_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID

    @classmethod
    def for_command(cls, command_id: str) -> Metadata:
        # A command starts its conversation, so it is both the cause and the correlation; a uuid5 makes the
        # same command id always map to the same uuid, which keeps retries recognisable in the log.
        cause = uuid.uuid5(COMMAND_NAMESPACE, command_id)
        return cls(command_id=command_id, correlation_id=cause, causation_id=cause)


COMMAND_NAMESPACE = uuid.UUID("9b0f3c2e-6a0e-4a8e-9d7e-2f1f6a5c0b11")


@dataclass(frozen=True)
class RecordedEvent:
    position: int
    stream_id: str
    version: int
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    event_id: uuid.UUID
    command_id: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID
    recorded_at: dt.datetime


class EventStore(Protocol):
    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, metadata: Metadata
    ) -> list[RecordedEvent]:
        """Store `events` as versions expected_version+1... atomically, or raise ConcurrencyError."""
        ...

    def stream_version(self, stream_id: str) -> int: ...

    def read_stream(
        self, stream_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    def read_all_after(self, position: int, limit: int = 1000) -> list[RecordedEvent]:
        """The committed events above `position`, in position order. Positions commit in order within a stream;
        a store whose streams append concurrently (Django on PostgreSQL) promises no more than that."""
        ...


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def recorded_events(
    stream_id: str,
    events: Sequence[NewEvent],
    positions: Sequence[int],
    expected_version: int,
    metadata: Metadata,
    at: dt.datetime,
) -> list[RecordedEvent]:
    """What an append returns: each new event at the position the store gave it and the next stream version."""
    return [
        RecordedEvent(
            position=position,
            stream_id=stream_id,
            version=expected_version + i + 1,
            event_type=e.event_type,
            schema_version=e.schema_version,
            payload=dict(e.payload),
            event_id=e.event_id,
            command_id=metadata.command_id,
            correlation_id=metadata.correlation_id,
            causation_id=metadata.causation_id,
            recorded_at=at,
        )
        for i, (e, position) in enumerate(zip(events, positions, strict=True))
    ]


class InMemoryEventStore:
    """The store contract in a few dicts; one lock stands in for the database's write lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._log: list[RecordedEvent] = []
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._event_ids: set[uuid.UUID] = set()

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: int, metadata: Metadata
    ) -> list[RecordedEvent]:
        if expected_version < 0:
            raise ValueError("expected_version must be 0 or more")
        with self._lock:
            stream = self._streams.get(stream_id, [])
            actual = len(stream)
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            ids = [e.event_id for e in events]
            if len(set(ids)) != len(ids) or self._event_ids.intersection(ids):
                raise ValueError("an event id is already stored")
            positions = [len(self._log) + i + 1 for i in range(len(events))]
            recorded = recorded_events(stream_id, events, positions, expected_version, metadata, now())
            self._log.extend(recorded)
            self._streams[stream_id] = [*stream, *recorded]
            self._event_ids.update(ids)
            return recorded

    def stream_version(self, stream_id: str) -> int:
        return len(self._streams.get(stream_id, ()))

    def read_stream(
        self, stream_id: str, after_version: int = 0, up_to_version: int | None = None
    ) -> list[RecordedEvent]:
        stream = self._streams.get(stream_id, [])
        end = len(stream) if up_to_version is None else max(0, min(up_to_version, len(stream)))
        return stream[max(0, after_version) : end]

    def read_all_after(self, position: int, limit: int = 1000) -> list[RecordedEvent]:
        start = max(0, position)
        return self._log[start : start + max(0, limit)]
