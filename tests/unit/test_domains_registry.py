"""The domains are registered as data: each names its messages, rules and read models, and stores its events as
JSON-safe payloads with a schema version, read back through upcasters, with a poison payload refused by name."""

from __future__ import annotations

import dataclasses
import json
import typing
from decimal import Decimal

import pytest

from lab.engine.domains import DOMAINS, LEDGER, ORDERBOOK, document, ledger, orderbook
from lab.engine.domains.document import Deleted, Inserted
from lab.engine.domains.ledger import AccountOpened, Entry, Transferred
from lab.engine.domains.orderbook import OrderPlaced, OrderRested, TradeExecuted
from lab.engine.projection import ProjectionError
from lab.engine.snapshots import UnusableSnapshot
from lab.engine.upcasting import UnreadableEvent

SAMPLES = {
    "ledger": [
        AccountOpened("alice"),
        Transferred("d1", (Entry("external", Decimal("-1.50")), Entry("alice", Decimal("1.50")))),
    ],
    "orderbook": [OrderPlaced("o1", "buy", 100, 3), OrderRested("o1", "buy", 100, 3)],
    "document": [Inserted("a", 0, 0, "hi"), Deleted("b", 0, 0, 1)],
}
MODULES = {"ledger": ledger, "orderbook": orderbook, "document": document}


def test_the_registry_names_the_three_domains_with_their_messages_and_read_models():
    assert list(DOMAINS) == ["ledger", "orderbook", "document"]
    for name, domain in DOMAINS.items():
        module = MODULES[name]
        assert set(domain.command_types) == set(typing.get_args(module.Command))
        assert set(domain.event_types) == set(typing.get_args(module.Event))
        assert domain.initial_state() == domain.state_type()
        assert domain.read_models and all(model.initial().version == 0 for model in domain.read_models.values())
        assert len(domain.fingerprint()) == 64
    assert len({domain.fingerprint() for domain in DOMAINS.values()}) == 3


@pytest.mark.parametrize("name", list(SAMPLES))
def test_events_are_stored_as_json_safe_payloads_with_a_schema_version_and_read_back(name):
    domain = DOMAINS[name]
    stored = json.loads(json.dumps([domain.encode(event) for event in SAMPLES[name]]))
    assert all(schema == 1 for _, schema, _ in stored)
    assert [domain.decode(*row) for row in stored] == SAMPLES[name]
    state = domain.fold(SAMPLES[name])
    assert domain.state_from_dict(json.loads(json.dumps(domain.state_to_dict(state)))) == state


def test_an_amount_is_stored_as_a_decimal_string_never_a_float():
    assert LEDGER.encode(SAMPLES["ledger"][1])[2]["entries"][0] == {"account": "external", "amount": "-1.50"}


@pytest.mark.parametrize(
    ("event_type", "schema", "payload", "says"),
    [
        ("Deposited", 1, {"amount": "1.00"}, "no event type"),
        ("OrderPlaced", 2, {}, "no schema version"),
        ("OrderPlaced", 1, {"order_id": "o1", "side": "buy", "price": 100}, "missing 'quantity'"),
        ("OrderPlaced", 1, {"order_id": "o1", "side": "hold", "price": 1, "quantity": 1}, "must be one of"),
        ("OrderPlaced", 1, {"order_id": "o1", "side": "buy", "price": 1.5, "quantity": 1}, "must be int"),
        ("OrderPlaced", 1, {"order_id": "o1", "side": "buy", "price": 1, "quantity": 1, "x": 1}, "no field 'x'"),
    ],
)
def test_a_poison_payload_is_unreadable_and_says_why(event_type, schema, payload, says):
    with pytest.raises(UnreadableEvent, match=says):
        ORDERBOOK.decode(event_type, schema, payload)


def test_a_float_amount_is_a_poison_payload():
    with pytest.raises(UnreadableEvent, match="decimal string"):
        LEDGER.decode("Transferred", 1, {"transfer_id": "d1", "entries": [{"account": "a", "amount": 1.5}]})


def test_an_old_schema_is_upcast_on_read_and_the_new_one_written():
    def v1_to_v2(payload):
        return {"account": payload.pop("name")}

    renamed = dataclasses.replace(LEDGER, schemas={"AccountOpened": 2}, upcasters={("AccountOpened", 1): v1_to_v2})
    assert renamed.decode("AccountOpened", 1, {"name": "alice"}) == AccountOpened("alice")
    assert renamed.encode(AccountOpened("alice")) == ("AccountOpened", 2, {"account": "alice"})
    with pytest.raises(UnreadableEvent, match="could not be upcast"):
        renamed.decode("AccountOpened", 1, {"account": "alice"})


def test_a_snapshot_that_does_not_fit_the_state_is_unusable():
    with pytest.raises(UnusableSnapshot):
        ORDERBOOK.state_from_dict({"version": 1})


def test_a_read_model_refuses_a_gap_in_the_stream_versions():
    model = ORDERBOOK.read_models["order_book"]
    with pytest.raises(ProjectionError, match="expected stream version 1, got 2"):
        model.apply_at(model.initial(), TradeExecuted("a", "b", 1, 1), 2)
