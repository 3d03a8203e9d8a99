"""The read models as pure folds: they agree with the write model, and refuse what they cannot apply."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.engine import decider
from lab.engine.messages import Deposited, Withdrew
from lab.engine.projection import (
    BalanceState,
    LargestDepositState,
    ProjectionError,
    apply_balance,
    fold_balance,
    fold_largest_deposit,
)

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000.00"), places=2)
events = st.lists(st.one_of(amounts.map(Deposited), amounts.map(Withdrew)), max_size=60)


def numbered(evs):
    return [(10 * i + 3, i + 1, e) for i, e in enumerate(evs)]


@given(events)
def test_the_balance_view_folds_to_the_same_balance_and_version_as_the_write_model(evs):
    state, lines = fold_balance(numbered(evs))
    write = decider.fold(evs)
    assert (state.amount, state.version) == (write.balance, write.version)
    assert [line.version for line in lines] == list(range(1, len(evs) + 1))


@given(events)
def test_each_history_line_carries_its_position_and_the_running_balance(evs):
    _, lines = fold_balance(numbered(evs))
    running = Decimal("0.00")
    for (position, _, event), line in zip(numbered(evs), lines, strict=True):
        running += event.amount if isinstance(event, Deposited) else -event.amount
        assert (line.position, line.balance_after, line.amount) == (position, running, event.amount)
        assert line.kind == ("deposit" if isinstance(event, Deposited) else "withdrawal")


@given(events, st.integers(min_value=0, max_value=60))
def test_folding_in_two_batches_equals_folding_at_once(evs, cut):
    whole, whole_lines = fold_balance(numbered(evs))
    head, head_lines = fold_balance(numbered(evs)[:cut])
    tail, tail_lines = fold_balance(numbered(evs)[cut:], head)
    assert tail == whole and head_lines + tail_lines == whole_lines


@given(events)
def test_the_largest_deposit_is_the_first_deposit_that_reached_the_maximum(evs):
    state = fold_largest_deposit(numbered(evs))
    deposits = [(p, e.amount) for p, _, e in numbered(evs) if isinstance(e, Deposited)]
    assert state.deposits_seen == len(deposits)
    assert state.version == len(evs)
    if not deposits:
        assert (state.amount, state.position) == (None, None)
    else:
        best = max(a for _, a in deposits)
        assert (state.amount, state.position) == (best, next(p for p, a in deposits if a == best))


def test_a_version_gap_is_refused_rather_than_folded():
    with pytest.raises(ProjectionError, match="expected stream version 2, got 3"):
        apply_balance(BalanceState(Decimal("5.00"), 1), Deposited(Decimal("1.00")), 9, 3)


def test_a_repeated_event_is_refused_rather_than_counted_twice():
    state, _ = apply_balance(BalanceState(), Deposited(Decimal("1.00")), 1, 1)
    with pytest.raises(ProjectionError):
        apply_balance(state, Deposited(Decimal("1.00")), 1, 1)
    with pytest.raises(ProjectionError):
        fold_largest_deposit([(1, 1, Deposited(Decimal("1.00")))], LargestDepositState(version=1))


def test_an_unknown_event_is_a_projection_error():
    with pytest.raises(ProjectionError, match="no handler"):
        apply_balance(BalanceState(), object(), 1, 1)  # type: ignore[arg-type]
