"""The read models as pure folds: what the projector writes, computed without a database.

The projector (lab.projector, through lab.projections) feeds these functions the events past a checkpoint and
stores what they return in the same transaction as the new checkpoint. Keeping the arithmetic here lets a
property test compare the stored read model with a fold of the events, and lets a rebuild reuse exactly the
live code path.

A poison event stops a projection (ProjectionError). The projections never skip one on their own, which would
silently corrupt the read model; only a learner's explicit Skip moves it to the dead-letter list, and from then
on every projection of that sandbox passes over its position (`pass_over`): nothing of it is applied, but the
stream version moves past it, so the events after it still follow contiguously.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, TypeVar

from lab.engine.messages import Deposited, Event, Withdrew

ZERO = Decimal("0.00")


class ProjectionError(Exception):
    """An event this projection cannot apply (a poison event): the projection must stop, not skip it."""


@dataclass(frozen=True)
class BalanceState:
    amount: Decimal = ZERO
    version: int = 0


@dataclass(frozen=True)
class Line:
    """One history line: a transaction as the read side lists it, with the event position it came from."""

    position: int
    version: int
    kind: str  # "deposit" | "withdrawal"
    amount: Decimal
    balance_after: Decimal
    recorded_at: Any  # passed through untouched: whatever the database handed the projector


@dataclass(frozen=True)
class LargestDepositState:
    amount: Decimal | None = None
    position: int | None = None
    deposits_seen: int = 0
    version: int = 0


ReadState = TypeVar("ReadState", BalanceState, LargestDepositState)


def pass_over(state: ReadState, version: int) -> ReadState:
    """The state after a skipped (dead-lettered for good) event at `version`: nothing of the event is applied, only
    the stream version moves past it. No contiguity check: a skipped version gap or repeat must not stall again."""
    return replace(state, version=max(state.version, version))


def _next_version(current: int, version: int) -> None:
    # Versions of one stream are contiguous; a gap or a repeat means the projection would silently diverge
    # from the write model, so it is treated like any other event the projection cannot apply.
    if version != current + 1:
        raise ProjectionError(f"expected stream version {current + 1}, got {version}")


def apply_balance(
    state: BalanceState, event: Event, position: int, version: int, recorded_at: Any = None
) -> tuple[BalanceState, Line]:
    _next_version(state.version, version)
    match event:
        case Deposited(amount=amount):
            after = state.amount + amount
            kind = "deposit"
        case Withdrew(amount=amount):
            after = state.amount - amount
            kind = "withdrawal"
        case _:
            raise ProjectionError(f"the balance projection has no handler for {type(event).__name__}")
    return BalanceState(amount=after, version=version), Line(position, version, kind, amount, after, recorded_at)


def apply_largest_deposit(state: LargestDepositState, event: Event, position: int, version: int) -> LargestDepositState:
    _next_version(state.version, version)
    match event:
        case Deposited(amount=amount):
            # Ties keep the earlier deposit: the first time the maximum was reached is the one worth pointing at.
            if state.amount is None or amount > state.amount:
                return LargestDepositState(amount, position, state.deposits_seen + 1, version)
            return LargestDepositState(state.amount, state.position, state.deposits_seen + 1, version)
        case Withdrew():
            return LargestDepositState(state.amount, state.position, state.deposits_seen, version)
        case _:
            raise ProjectionError(f"the largest-deposit projection has no handler for {type(event).__name__}")


def fold_balance(
    events: list[tuple[int, int, Event]], state: BalanceState | None = None, skipped: Collection[int] = ()
) -> tuple[BalanceState, list[Line]]:
    """(position, version, event) triples in order -> the balance and the history lines they produce.
    `skipped`: positions the learner skipped, passed over without a line."""
    current = state or BalanceState()
    lines = []
    for position, version, event in events:
        if position in skipped:
            current = pass_over(current, version)
            continue
        current, line = apply_balance(current, event, position, version)
        lines.append(line)
    return current, lines


def fold_largest_deposit(
    events: list[tuple[int, int, Event]], state: LargestDepositState | None = None, skipped: Collection[int] = ()
) -> LargestDepositState:
    current = state or LargestDepositState()
    for position, version, event in events:
        if position in skipped:
            current = pass_over(current, version)
            continue
        current = apply_largest_deposit(current, event, position, version)
    return current
