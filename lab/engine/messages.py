"""Commands (imperative) and events (past tense) of the lab's bank account. All frozen; money is Decimal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Deposit:
    amount: Decimal


@dataclass(frozen=True)
class Withdraw:
    amount: Decimal


Command = Deposit | Withdraw


@dataclass(frozen=True)
class Deposited:
    amount: Decimal
    currency: str = "USD"


@dataclass(frozen=True)
class Withdrew:
    amount: Decimal


@dataclass(frozen=True)
class InterestPaid:
    """Interest credited by the bank, not by a command. The lab's poison event: the write side shipped this new
    event type before the read side's code learned it, so the write model folds it (balance += amount) while the
    read models (lab.engine.projection) deliberately have no handler for it and stall on it."""

    amount: Decimal


CommandEvent = Deposited | Withdrew  # what a command can cause (lab.engine.decider.decide)
Event = Deposited | Withdrew | InterestPaid  # what a stream can hold


@dataclass(frozen=True)
class Rejected:
    """Why the write model refused a command. `rule` is a stable key, `message` is for people."""

    rule: str
    message: str


@dataclass(frozen=True)
class AccountState:
    balance: Decimal = Decimal("0.00")
    version: int = 0
    deposits: int = 0
    withdrawals: int = 0
