"""The account's rules, given events -> when a command -> then events or a rejection; plus properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.engine.decider import (
    RULE_CENTS,
    RULE_MAX,
    RULE_NO_OVERDRAFT,
    RULE_POSITIVE,
    decide,
    evolve,
    fold,
    initial_state,
    parse_amount,
)
from lab.engine.messages import AccountState, Deposit, Deposited, Rejected, Withdraw, Withdrew

D = Decimal


def given_(*events):
    return fold(events)


def test_a_deposit_into_a_new_account_is_deposited():
    assert decide(given_(), Deposit(D("50.00"))) == [Deposited(D("50.00"))]


def test_a_withdrawal_within_the_balance_is_withdrawn():
    assert decide(given_(Deposited(D("50.00"))), Withdraw(D("50.00"))) == [Withdrew(D("50.00"))]


def test_it_rejects_an_overdraft_by_naming_the_rule():
    result = decide(given_(Deposited(D("50.00")), Withdrew(D("20.00"))), Withdraw(D("30.01")))
    assert isinstance(result, Rejected)
    assert result.rule == RULE_NO_OVERDRAFT
    assert result.message == "would overdraw the account"


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        (D("0"), RULE_POSITIVE),
        (D("-5"), RULE_POSITIVE),
        (D("NaN"), RULE_POSITIVE),
        (D("Infinity"), RULE_POSITIVE),
        (D("0.001"), RULE_CENTS),
        (D("10000.01"), RULE_MAX),
    ],
)
def test_it_rejects_amounts_that_break_a_rule_whatever_the_command(amount, rule):
    for command in (Deposit(amount), Withdraw(amount)):
        result = decide(given_(Deposited(D("10000.00"))), command)
        assert isinstance(result, Rejected) and result.rule == rule


def test_the_largest_allowed_amount_is_accepted():
    assert decide(given_(), Deposit(D("10000.00"))) == [Deposited(D("10000.00"))]


def test_evolve_counts_versions_deposits_and_withdrawals():
    state = fold([Deposited(D("50.00")), Deposited(D("5.00")), Withdrew(D("20.00"))])
    assert state == AccountState(balance=D("35.00"), version=3, deposits=2, withdrawals=1)


def test_evolve_never_mutates_the_state_it_was_given():
    before = initial_state()
    after = evolve(before, Deposited(D("1.00")))
    assert before == AccountState() and after.version == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("50", D("50.00")), ("1,000.50", D("1000.50")), ("$5", D("5.00")), (" 7 ", D("7.00")), (".5", D("0.50"))],
)
def test_amount_text_in_everyday_forms_is_parsed(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", RULE_POSITIVE),
        ("abc", RULE_POSITIVE),
        ("NaN", RULE_POSITIVE),
        ("Infinity", RULE_POSITIVE),
        ("1e9999", RULE_POSITIVE),
        ("-1", RULE_POSITIVE),
        ("-0", RULE_POSITIVE),
        ("0", RULE_POSITIVE),
        ("\u0665\u0660", RULE_POSITIVE),
        ("5\x00", RULE_POSITIVE),
        ("1" * 21, RULE_POSITIVE),
        ("1.001", RULE_CENTS),
        ("1.000", RULE_CENTS),
        ("10000.01", RULE_MAX),
        ("99999999999999999999", RULE_MAX),
    ],
)
def test_amount_text_that_is_not_a_plain_positive_amount_is_rejected(text, rule):
    result = parse_amount(text)
    assert isinstance(result, Rejected) and result.rule == rule


# --- properties --------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=D("0.01"), max_value=D("10000.00"), places=2)
commands = st.lists(st.tuples(st.sampled_from([Deposit, Withdraw]), amounts), max_size=60)


@given(commands)
def test_no_command_sequence_gives_a_negative_balance(sequence):
    state, events = initial_state(), []
    for kind, amount in sequence:
        result = decide(state, kind(amount))
        if isinstance(result, Rejected):
            assert result.rule == RULE_NO_OVERDRAFT
            continue
        events.extend(result)
        for event in result:
            state = evolve(state, event)
        assert state.balance >= 0
    assert fold(events) == state
    assert state.version == len(events)


@given(st.text(max_size=30))
def test_amount_parsing_never_accepts_anything_but_a_positive_amount_in_cents(text):
    result = parse_amount(text)
    if isinstance(result, Rejected):
        return
    assert result.is_finite()
    assert D("0.01") <= result <= D("10000.00")
    assert result == result.quantize(D("0.01"))
    assert result.as_tuple().exponent == -2


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str), st.decimals(allow_nan=True).map(str)))
def test_amount_parsing_never_accepts_nan_inf_three_places_or_negatives(text):
    result = parse_amount(text)
    value = D(text) if text.lower() not in {"nan", "inf", "-inf", "snan", "-nan"} else None
    if value is None or not value.is_finite() or value <= 0:
        assert isinstance(result, Rejected)
    elif "." in text and len(text.split(".")[1].rstrip()) > 2:
        assert isinstance(result, Rejected)
