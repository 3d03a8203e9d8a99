"""The order book's read models, as pure folds over its events (the matching rules are in orderbook.py).

- order_book: the resting orders, shown as price levels (`bids()` best first, `asks()` best first).
- last_price: the price of the latest trade, with the count and volume of trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lab.engine.domains.orderbook import (
    Event,
    OrderCancelled,
    OrderRested,
    Resting,
    Side,
    TradeExecuted,
    fill,
    in_priority,
)
from lab.engine.domains.spec import ReadModel


@dataclass(frozen=True)
class Level:
    price: int
    quantity: int
    orders: int


@dataclass(frozen=True)
class OrderBook:
    version: int = 0
    resting: dict[str, Resting] = field(default_factory=dict)

    def bids(self) -> tuple[Level, ...]:
        return self._levels("buy")

    def asks(self) -> tuple[Level, ...]:
        return self._levels("sell")

    def _levels(self, side: Side) -> tuple[Level, ...]:
        levels: dict[int, Level] = {}
        for order in in_priority(self.resting, side):
            level = levels.get(order.price, Level(order.price, 0, 0))
            levels[order.price] = Level(order.price, level.quantity + order.quantity, level.orders + 1)
        return tuple(levels.values())


def apply_order_book(state: OrderBook, event: Event) -> OrderBook:
    match event:
        case OrderRested(order_id=order_id, side=side, price=price, quantity=quantity):
            rested = Resting(order_id, side, price, quantity, since=state.version + 1)
            return replace(state, resting={**state.resting, order_id: rested})
        case TradeExecuted(maker_order_id=maker_id, quantity=quantity):
            return replace(state, resting=fill(state.resting, maker_id, quantity))
        case OrderCancelled(order_id=order_id):
            return replace(state, resting={k: v for k, v in state.resting.items() if k != order_id})
    return state


@dataclass(frozen=True)
class LastPrice:
    version: int = 0
    price: int | None = None
    trades: int = 0
    volume: int = 0


def apply_last_price(state: LastPrice, event: Event) -> LastPrice:
    if isinstance(event, TradeExecuted):
        return replace(state, price=event.price, trades=state.trades + 1, volume=state.volume + event.quantity)
    return state


READ_MODELS = {
    "order_book": ReadModel("order_book", OrderBook, OrderBook, apply_order_book),
    "last_price": ReadModel("last_price", LastPrice, LastPrice, apply_last_price),
}
