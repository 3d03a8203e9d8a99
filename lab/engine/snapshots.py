"""Snapshots: a cache of the write model's state at a version, never a source of truth.

Each snapshot carries a fingerprint of the code that produced it (evolve's source, AccountState's fields) and of
the snapshot format. When either changes, old snapshots stop matching and loading ignores them (then a fresh
one replaces them), instead of resurrecting a state the current code would never have computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from lab.engine import decider
from lab.engine.messages import AccountState

# Bump when the stored shape of a snapshot's state changes (state_to_dict / state_from_dict).
SNAPSHOT_SCHEMA = 1


def fingerprint(
    evolve: Callable[..., Any] = decider.evolve,
    state_type: type = AccountState,
    schema: int = SNAPSHOT_SCHEMA,
) -> str:
    """sha256 hex (64 chars) over evolve's source, the state's field names and types, and the snapshot schema."""
    return _fingerprint(evolve, state_type, schema)


@cache
def _fingerprint(evolve: Callable[..., Any], state_type: type, schema: int) -> str:
    fields = ";".join(f"{f.name}:{f.type}" for f in dataclasses.fields(state_type))
    material = "\n".join([f"snapshot-schema:{schema}", f"state:{state_type.__qualname__}({fields})", _source(evolve)])
    return hashlib.sha256(material.encode()).hexdigest()


def _source(function: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # no source file (e.g. frozen): fall back to the bytecode
        code = getattr(function, "__code__", None)
        return repr(code.co_code) if code is not None else repr(function)


def state_to_dict(state: AccountState) -> dict[str, Any]:
    return {
        "balance": str(state.balance),
        "version": state.version,
        "deposits": state.deposits,
        "withdrawals": state.withdrawals,
    }


class UnusableSnapshot(Exception):
    """A stored snapshot whose state cannot be read back; callers treat it like a stale one."""


def state_from_dict(data: dict[str, Any]) -> AccountState:
    try:
        balance = Decimal(data["balance"])
        counts = [data["version"], data["deposits"], data["withdrawals"]]
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise UnusableSnapshot(f"snapshot state is malformed: {exc!r}") from exc
    if not balance.is_finite() or any(type(n) is not int or n < 0 for n in counts):
        raise UnusableSnapshot("snapshot state is malformed")
    return AccountState(balance=balance, version=counts[0], deposits=counts[1], withdrawals=counts[2])


def is_due(old_version: int, new_version: int, interval: int) -> bool:
    """Whether an append moving the stream from old to new version crossed a multiple of the interval."""
    if interval <= 0 or new_version <= old_version:
        return False
    return new_version // interval > old_version // interval
