"""The order book: given events -> when an order -> then trades in price-time priority; plus its properties,
and "restart the exchange": the book rebuilt by replay, from a snapshot or from the start, equals the live one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.engine.domains import ORDERBOOK
from lab.engine.domains.orderbook import (
    RULE_ID,
    RULE_NOT_RESTING,
    RULE_PRICE,
    CancelOrder,
    OrderCancelled,
    OrderPlaced,
    OrderRested,
    PlaceOrder,
    TradeExecuted,
    best_ask,
    best_bid,
    crosses,
    decide,
)
from lab.engine.domains.orderbook_views import READ_MODELS, Level
from lab.engine.messages import Rejected

ASKS = [
    OrderPlaced("s1", "sell", 101, 5),
    OrderRested("s1", "sell", 101, 5),
    OrderPlaced("s2", "sell", 100, 5),
    OrderRested("s2", "sell", 100, 5),
    OrderPlaced("s3", "sell", 100, 5),
    OrderRested("s3", "sell", 100, 5),
]


def given_(*events):
    return ORDERBOOK.fold(events)


def test_a_buy_takes_the_best_price_first_then_the_oldest_order_at_that_price():
    assert decide(given_(*ASKS), PlaceOrder("b1", "buy", 101, 12)) == [
        OrderPlaced("b1", "buy", 101, 12),
        TradeExecuted("b1", "s2", 100, 5),
        TradeExecuted("b1", "s3", 100, 5),
        TradeExecuted("b1", "s1", 101, 2),
    ]


def test_what_does_not_cross_rests_in_the_book():
    assert decide(given_(*ASKS), PlaceOrder("b1", "buy", 99, 3)) == [
        OrderPlaced("b1", "buy", 99, 3),
        OrderRested("b1", "buy", 99, 3),
    ]
    assert READ_MODELS["order_book"].fold(ASKS).asks() == (Level(100, 10, 2), Level(101, 5, 1))


def test_a_cancel_removes_what_is_left_and_only_a_resting_order_can_be_cancelled():
    assert decide(given_(*ASKS), CancelOrder("s2")) == [OrderCancelled("s2", 5)]
    assert decide(given_(*ASKS), CancelOrder("b9")) == Rejected(
        RULE_NOT_RESTING, "only an order resting in the book can be cancelled"
    )


def test_ids_and_prices_are_checked():
    result = decide(given_(*ASKS), PlaceOrder("s1", "buy", 100, 1))
    assert isinstance(result, Rejected) and result.rule == RULE_ID
    result = decide(given_(), PlaceOrder("b1", "buy", 0, 1))
    assert isinstance(result, Rejected) and result.rule == RULE_PRICE


def test_restart_reports_whether_a_snapshot_was_used_and_how_many_events_it_replayed():
    snapshot = ORDERBOOK.state_to_dict(given_(*ASKS[:4]))
    from_snapshot = ORDERBOOK.restore(snapshot, ASKS[4:])
    from_start = ORDERBOOK.restore(None, ASKS)
    assert (from_snapshot.used_snapshot, from_snapshot.snapshot_version, from_snapshot.events_replayed) == (True, 4, 2)
    assert (from_start.used_snapshot, from_start.snapshot_version, from_start.events_replayed) == (False, None, 6)
    assert from_snapshot.state == from_start.state == given_(*ASKS)


IDS = [f"o{i}" for i in range(30)]
commands = st.one_of(
    st.builds(
        PlaceOrder,
        st.sampled_from(IDS),
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=96, max_value=104),
        st.integers(min_value=1, max_value=10),
    ),
    st.builds(CancelOrder, st.sampled_from(IDS)),
)


def run(sequence):
    state, log = ORDERBOOK.initial_state(), []
    for command in sequence:
        result = ORDERBOOK.decide(state, command)
        if not isinstance(result, Rejected):
            log += result
            state = ORDERBOOK.fold(result, state)
    return state, log


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=50))
def test_the_book_never_crosses_after_any_event_and_trades_take_price_time_priority(sequence):
    _, log = run(sequence)
    state, view, orders, rested_at = ORDERBOOK.initial_state(), READ_MODELS["order_book"].initial(), {}, {}
    for index, event in enumerate(log):
        if isinstance(event, OrderPlaced):
            orders[event.order_id] = event
        if isinstance(event, OrderRested):
            rested_at[event.order_id] = index
        if isinstance(event, TradeExecuted):
            taker = orders[event.taker_order_id]
            # Worked out here, not with the engine's own ordering: the best price, then the longest resting.
            makers = [order for order in state.resting.values() if order.side != taker.side]
            best = min(makers, key=lambda o: (o.price if taker.side == "buy" else -o.price, rested_at[o.order_id]))
            assert event.maker_order_id == best.order_id
            assert event.price == best.price and crosses(taker.side, taker.price, best.price)
        state = ORDERBOOK.evolve(state, event)
        view = READ_MODELS["order_book"].apply_at(view, event, state.version)
        bid, ask = best_bid(state.resting), best_ask(state.resting)
        assert bid is None or ask is None or bid < ask
        assert view.resting == state.resting


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=50))
def test_quantities_are_conserved(sequence):
    state, log = run(sequence)
    placed, taken, made, rested, cancelled = {}, {}, {}, {}, {}
    for event in log:
        match event:
            case OrderPlaced(order_id=order_id, quantity=quantity):
                placed[order_id] = quantity
            case TradeExecuted(taker_order_id=taker, maker_order_id=maker, quantity=quantity):
                taken[taker] = taken.get(taker, 0) + quantity
                made[maker] = made.get(maker, 0) + quantity
            case OrderRested(order_id=order_id, quantity=quantity):
                rested[order_id] = quantity
            case OrderCancelled(order_id=order_id, quantity=quantity):
                cancelled[order_id] = quantity
    for order_id, quantity in placed.items():
        assert quantity == taken.get(order_id, 0) + rested.get(order_id, 0)
        left = state.resting[order_id].quantity if order_id in state.resting else 0
        assert rested.get(order_id, 0) == made.get(order_id, 0) + cancelled.get(order_id, 0) + left
    assert READ_MODELS["last_price"].fold(log).volume == sum(taken.values()) == sum(made.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(commands, max_size=50), st.data())
def test_restarting_the_exchange_rebuilds_the_live_book_with_and_without_a_snapshot(sequence, data):
    live, log = run(sequence)
    cut = data.draw(st.integers(min_value=0, max_value=len(log)))
    snapshot = json.loads(json.dumps(ORDERBOOK.state_to_dict(ORDERBOOK.fold(log[:cut]))))
    stored = [json.loads(json.dumps(ORDERBOOK.encode(event))) for event in log]
    tail = [ORDERBOOK.decode(*row) for row in stored[cut:]]
    from_snapshot, from_start = ORDERBOOK.restore(snapshot, tail), ORDERBOOK.restore(None, log)
    assert from_snapshot.state == from_start.state == live
    assert (from_snapshot.used_snapshot, from_snapshot.events_replayed) == (True, len(log) - cut)
    assert (from_start.used_snapshot, from_start.events_replayed) == (False, len(log))
    assert READ_MODELS["order_book"].fold(log).resting == live.resting
    assert READ_MODELS["last_price"].fold(log).price == live.last_price
