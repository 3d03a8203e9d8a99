"""What a learner reads when an amount is refused: each kind of wrong text gets a message that says what to type
instead, and everyday forms of a valid amount are accepted (up to $10,000.00, cents allowed). The rule keys stay
those of lab.engine.decider (tests/unit/test_decider.py); these tests are about the words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lab import commands
from lab.engine.decider import (
    MAX_AMOUNT,
    PARSE_MESSAGES,
    RULE_CENTS,
    RULE_MAX,
    RULE_MESSAGES,
    RULE_POSITIVE,
    parse_amount,
)
from lab.engine.messages import Deposited, Rejected, Withdrew
from lab.forms import CommandForm

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,000.50", D("1000.50")),
        (" 50 ", D("50.00")),
        ("$ 12.34", D("12.34")),
        ("10,000.00", MAX_AMOUNT),
        ("0.01", D("0.01")),
        ("50.", D("50.00")),
        ("50.10", D("50.10")),
    ],
)
def test_everyday_forms_of_a_valid_amount_are_accepted(text, expected):
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "rule", "message"),
    [
        ("1e9", RULE_POSITIVE, PARSE_MESSAGES["exponent"]),
        ("2E3", RULE_POSITIVE, PARSE_MESSAGES["exponent"]),
        ("1.5e-2", RULE_POSITIVE, PARSE_MESSAGES["exponent"]),
        ("-5", RULE_POSITIVE, PARSE_MESSAGES["negative"]),
        ("-$5", RULE_POSITIVE, PARSE_MESSAGES["negative"]),
        ("\u22125", RULE_POSITIVE, PARSE_MESSAGES["negative"]),  # a typographic minus sign
        ("-0", RULE_POSITIVE, PARSE_MESSAGES["negative"]),
        ("0", RULE_POSITIVE, PARSE_MESSAGES["zero"]),
        ("0.00", RULE_POSITIVE, PARSE_MESSAGES["zero"]),
        ("NaN", RULE_POSITIVE, PARSE_MESSAGES["text"]),
        ("Infinity", RULE_POSITIVE, PARSE_MESSAGES["text"]),
        ("lots", RULE_POSITIVE, PARSE_MESSAGES["text"]),
        ("+5", RULE_POSITIVE, PARSE_MESSAGES["text"]),
        ("", RULE_POSITIVE, PARSE_MESSAGES["text"]),
        ("\uff11\uff12", RULE_POSITIVE, PARSE_MESSAGES["digits"]),  # full-width "12"
        ("\u0665\u0660", RULE_POSITIVE, PARSE_MESSAGES["digits"]),  # Arabic-Indic "50"
        ("12,34", RULE_POSITIVE, PARSE_MESSAGES["comma"]),  # a decimal comma is never read as 1234
        ("1.000,50", RULE_POSITIVE, PARSE_MESSAGES["comma"]),
        ("1,00", RULE_POSITIVE, PARSE_MESSAGES["comma"]),
        ("50.001", RULE_CENTS, RULE_MESSAGES[RULE_CENTS]),
        ("10000.01", RULE_MAX, RULE_MESSAGES[RULE_MAX]),
        ("1,000,000", RULE_MAX, RULE_MESSAGES[RULE_MAX]),
    ],
)
def test_each_kind_of_wrong_amount_gets_its_own_message(text, rule, message):
    assert parse_amount(text) == Rejected(rule=rule, message=message)


def test_the_messages_say_what_to_type_instead():
    assert "no exponents" in PARSE_MESSAGES["exponent"] and "50 or 12.34" in PARSE_MESSAGES["exponent"]
    assert "0-9" in PARSE_MESSAGES["digits"]
    assert "$0.01" in PARSE_MESSAGES["zero"]
    assert "Withdraw" in PARSE_MESSAGES["negative"]
    assert "two decimal places" in RULE_MESSAGES[RULE_CENTS]  # the browser test reads this
    assert "$10,000.00" in RULE_MESSAGES[RULE_MAX]
    assert len(set(PARSE_MESSAGES.values())) == len(PARSE_MESSAGES)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("1e9", "Enter a valid amount: type the amount as a plain number, like 50 or 12.34: no exponents."),
        ("-5", "Enter a valid amount: the amount must be positive, without a minus sign (Withdraw takes money out)."),
        ("0", "Enter a valid amount: the amount must be at least $0.01."),
        ("\uff11\uff12", "Enter a valid amount: type the amount with the digits 0-9, like 50 or 12.34."),
        ("50.001", "Enter a valid amount: the amount may have at most two decimal places (whole cents), like 12.34."),
        ("", "Enter an amount, for example 50."),
        ("   ", "Enter an amount, for example 50."),
    ],
)
def test_the_command_form_shows_the_specific_message(text, shown):
    form = CommandForm({"kind": "deposit", "amount": text})
    assert not form.is_valid()
    assert form.errors["amount"] == [shown]


@pytest.mark.parametrize(("text", "amount"), [(" 50 ", D("50.00")), ("$1,000.50", D("1000.50"))])
def test_the_command_form_accepts_what_the_engine_accepts(text, amount):
    form = CommandForm({"kind": "withdraw", "amount": text})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == amount


def test_money_in_command_messages_groups_thousands():
    # The page shows balances as "$1,405.00" (floatformat "2g"); an outcome beside them must not say "$1405.00".
    assert commands._describe(Deposited(D("1405"))) == "Deposited $1,405.00"
    assert commands._describe(Withdrew(D("10000.00"))) == "Withdrew $10,000.00"
