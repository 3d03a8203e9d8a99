"""What a domain registers, as data, and what any registered domain can do through it.

A `Domain` names its command and event types, its decide/evolve pair, its initial state and its read models, and
gets from here: stored-event encoding with a schema version per event type (and upcasters, as
lab.engine.upcasting has for the account), snapshots as dicts, a fold, and `restore`: a state from an optional
snapshot plus the events after it, saying whether a snapshot was used and how many events were replayed.

Every domain state and read-model state is a frozen dataclass with a `version` field: the stream version of the
last event folded into it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.engine import snapshots
from lab.engine.domains import codec
from lab.engine.projection import ProjectionError
from lab.engine.upcasting import Payload, UnreadableEvent, Upcaster


@dataclass(frozen=True)
class ReadModel:
    """A read model as a pure fold: `apply(state, event) -> state`, from `initial()`. `state_type` is the frozen
    dataclass it folds into (with a `version` field), so it can be stored as a dict like a snapshot."""

    name: str
    state_type: type[Any]
    initial: Callable[[], Any]
    apply: Callable[[Any, Any], Any]

    def apply_at(self, state: Any, event: Any, version: int) -> Any:
        """`apply`, checking the stream version is the next one (a gap or a repeat would silently diverge)."""
        if version != state.version + 1:
            raise ProjectionError(f"{self.name}: expected stream version {state.version + 1}, got {version}")
        return dataclasses.replace(self.apply(state, event), version=version)

    def fold(self, events: Iterable[Any], state: Any = None) -> Any:
        current = state if state is not None else self.initial()
        for event in events:
            current = self.apply_at(current, event, current.version + 1)
        return current


@dataclass(frozen=True)
class Restored:
    state: Any
    snapshot_version: int | None  # the snapshot the fold started from; None = from the first event
    events_replayed: int

    @property
    def used_snapshot(self) -> bool:
        return self.snapshot_version is not None


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    command_types: tuple[type[Any], ...]
    event_types: tuple[type[Any], ...]
    state_type: type[Any]
    initial_state: Callable[[], Any]
    decide: Callable[[Any, Any], Any]  # (state, command) -> list of events | Rejected
    evolve: Callable[[Any, Any], Any]  # (state, event) -> state; total over event_types
    read_models: Mapping[str, ReadModel]
    schemas: Mapping[str, int] = field(default_factory=dict)  # event type -> latest schema (1 when absent)
    upcasters: Mapping[tuple[str, int], Upcaster] = field(default_factory=dict)  # (type, from version) -> lift

    def fold(self, events: Iterable[Any], state: Any = None) -> Any:
        current = state if state is not None else self.initial_state()
        for event in events:
            current = self.evolve(current, event)
        return current

    def encode(self, event: Any) -> tuple[str, int, Payload]:
        """(event type, schema version, JSON-safe payload) to store for one of this domain's events."""
        name = type(event).__name__
        if name not in self._events:
            raise TypeError(f"{name} is not an event of the {self.name} domain")
        return name, self.schemas.get(name, 1), codec.to_dict(event)

    def decode(self, event_type: str, schema_version: int, payload: Payload) -> Any:
        """The event a stored row means, lifted through the upcasters; UnreadableEvent for a poison payload."""
        cls = self._events.get(event_type)
        if cls is None:
            raise UnreadableEvent(f"the {self.name} domain has no event type {event_type!r}")
        latest = self.schemas.get(event_type, 1)
        if type(schema_version) is not int or not 1 <= schema_version <= latest:
            raise UnreadableEvent(f"{event_type} has no schema version {schema_version!r} (latest is {latest})")
        current = payload
        for version in range(schema_version, latest):
            try:
                current = self.upcasters[(event_type, version)](dict(current))
            except Exception as exc:  # an upcaster over a malformed payload is a poison event, not a crash
                raise UnreadableEvent(f"{event_type} v{version} could not be upcast: {exc}") from exc
        return codec.from_dict(cls, current)

    def state_to_dict(self, state: Any) -> dict[str, Any]:
        return codec.to_dict(state)

    def state_from_dict(self, data: Mapping[str, Any]) -> Any:
        """A snapshot's state read back; snapshots.UnusableSnapshot if it does not fit (callers replay instead)."""
        try:
            return codec.from_dict(self.state_type, data)
        except UnreadableEvent as exc:
            raise snapshots.UnusableSnapshot(str(exc)) from exc

    def fingerprint(self) -> str:
        """The code fingerprint a snapshot of this domain carries (evolve's source and the state's fields)."""
        return snapshots.fingerprint(self.evolve, self.state_type)

    def restore(self, snapshot: Mapping[str, Any] | None, tail: Iterable[Any]) -> Restored:
        """The state from `snapshot` (a state_to_dict dict, or None for the start) plus the events after it."""
        state = self.state_from_dict(snapshot) if snapshot is not None else self.initial_state()
        start = state.version if snapshot is not None else None
        count = 0
        for event in tail:
            state = self.evolve(state, event)
            count += 1
        return Restored(state, start, count)

    @property
    def _events(self) -> dict[str, type[Any]]:
        return {cls.__name__: cls for cls in self.event_types}
