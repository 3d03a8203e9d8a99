"""The payment ledger's write model: money that is never overwritten.

Every movement is a posting of balanced entries (signed amounts that sum to zero): a deposit takes money from the
`external` account (the outside world; its balance is minus everything the customers hold, so it alone may go
below zero), a transfer moves it between accounts. A refund never edits the transfer it undoes: it posts new
entries, the exact reverse. A transfer or refund that would overdraw a customer account is rejected whole, so no
entry of it is posted. Amounts follow the account's rules (lab.engine.decider.check_amount).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from lab.engine.decider import check_amount
from lab.engine.messages import Rejected

EXTERNAL = "external"
ZERO = Decimal("0.00")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}")

RULE_NAME = "account-name"
RULE_OPEN = "account-exists"
RULE_UNKNOWN = "account-unknown"
RULE_SAME = "same-account"
RULE_ID = "posting-id"
RULE_OVERDRAFT = "no-overdraft"
RULE_NOT_A_TRANSFER = "refund-unknown"
RULE_REFUNDED = "already-refunded"

RULE_MESSAGES = {
    RULE_NAME: "an account name is 1-20 lowercase letters, digits or dashes, starting with a letter",
    RULE_OPEN: "that account is already open",
    RULE_UNKNOWN: "no open account has that name",
    RULE_SAME: "a transfer needs two different accounts",
    RULE_ID: "each posting needs a new id of up to 40 letters, digits or . _ : -",
    RULE_OVERDRAFT: "would overdraw an account: nothing of it was posted",
    RULE_NOT_A_TRANSFER: "only a transfer or deposit that was posted can be refunded",
    RULE_REFUNDED: "that transfer was already refunded",
}


@dataclass(frozen=True)
class OpenAccount:
    account: str


@dataclass(frozen=True)
class Deposit:
    """Money coming in from outside: a posting from the external account."""

    transfer_id: str
    account: str
    amount: Decimal


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    source: str
    target: str  # may be `external`: a payout
    amount: Decimal


@dataclass(frozen=True)
class Refund:
    refund_id: str
    transfer_id: str


Command = OpenAccount | Deposit | Transfer | Refund


@dataclass(frozen=True)
class Entry:
    account: str
    amount: Decimal  # positive: money in (credit to the account); negative: money out (debit)


@dataclass(frozen=True)
class AccountOpened:
    account: str


@dataclass(frozen=True)
class Transferred:
    transfer_id: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Refunded:
    refund_id: str
    transfer_id: str
    entries: tuple[Entry, ...]  # the reverse of the transfer's entries


Event = AccountOpened | Transferred | Refunded


@dataclass(frozen=True)
class LedgerState:
    version: int = 0
    balances: dict[str, Decimal] = field(default_factory=lambda: {EXTERNAL: ZERO})
    refundable: dict[str, tuple[Entry, ...]] = field(default_factory=dict)  # transfer id -> its entries
    posting_ids: frozenset[str] = frozenset()  # transfers and refunds: an id is never reused


def initial_state() -> LedgerState:
    return LedgerState()


def decide(state: LedgerState, command: Command) -> Sequence[Event] | Rejected:
    """The events a command causes in this state, or the rule that refuses it."""
    match command:
        case OpenAccount(account=account):
            if not _NAME.fullmatch(account) or account == EXTERNAL:
                return _reject(RULE_NAME)
            return _reject(RULE_OPEN) if account in state.balances else [AccountOpened(account)]
        case Deposit(transfer_id=posting_id, account=account, amount=amount):
            return _transfer(state, posting_id, EXTERNAL, account, amount)
        case Transfer(transfer_id=posting_id, source=source, target=target, amount=amount):
            if source == EXTERNAL:
                return _reject(RULE_UNKNOWN)  # money comes in through Deposit only
            return _transfer(state, posting_id, source, target, amount)
        case Refund(refund_id=refund_id, transfer_id=transfer_id):
            return _refund(state, refund_id, transfer_id)


def _transfer(
    state: LedgerState, posting_id: str, source: str, target: str, amount: Decimal
) -> Sequence[Event] | Rejected:
    if not _ID.fullmatch(posting_id) or posting_id in state.posting_ids:
        return _reject(RULE_ID)
    if source not in state.balances or target not in state.balances:
        return _reject(RULE_UNKNOWN)
    if source == target:
        return _reject(RULE_SAME)
    checked = check_amount(amount)
    if isinstance(checked, Rejected):
        return checked
    entries = (Entry(source, -checked), Entry(target, checked))
    return _reject(RULE_OVERDRAFT) if _overdraws(state, entries) else [Transferred(posting_id, entries)]


def _refund(state: LedgerState, refund_id: str, transfer_id: str) -> Sequence[Event] | Rejected:
    if not _ID.fullmatch(refund_id) or refund_id in state.posting_ids:
        return _reject(RULE_ID)
    original = state.refundable.get(transfer_id)
    if original is None:
        return _reject(RULE_NOT_A_TRANSFER if transfer_id not in state.posting_ids else RULE_REFUNDED)
    entries = tuple(Entry(entry.account, -entry.amount) for entry in original)
    return _reject(RULE_OVERDRAFT) if _overdraws(state, entries) else [Refunded(refund_id, transfer_id, entries)]


def _overdraws(state: LedgerState, entries: tuple[Entry, ...]) -> bool:
    after = posted(state.balances, entries)
    return any(amount < 0 for account, amount in after.items() if account != EXTERNAL)


def posted(balances: dict[str, Decimal], entries: tuple[Entry, ...]) -> dict[str, Decimal]:
    """Balances after a posting's entries (a new dict: the old one is never edited)."""
    after = dict(balances)
    for entry in entries:
        after[entry.account] = after.get(entry.account, ZERO) + entry.amount
    return after


def evolve(state: LedgerState, event: Event) -> LedgerState:
    """The state after one event. Total: every event a store holds must fold."""
    version = state.version + 1
    match event:
        case AccountOpened(account=account):
            return replace(state, version=version, balances={**state.balances, account: ZERO})
        case Transferred(transfer_id=posting_id, entries=entries):
            return replace(
                state,
                version=version,
                balances=posted(state.balances, entries),
                refundable={**state.refundable, posting_id: entries},
                posting_ids=state.posting_ids | {posting_id},
            )
        case Refunded(refund_id=refund_id, transfer_id=transfer_id, entries=entries):
            refundable = {key: value for key, value in state.refundable.items() if key != transfer_id}
            return replace(
                state,
                version=version,
                balances=posted(state.balances, entries),
                refundable=refundable,
                posting_ids=state.posting_ids | {refund_id},
            )


def _reject(rule: str) -> Rejected:
    return Rejected(rule=rule, message=RULE_MESSAGES[rule])
