"""The write model's rules as two pure functions: decide (command -> events or a rejection) and evolve."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from lab.engine.messages import (
    AccountState,
    Command,
    Deposit,
    Deposited,
    Event,
    Rejected,
    Withdraw,
    Withdrew,
)

MAX_AMOUNT = Decimal("10000.00")
CENT = Decimal("0.01")

RULE_POSITIVE = "amount-positive"
RULE_CENTS = "amount-cents"
RULE_MAX = "amount-max"
RULE_NO_OVERDRAFT = "no-overdraft"

RULE_MESSAGES = {
    RULE_POSITIVE: "the amount must be a positive number",
    RULE_CENTS: "the amount may have at most two decimal places",
    RULE_MAX: "the amount may be at most $10,000.00 per command",
    RULE_NO_OVERDRAFT: "would overdraw the account",
}


def initial_state() -> AccountState:
    return AccountState()


# Plain ASCII decimals only: Decimal() alone would also take "NaN", "1e5", Arabic-Indic digits and "-0".
_AMOUNT_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def parse_amount(raw: str) -> Decimal | Rejected:
    """Turn user text into a money amount, or the rule it breaks. Never goes through float."""
    text = raw.strip().replace(",", "").removeprefix("$").strip()
    if not text or len(text) > 20 or not _AMOUNT_TEXT.fullmatch(text):
        return _reject(RULE_POSITIVE)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return _reject(RULE_POSITIVE)
    return check_amount(amount)


def check_amount(amount: Decimal) -> Decimal | Rejected:
    if not amount.is_finite() or amount <= 0:
        return _reject(RULE_POSITIVE)
    exponent = amount.as_tuple().exponent  # as written: "1.000" has three places even if they are zeros
    if isinstance(exponent, int) and exponent < -2:
        return _reject(RULE_CENTS)
    if amount > MAX_AMOUNT:
        return _reject(RULE_MAX)
    return amount.quantize(CENT)


def decide(state: AccountState, command: Command) -> list[Event] | Rejected:
    """The events a command causes in this state, or the rule that refuses it. Appends nothing itself."""
    checked = check_amount(command.amount)
    if isinstance(checked, Rejected):
        return checked
    match command:
        case Deposit():
            return [Deposited(amount=checked)]
        case Withdraw():
            if checked > state.balance:
                return _reject(RULE_NO_OVERDRAFT)
            return [Withdrew(amount=checked)]


def evolve(state: AccountState, event: Event) -> AccountState:
    """The state after one event. Total: every event a store holds must fold."""
    match event:
        case Deposited(amount=amount):
            return AccountState(
                balance=state.balance + amount,
                version=state.version + 1,
                deposits=state.deposits + 1,
                withdrawals=state.withdrawals,
            )
        case Withdrew(amount=amount):
            return AccountState(
                balance=state.balance - amount,
                version=state.version + 1,
                deposits=state.deposits,
                withdrawals=state.withdrawals + 1,
            )


def fold(events: Iterable[Event], state: AccountState | None = None) -> AccountState:
    current = state if state is not None else initial_state()
    for event in events:
        current = evolve(current, event)
    return current


def _reject(rule: str) -> Rejected:
    return Rejected(rule=rule, message=RULE_MESSAGES[rule])
