"""The lab's poison event in the pure engine: InterestPaid is a type the write model folds and the read models
deliberately cannot apply, and a skipped position is passed over without breaking the versions' contiguity."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.engine import decider
from lab.engine.messages import AccountState, Deposit, Deposited, InterestPaid, Withdraw, Withdrew
from lab.engine.projection import (
    BalanceState,
    LargestDepositState,
    ProjectionError,
    apply_balance,
    apply_largest_deposit,
    fold_balance,
    fold_largest_deposit,
    pass_over,
)
from lab.engine.upcasting import LATEST_SCHEMA, UnreadableEvent, decode, encode, upcast


def test_the_write_model_folds_interest_into_the_balance_but_counts_no_deposit():
    state = decider.fold([Deposited(D("10.00")), InterestPaid(D("1.00")), Withdrew(D("3.00"))])
    assert state == AccountState(balance=D("8.00"), version=3, deposits=1, withdrawals=1)


def test_no_command_decides_interest():
    for command in (Deposit(D("1.00")), Withdraw(D("1.00"))):
        events = decider.decide(AccountState(balance=D("5.00")), command)
        assert isinstance(events, list) and not any(isinstance(e, InterestPaid) for e in events)


def test_interest_is_stored_and_read_back_like_any_event():
    assert encode(InterestPaid(D("1"))) == ("InterestPaid", 1, {"amount": "1.00"})
    assert decode("InterestPaid", 1, {"amount": "1.00"}) == InterestPaid(D("1.00"))
    assert LATEST_SCHEMA["InterestPaid"] == 1
    assert upcast("InterestPaid", 1, {"amount": "1.00"}) == {"amount": "1.00"}
    with pytest.raises(UnreadableEvent):
        decode("InterestPaid", 1, {"amount": 1.0})  # a float has lost its cents: still a poison payload


def test_the_read_models_have_no_handler_for_interest():
    with pytest.raises(ProjectionError, match="the balance projection has no handler for InterestPaid"):
        apply_balance(BalanceState(D("10.00"), 1), InterestPaid(D("1.00")), position=2, version=2)
    with pytest.raises(ProjectionError, match="the largest-deposit projection has no handler for InterestPaid"):
        apply_largest_deposit(LargestDepositState(D("10.00"), 1, 1, 1), InterestPaid(D("1.00")), 2, 2)


def test_passing_over_a_skipped_event_moves_only_the_version():
    assert pass_over(BalanceState(D("10.00"), 1), 2) == BalanceState(D("10.00"), 2)
    assert pass_over(LargestDepositState(D("10.00"), 7, 1, 1), 2) == LargestDepositState(D("10.00"), 7, 1, 2)
    # A skipped gap or repeat must not stall again: the version only ever moves forward.
    assert pass_over(BalanceState(D("1.00"), 3), 5).version == 5
    assert pass_over(BalanceState(D("1.00"), 3), 3).version == 3


def test_a_fold_passes_over_skipped_positions_and_the_events_after_them_still_follow():
    events = [(10, 1, Deposited(D("10.00"))), (11, 2, InterestPaid(D("1.00"))), (12, 3, Withdrew(D("4.00")))]
    with pytest.raises(ProjectionError):
        fold_balance(events)
    state, lines = fold_balance(events, skipped={11})
    assert state == BalanceState(D("6.00"), 3)
    assert [(line.position, line.version, line.balance_after) for line in lines] == [
        (10, 1, D("10.00")),
        (12, 3, D("6.00")),
    ]
    assert fold_largest_deposit(events, skipped={11}) == LargestDepositState(D("10.00"), 10, 1, 3)


money = st.integers(min_value=1, max_value=10_000).map(lambda c: D(c) / 100)
events = st.lists(
    st.one_of(st.builds(Deposited, money), st.builds(Withdrew, money), st.builds(InterestPaid, money)), max_size=30
)


@given(events)
def test_skipping_every_interest_event_leaves_the_write_balance_minus_the_interest(log):
    numbered = [(100 + i, i + 1, e) for i, e in enumerate(log)]
    interest = {p for p, _, e in numbered if isinstance(e, InterestPaid)}
    state, lines = fold_balance(numbered, skipped=interest)
    written = decider.fold(log)
    assert state.version == written.version
    assert state.amount == written.balance - sum((e.amount for e in log if isinstance(e, InterestPaid)), D("0"))
    assert [line.position for line in lines] == [p for p, _, _ in numbered if p not in interest]
    largest = fold_largest_deposit(numbered, skipped=interest)
    assert largest.version == written.version and largest.deposits_seen == written.deposits
