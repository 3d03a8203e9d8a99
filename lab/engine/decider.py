"""The write model's rules as two pure functions: decide (command -> events or a rejection) and evolve."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from lab.engine.messages import (
    AccountState,
    Command,
    CommandEvent,
    Deposit,
    Deposited,
    Event,
    InterestPaid,
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
    RULE_CENTS: "the amount may have at most two decimal places (whole cents), like 12.34",
    RULE_MAX: "the amount may be at most $10,000.00 per command",
    RULE_NO_OVERDRAFT: "would overdraw the account",
}


def initial_state() -> AccountState:
    return AccountState()


# Plain ASCII decimals only: Decimal() alone would also take "NaN", "1e5", Arabic-Indic digits and "-0".
_AMOUNT_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
# A comma only groups thousands ("1,000.50"): "12,34" is someone's 12.34, never 1234.
_GROUPED_TEXT = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")
_EXPONENT_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")

# Why a text is not an amount, each saying what to type instead (the form shows "Enter a valid amount: <this>.";
# a command outcome "Rejected: <this>"). The rule key stays RULE_POSITIVE: "not a positive amount".
PARSE_MESSAGES = {
    "text": "type the amount as a plain number, like 50 or 12.34",
    "exponent": "type the amount as a plain number, like 50 or 12.34: no exponents",
    "digits": "type the amount with the digits 0-9, like 50 or 12.34",
    "negative": "the amount must be positive, without a minus sign (Withdraw takes money out)",
    "zero": "the amount must be at least $0.01",
    "comma": "use a dot for cents, like 12.34 (a comma only groups thousands, like 1,000.50)",
}


def parse_amount(raw: str) -> Decimal | Rejected:
    """Turn user text into a money amount, or the rule it breaks with a message saying what to type instead.
    Never goes through float. Takes "50", " 50 ", "12.34", ".5", "$1,000.50"; refuses exponents, NaN, infinity,
    signs, digits other than 0-9 and a decimal comma."""
    text = raw.strip().removeprefix("$").strip()
    if "," in text and _GROUPED_TEXT.fullmatch(text):
        text = text.replace(",", "")
    if not text or len(text) > 20 or not _AMOUNT_TEXT.fullmatch(text):
        return Rejected(rule=RULE_POSITIVE, message=PARSE_MESSAGES[_why_not_an_amount(text)])
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return _reject(RULE_POSITIVE)
    if amount == 0:
        return Rejected(rule=RULE_POSITIVE, message=PARSE_MESSAGES["zero"])
    return check_amount(amount)


def _why_not_an_amount(text: str) -> str:
    """Which of PARSE_MESSAGES explains why `text` (stripped, "$" removed) is not a plain amount."""
    if any(c.isdigit() and not c.isascii() for c in text):
        return "digits"
    unsigned = text[1:].strip().removeprefix("$").strip() if text[:1] in ("-", "\u2212") else None
    if unsigned is not None and (_AMOUNT_TEXT.fullmatch(unsigned) or _GROUPED_TEXT.fullmatch(unsigned)):
        return "negative"
    if _EXPONENT_TEXT.fullmatch(text):
        return "exponent"
    if "," in text and set(text) <= set("0123456789.,"):
        return "comma"
    return "text"


def check_amount(amount: Decimal) -> Decimal | Rejected:
    if not amount.is_finite() or amount <= 0:
        return _reject(RULE_POSITIVE)
    exponent = amount.as_tuple().exponent  # as written: "1.000" has three places even if they are zeros
    if isinstance(exponent, int) and exponent < -2:
        return _reject(RULE_CENTS)
    if amount > MAX_AMOUNT:
        return _reject(RULE_MAX)
    return amount.quantize(CENT)


def decide(state: AccountState, command: Command) -> list[CommandEvent] | Rejected:
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
        case InterestPaid(amount=amount):
            # Neither a deposit nor a withdrawal: only the balance and the version move.
            return AccountState(
                balance=state.balance + amount,
                version=state.version + 1,
                deposits=state.deposits,
                withdrawals=state.withdrawals,
            )


def fold(events: Iterable[Event], state: AccountState | None = None) -> AccountState:
    current = state if state is not None else initial_state()
    for event in events:
        current = evolve(current, event)
    return current


def _reject(rule: str) -> Rejected:
    return Rejected(rule=rule, message=RULE_MESSAGES[rule])
