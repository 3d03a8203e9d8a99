"""How the panel words events and money: amounts in dollars whatever an event's schema, the fold's arithmetic, and
an event as the JSON the log's "Copy as JSON" gives. Pure functions of what lab.types carries."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def fold_text(event_type: str, amount: Decimal, after: Decimal) -> str:
    """One step of the balance fold as arithmetic: withdrawals subtract, everything else adds."""
    if event_type == "Withdrew":
        return f"{money(after + amount)} \u2212 {money(amount)} = {money(after)}"  # a real minus sign
    return f"{money(after - amount)} + {money(amount)} = {money(after)}"


def event_amount(event: Any) -> Decimal | None:
    """An event's amount in dollars whatever its schema (v2 deposits store cents); None if it has none."""
    payload = event.upcast_payload
    try:
        if "amount_cents" in payload:
            return (Decimal(int(payload["amount_cents"])) / 100).quantize(Decimal("0.01"))
        if "amount" in payload:
            return Decimal(str(payload["amount"]))
    except (ArithmeticError, TypeError, ValueError):
        return None
    return None


def event_json(event: Any) -> str:
    return json.dumps(
        {
            "position": event.position,
            "stream_id": event.stream_id,
            "version": event.version,
            "type": event.event_type,
            "schema_version": event.schema_version,
            "recorded_at": event.recorded_at.isoformat(),
            "payload": event.raw_payload,
            "upcast_payload": event.upcast_payload,
            "event_id": event.event_id,
            "command_id": event.command_id,
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
        },
        indent=2,
        default=str,
    )
