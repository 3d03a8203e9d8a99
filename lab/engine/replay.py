"""Loading a state: the nearest usable snapshot at or below the target version, then the events after it.

The same path serves the write model (target = head) and time travel (target = k). Pure: the caller fetches
snapshot candidates and the tail; this module decides which snapshot counts and folds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lab.engine import decider
from lab.engine.messages import AccountState, Event
from lab.engine.snapshots import UnusableSnapshot, fingerprint, state_from_dict


@dataclass(frozen=True)
class StoredSnapshot:
    version: int
    state: dict[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class Loaded:
    state: AccountState
    snapshot_version: int | None  # the snapshot the fold started from; None = from the first event
    events_replayed: int
    stale_snapshot_seen: bool  # a newer snapshot existed but did not match the current code


def usable_snapshot(
    candidates: Iterable[StoredSnapshot], target_version: int, current_fingerprint: str | None = None
) -> tuple[StoredSnapshot | None, AccountState | None, bool]:
    """The highest-version snapshot at or below target that matches the fingerprint and reads back cleanly.

    Returns (snapshot, its state, whether a stale snapshot was skipped on the way down).
    """
    wanted = current_fingerprint or fingerprint()
    stale = False
    for snap in sorted(candidates, key=lambda s: s.version, reverse=True):
        if snap.version > target_version:
            continue
        if snap.fingerprint != wanted:
            stale = True
            continue
        try:
            state = state_from_dict(snap.state)
        except UnusableSnapshot:
            stale = True
            continue
        if state.version != snap.version:
            stale = True
            continue
        return snap, state, stale
    return None, None, stale


def load(
    snapshot: StoredSnapshot | None,
    snapshot_state: AccountState | None,
    tail: Iterable[Event],
    stale_snapshot_seen: bool = False,
    evolve: Callable[[AccountState, Event], AccountState] = decider.evolve,
) -> Loaded:
    """Fold `tail` (the events after the snapshot, in order) onto the snapshot's state or the initial state."""
    state = snapshot_state if snapshot_state is not None else decider.initial_state()
    count = 0
    for event in tail:
        state = evolve(state, event)
        count += 1
    return Loaded(
        state=state,
        snapshot_version=snapshot.version if snapshot is not None else None,
        events_replayed=count,
        stale_snapshot_seen=stale_snapshot_seen,
    )
