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


Event = Deposited | Withdrew


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
