"""Stored payloads are read through a chain of pure upcasters; the stored form is never changed."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lab.engine.messages import Deposited, Withdrew
from lab.engine.upcasting import UnreadableEvent, decode, encode, upcast


def test_a_v1_deposit_is_upcast_to_cents_and_a_currency():
    assert upcast("Deposited", 1, {"amount": "50.00"}, 2) == {"amount_cents": 5000, "currency": "USD"}


def test_upcasting_to_the_stored_version_returns_an_equal_copy():
    stored = {"amount": "50.00"}
    result = upcast("Deposited", 1, stored, 1)
    assert result == stored and result is not stored


def test_upcasting_never_mutates_the_stored_payload():
    stored = {"amount": "12.34"}
    before = copy.deepcopy(stored)
    upcast("Deposited", 1, stored)
    assert stored == before


def test_a_type_with_fewer_schemas_stops_at_its_latest():
    assert upcast("Withdrew", 1, {"amount": "5.00"}, 2) == {"amount": "5.00"}


@pytest.mark.parametrize(
    ("event_type", "schema", "payload"),
    [
        ("Teleported", 1, {}),
        ("Deposited", 3, {"amount_cents": 1, "currency": "USD"}),
        ("Deposited", 0, {"amount": "1.00"}),
        ("Deposited", 1, {"amount": "abc"}),
        ("Deposited", 1, {"amount": 50.0}),
        ("Deposited", 1, {"amount": "1.001"}),
        ("Deposited", 1, {"amount": "-5"}),
        ("Deposited", 1, {"amount": "NaN"}),
        ("Deposited", 1, {"amount": "1e40"}),
        ("Deposited", 1, {}),
        ("Deposited", 1, ["not", "an", "object"]),
        ("Deposited", 2, {"amount_cents": "5000", "currency": "USD"}),
        ("Deposited", 2, {"amount_cents": True, "currency": "USD"}),
        ("Deposited", 2, {"amount_cents": 0, "currency": "USD"}),
        ("Deposited", 2, {"amount_cents": 100, "currency": "XXX"}),
        ("Withdrew", 1, {"amount": None}),
    ],
)
def test_a_poison_payload_is_an_unreadable_event_not_a_crash(event_type, schema, payload):
    with pytest.raises(UnreadableEvent):
        decode(event_type, schema, payload)


def test_both_deposit_schemas_decode_to_the_same_domain_event():
    assert decode("Deposited", 1, {"amount": "50.00"}) == decode(
        "Deposited", 2, {"amount_cents": 5000, "currency": "USD"}
    )
    assert decode("Deposited", 1, {"amount": "50.00"}) == Deposited(Decimal("50.00"))


def test_a_deposit_is_encoded_in_the_schema_asked_for():
    event = Deposited(Decimal("12.30"))
    assert encode(event, 1) == ("Deposited", 1, {"amount": "12.30"})
    assert encode(event, 2) == ("Deposited", 2, {"amount_cents": 1230, "currency": "USD"})
    assert encode(Withdrew(Decimal("1.00")), 1) == ("Withdrew", 1, {"amount": "1.00"})
    with pytest.raises(ValueError, match="no schema version 7"):
        encode(event, 7)


cents = st.integers(min_value=1, max_value=1_000_000)


@given(cents, st.sampled_from([1, 2]))
def test_encoding_then_decoding_gives_the_event_back_in_either_schema(n, schema):
    event = Deposited((Decimal(n) / 100).quantize(Decimal("0.01")))
    assert decode(*encode(event, schema)) == event


@given(cents)
def test_the_v1_upcast_equals_writing_v2_directly(n):
    event = Deposited((Decimal(n) / 100).quantize(Decimal("0.01")))
    _, _, v1 = encode(event, 1)
    _, _, v2 = encode(event, 2)
    assert upcast("Deposited", 1, v1, 2) == v2


def test_a_payload_newer_than_the_target_is_returned_as_stored_never_downcast():
    stored = {"amount_cents": 5000, "currency": "USD"}
    assert upcast("Deposited", 2, stored, 1) == stored
