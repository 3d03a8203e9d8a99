"""A snapshot is only used by the code that made it: the fingerprint covers evolve and the state's shape."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from lab.engine.decider import evolve
from lab.engine.messages import AccountState
from lab.engine.snapshots import (
    SNAPSHOT_SCHEMA,
    UnusableSnapshot,
    fingerprint,
    is_due,
    state_from_dict,
    state_to_dict,
)


def other_evolve(state, event):  # same signature, different body: a code change
    return state


@dataclass(frozen=True)
class WiderState:
    balance: Decimal = Decimal("0.00")
    version: int = 0
    deposits: int = 0
    withdrawals: int = 0
    overdraft_limit: int = 0


def test_the_fingerprint_is_a_stable_sha256_hex():
    assert fingerprint() == fingerprint(evolve, AccountState, SNAPSHOT_SCHEMA)
    assert len(fingerprint()) == 64 and int(fingerprint(), 16) >= 0


def test_changing_evolve_the_state_fields_or_the_schema_changes_the_fingerprint():
    base = fingerprint()
    assert fingerprint(evolve=other_evolve) != base
    assert fingerprint(state_type=WiderState) != base
    assert fingerprint(schema=SNAPSHOT_SCHEMA + 1) != base


def test_a_state_survives_the_trip_through_its_stored_form():
    state = AccountState(balance=Decimal("123.45"), version=7, deposits=5, withdrawals=2)
    assert state_from_dict(state_to_dict(state)) == state
    assert state_to_dict(state)["balance"] == "123.45"  # a string: money is never a float


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"balance": "x", "version": 1, "deposits": 1, "withdrawals": 0},
        {"balance": "1.00", "version": -1, "deposits": 0, "withdrawals": 0},
        {"balance": "1.00", "version": "1", "deposits": 0, "withdrawals": 0},
        {"balance": "NaN", "version": 1, "deposits": 1, "withdrawals": 0},
    ],
)
def test_a_damaged_stored_state_is_unusable(data):
    with pytest.raises(UnusableSnapshot):
        state_from_dict(data)


@pytest.mark.parametrize(
    ("old", "new", "interval", "due"),
    [(9, 10, 10, True), (10, 11, 10, False), (8, 12, 10, True), (0, 1, 1, True), (5, 6, 0, False), (3, 3, 1, False)],
)
def test_a_snapshot_is_due_when_an_append_crosses_a_multiple_of_the_interval(old, new, interval, due):
    assert is_due(old, new, interval) is due
