"""One line for people per domain event, as the domain labs' event log and command outcomes show it.

Kept apart from the engine (which has no words for people) and from the service layer (which has enough to do):
a summary reads an event's fields only, so it can never disagree with what was stored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lab.engine.domains import document, ledger, orderbook


def _money(amount: Decimal) -> str:
    return f"{amount:+,.2f}"


def _entries(entries: tuple[ledger.Entry, ...]) -> str:
    return ", ".join(f"{entry.account} {_money(entry.amount)}" for entry in entries)


def summary(event: Any) -> str:
    """ "t1: alice -10.00, bob +10.00", "trade 5 @ 101 (o2 took o1)", "tab A inserts 'hi' at 0 (on v3)" ..."""
    match event:
        case ledger.AccountOpened(account=account):
            return f"opened account {account}"
        case ledger.Transferred(transfer_id=posting_id, entries=entries):
            return f"{posting_id}: {_entries(entries)}"
        case ledger.Refunded(refund_id=refund_id, transfer_id=transfer_id, entries=entries):
            return f"{refund_id} refunds {transfer_id}: {_entries(entries)}"
        case orderbook.OrderPlaced(order_id=order_id, side=side, price=price, quantity=quantity):
            return f"{order_id}: {side} {quantity} @ {price}"
        case orderbook.TradeExecuted(taker_order_id=taker, maker_order_id=maker, price=price, quantity=quantity):
            return f"trade {quantity} @ {price} ({taker} took {maker})"
        case orderbook.OrderRested(order_id=order_id, side=side, price=price, quantity=quantity):
            return f"{order_id} rests: {side} {quantity} @ {price}"
        case orderbook.OrderCancelled(order_id=order_id, quantity=quantity):
            return f"{order_id} cancelled ({quantity} were resting)"
        case document.Inserted(tab=tab, base_version=base, position=position, text=text):
            return f"tab {tab} inserts {text!r} at {position} (on v{base})"
        case document.Deleted(tab=tab, base_version=base, position=position, length=length):
            return f"tab {tab} deletes {length} at {position} (on v{base})"
    return type(event).__name__
