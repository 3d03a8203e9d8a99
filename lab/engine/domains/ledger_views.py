"""The payment ledger's read models, as pure folds over its events (the write model's rules are in ledger.py).

- balances: each account's balance, derived from the entries (the write model keeps its own, to decide).
- journal: every entry ever posted, in order. Append-only: a refund adds lines, it never edits one.
- auditor: added after the fact and folded from the whole log, it re-adds every entry and reconciles: each
  posting must sum to zero, so the ledger does, and no customer account may be below zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from lab.engine.domains.ledger import EXTERNAL, ZERO, AccountOpened, Entry, Event, Refunded, Transferred, posted
from lab.engine.domains.spec import ReadModel


@dataclass(frozen=True)
class Balances:
    version: int = 0
    amounts: dict[str, Decimal] = field(default_factory=lambda: {EXTERNAL: ZERO})

    @property
    def customer_total(self) -> Decimal:
        """The sum of every customer account: what the ledger holds (the lab's `ledger-total`)."""
        return sum((amount for account, amount in self.amounts.items() if account != EXTERNAL), ZERO)


def apply_balances(state: Balances, event: Event) -> Balances:
    match event:
        case AccountOpened(account=account):
            return replace(state, amounts={**state.amounts, account: ZERO})
        case Transferred(entries=entries) | Refunded(entries=entries):
            return replace(state, amounts=posted(state.amounts, entries))


@dataclass(frozen=True)
class JournalLine:
    posting_id: str
    kind: str  # "transfer" | "refund"
    account: str
    amount: Decimal


@dataclass(frozen=True)
class Journal:
    version: int = 0
    lines: tuple[JournalLine, ...] = ()


def apply_journal(state: Journal, event: Event) -> Journal:
    match event:
        case Transferred(transfer_id=posting_id, entries=entries):
            return replace(state, lines=state.lines + _lines(posting_id, "transfer", entries))
        case Refunded(refund_id=posting_id, entries=entries):
            return replace(state, lines=state.lines + _lines(posting_id, "refund", entries))
    return state


def _lines(posting_id: str, kind: str, entries: tuple[Entry, ...]) -> tuple[JournalLine, ...]:
    return tuple(JournalLine(posting_id, kind, entry.account, entry.amount) for entry in entries)


@dataclass(frozen=True)
class Audit:
    version: int = 0
    accounts: dict[str, Decimal] = field(default_factory=lambda: {EXTERNAL: ZERO})
    postings_checked: int = 0
    unbalanced: tuple[str, ...] = ()  # ids of postings whose entries do not sum to zero
    overdrawn: tuple[str, ...] = ()  # customer accounts that went below zero at some point

    @property
    def total(self) -> Decimal:
        return sum(self.accounts.values(), ZERO)

    @property
    def reconciled(self) -> bool:
        return self.total == 0 and not self.unbalanced and not self.overdrawn


def apply_audit(state: Audit, event: Event) -> Audit:
    match event:
        case AccountOpened(account=account):
            return replace(state, accounts={**state.accounts, account: ZERO})
        case Transferred(transfer_id=posting_id, entries=entries) | Refunded(refund_id=posting_id, entries=entries):
            accounts = posted(state.accounts, entries)
            balanced = sum((entry.amount for entry in entries), ZERO) == 0
            below = [a for a in sorted({e.account for e in entries}) if a != EXTERNAL and accounts[a] < 0]
            return replace(
                state,
                accounts=accounts,
                postings_checked=state.postings_checked + 1,
                unbalanced=state.unbalanced if balanced else (*state.unbalanced, posting_id),
                overdrawn=tuple(sorted(set(state.overdrawn) | set(below))),
            )


READ_MODELS = {
    "balances": ReadModel("balances", Balances, Balances, apply_balances),
    "journal": ReadModel("journal", Journal, Journal, apply_journal),
    "auditor": ReadModel("auditor", Audit, Audit, apply_audit),
}
