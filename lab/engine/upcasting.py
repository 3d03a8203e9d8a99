"""Stored payloads <-> domain events, across schema versions.

Stored rows are never rewritten. A row keeps the schema it was written in; reading runs it through a chain of
pure upcasters (v1 -> v2 -> ...) up to the version the reader asks for, then decodes the latest form.

Deposited v1: {"amount": "50.00"}                       (dollars as a decimal string)
Deposited v2: {"amount_cents": 5000, "currency": "USD"}  (integer cents and a currency)
Withdrew  v1: {"amount": "20.00"}
InterestPaid v1: {"amount": "1.00"}                     (the lab's poison event: the read models cannot apply it)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lab.engine.messages import Deposited, Event, InterestPaid, Withdrew

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

CENT = Decimal("0.01")
CURRENCIES = frozenset({"USD"})
LATEST_SCHEMA: Mapping[str, int] = {"Deposited": 2, "Withdrew": 1, "InterestPaid": 1}


class UnreadableEvent(Exception):
    """A stored payload that no upcaster/decoder can turn into a domain event (a poison event)."""


def _deposited_v1_to_v2(payload: Payload) -> Payload:
    amount = _money(payload.get("amount"), "amount")
    return {"amount_cents": int(amount / CENT), "currency": "USD"}


# (event type, from version) -> the function that lifts a payload one version up.
UPCASTERS: Mapping[tuple[str, int], Upcaster] = {
    ("Deposited", 1): _deposited_v1_to_v2,
}


def upcast(event_type: str, schema_version: int, payload: Payload, target_version: int | None = None) -> Payload:
    """`payload` (stored as `schema_version`) lifted to `target_version`, or as far as this type's schemas go.

    `target_version=None` means the latest schema of the type. An event type with fewer schemas than the target
    stops at its own latest one (a Withdrew read "as v2" is still Withdrew v1). There is no downcasting: a payload
    already newer than the target comes back as stored. Never mutates `payload`.
    """
    latest = LATEST_SCHEMA.get(event_type)
    if latest is None:
        raise UnreadableEvent(f"unknown event type {event_type!r}")
    if not 1 <= schema_version <= latest:
        raise UnreadableEvent(f"{event_type} has no schema version {schema_version} (latest is {latest})")
    if not isinstance(payload, dict):
        raise UnreadableEvent(f"{event_type} payload must be an object, not {type(payload).__name__}")
    goal = latest if target_version is None else min(target_version, latest)
    current, version = dict(payload), schema_version
    while version < goal:
        step = UPCASTERS[(event_type, version)]
        try:
            current = step(current)
        except UnreadableEvent:
            raise
        except Exception as exc:  # an upcaster over a malformed payload is a poison event, not a crash
            raise UnreadableEvent(f"{event_type} v{version} could not be upcast: {exc}") from exc
        version += 1
    return current


def decode(event_type: str, schema_version: int, payload: Payload) -> Event:
    """The domain event a stored row means, whatever schema it was written in."""
    latest = upcast(event_type, schema_version, payload)
    if event_type == "Deposited":
        cents = latest.get("amount_cents")
        if type(cents) is not int or cents <= 0:
            raise UnreadableEvent(f"Deposited amount_cents must be a positive whole number, not {cents!r}")
        currency = latest.get("currency")
        if currency not in CURRENCIES:
            raise UnreadableEvent(f"Deposited currency {currency!r} is not supported")
        return Deposited(amount=(Decimal(cents) * CENT).quantize(CENT), currency=str(currency))
    if event_type == "InterestPaid":
        return InterestPaid(amount=_money(latest.get("amount"), "amount"))
    return Withdrew(amount=_money(latest.get("amount"), "amount"))


def encode(event: Event, deposit_schema: int = 2) -> tuple[str, int, Payload]:
    """(event type, schema version, payload) to store for a domain event; deposits in the schema asked for."""
    match event:
        case Deposited(amount=amount, currency=currency):
            if deposit_schema == 1:
                if currency != "USD":
                    raise ValueError("Deposited v1 can only hold USD")
                return "Deposited", 1, {"amount": str(amount.quantize(CENT))}
            if deposit_schema == 2:
                return "Deposited", 2, {"amount_cents": int(amount.quantize(CENT) / CENT), "currency": currency}
            raise ValueError(f"Deposited has no schema version {deposit_schema}")
        case Withdrew(amount=amount):
            return "Withdrew", 1, {"amount": str(amount.quantize(CENT))}
        case InterestPaid(amount=amount):
            return "InterestPaid", 1, {"amount": str(amount.quantize(CENT))}


def _money(value: object, name: str) -> Decimal:
    # Strings only: a JSON float has already lost the cents it was meant to carry.
    if not isinstance(value, str):
        raise UnreadableEvent(f"{name} must be a decimal string, not {value!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise UnreadableEvent(f"{name} {value!r} is not a number") from None
    try:
        exact = amount.is_finite() and amount > 0 and amount == amount.quantize(CENT)
    except InvalidOperation:  # too many digits to hold in cents at all
        exact = False
    if not exact:
        raise UnreadableEvent(f"{name} {value!r} is not a positive amount in cents")
    return amount.quantize(CENT)
