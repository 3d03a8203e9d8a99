"""The order book's write model: a matching engine whose state must be rebuilt exactly after a restart.

A limit order (PlaceOrder) is matched at once against the resting orders of the other side in price-time
priority: best price first (the lowest ask for a buy, the highest bid for a sell), and at one price the order that
has rested longest. Each match is a TradeExecuted at the resting (maker) order's price; whatever is left of the new
order rests in the book (OrderRested). A cancel removes what is left of a resting order. Prices are whole ticks
(cents) and quantities whole units, so nothing is ever rounded.

Because an order only rests once it no longer crosses, the book never crosses after any event: the best bid is
always below the best ask. The state is the book itself; restarting the exchange is folding the events again,
from the start or from a snapshot (lab.engine.domains.spec.Domain.restore).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from lab.engine.messages import Rejected

Side = Literal["buy", "sell"]
MAX_PRICE = 100_000
MAX_QUANTITY = 10_000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}")

RULE_ID = "order-id"
RULE_SIDE = "order-side"
RULE_PRICE = "order-price"
RULE_QUANTITY = "order-quantity"
RULE_NOT_RESTING = "order-not-resting"

RULE_MESSAGES = {
    RULE_ID: "each order needs a new id of up to 40 letters, digits or . _ : -",
    RULE_SIDE: "an order is a buy or a sell",
    RULE_PRICE: f"the limit price is a whole number of ticks from 1 to {MAX_PRICE}",
    RULE_QUANTITY: f"the quantity is a whole number from 1 to {MAX_QUANTITY}",
    RULE_NOT_RESTING: "only an order resting in the book can be cancelled",
}


@dataclass(frozen=True)
class PlaceOrder:
    order_id: str
    side: Side
    price: int
    quantity: int


@dataclass(frozen=True)
class CancelOrder:
    order_id: str


Command = PlaceOrder | CancelOrder


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    side: Side
    price: int
    quantity: int


@dataclass(frozen=True)
class TradeExecuted:
    taker_order_id: str  # the incoming order
    maker_order_id: str  # the resting order it matched
    price: int  # the maker's price
    quantity: int


@dataclass(frozen=True)
class OrderRested:
    order_id: str
    side: Side
    price: int
    quantity: int  # what was left after the trades


@dataclass(frozen=True)
class OrderCancelled:
    order_id: str
    quantity: int  # what was still resting


Event = OrderPlaced | TradeExecuted | OrderRested | OrderCancelled


@dataclass(frozen=True)
class Resting:
    order_id: str
    side: Side
    price: int
    quantity: int
    since: int  # the stream version at which it rested: time priority


@dataclass(frozen=True)
class BookState:
    version: int = 0
    resting: dict[str, Resting] = field(default_factory=dict)
    order_ids: frozenset[str] = frozenset()  # every order ever placed: an id is never reused
    last_price: int | None = None


def initial_state() -> BookState:
    return BookState()


def in_priority(resting: dict[str, Resting], side: Side) -> list[Resting]:
    """One side's resting orders, best first: price (highest bid, lowest ask), then the longest resting."""
    orders = [order for order in resting.values() if order.side == side]
    return sorted(orders, key=lambda o: (-o.price if side == "buy" else o.price, o.since))


def best_bid(resting: dict[str, Resting]) -> int | None:
    return max((o.price for o in resting.values() if o.side == "buy"), default=None)


def best_ask(resting: dict[str, Resting]) -> int | None:
    return min((o.price for o in resting.values() if o.side == "sell"), default=None)


def crosses(side: Side, limit: int, resting_price: int) -> bool:
    """Whether an order on `side` at `limit` trades with a resting order of the other side at `resting_price`."""
    return resting_price <= limit if side == "buy" else resting_price >= limit


def decide(state: BookState, command: Command) -> Sequence[Event] | Rejected:
    """The events a command causes in this state, or the rule that refuses it."""
    match command:
        case CancelOrder(order_id=order_id):
            order = state.resting.get(order_id)
            return _reject(RULE_NOT_RESTING) if order is None else [OrderCancelled(order_id, order.quantity)]
        case PlaceOrder():
            problem = _check(state, command)
            return _reject(problem) if problem else _match(state, command)


def _check(state: BookState, order: PlaceOrder) -> str | None:
    if type(order.order_id) is not str or not _ID.fullmatch(order.order_id) or order.order_id in state.order_ids:
        return RULE_ID
    if order.side not in ("buy", "sell"):
        return RULE_SIDE
    if type(order.price) is not int or not 1 <= order.price <= MAX_PRICE:
        return RULE_PRICE
    if type(order.quantity) is not int or not 1 <= order.quantity <= MAX_QUANTITY:
        return RULE_QUANTITY
    return None


def _match(state: BookState, order: PlaceOrder) -> list[Event]:
    events: list[Event] = [OrderPlaced(order.order_id, order.side, order.price, order.quantity)]
    left = order.quantity
    for maker in in_priority(state.resting, "sell" if order.side == "buy" else "buy"):
        if left == 0 or not crosses(order.side, order.price, maker.price):
            break
        traded = min(left, maker.quantity)
        events.append(TradeExecuted(order.order_id, maker.order_id, maker.price, traded))
        left -= traded
    if left:
        events.append(OrderRested(order.order_id, order.side, order.price, left))
    return events


def evolve(state: BookState, event: Event) -> BookState:
    """The state after one event. Total: every event a store holds must fold."""
    version = state.version + 1
    match event:
        case OrderPlaced(order_id=order_id):
            return replace(state, version=version, order_ids=state.order_ids | {order_id})
        case TradeExecuted(maker_order_id=maker_id, price=price, quantity=quantity):
            return replace(state, version=version, resting=fill(state.resting, maker_id, quantity), last_price=price)
        case OrderRested(order_id=order_id, side=side, price=price, quantity=quantity):
            rested = Resting(order_id, side, price, quantity, since=version)
            return replace(state, version=version, resting={**state.resting, order_id: rested})
        case OrderCancelled(order_id=order_id):
            resting = {key: order for key, order in state.resting.items() if key != order_id}
            return replace(state, version=version, resting=resting)


def fill(resting: dict[str, Resting], order_id: str, quantity: int) -> dict[str, Resting]:
    """The resting orders after `quantity` of one of them traded: reduced, or gone when filled (a new dict)."""
    order = resting.get(order_id)
    if order is None:
        return resting
    rest = {key: value for key, value in resting.items() if key != order_id}
    if order.quantity > quantity:
        rest[order_id] = replace(order, quantity=order.quantity - quantity)
    return rest


def _reject(rule: str) -> Rejected:
    return Rejected(rule=rule, message=RULE_MESSAGES[rule])
