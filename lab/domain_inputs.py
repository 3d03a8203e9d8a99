"""Form fields -> a domain's command (the field names per command are listed in lab.domain_labs).

Only the shape of the input is checked here: a field that is missing, too long or not a whole number is a
BadInput naming that field. Every rule about the values (an account that exists, a price in range, a position
inside the text) is the engine's decide, so there is one place that says what a domain allows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lab.engine import decider
from lab.engine.domains import document, ledger, orderbook
from lab.engine.messages import Rejected

FIELD_MAX = 200  # characters in any one field: the engine's own limits are far below it
_WHOLE = re.compile(r"-?\d{1,9}")

# kind -> its form field names, per domain; `expected_version` is accepted by every command besides these
COMMAND_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ledger": {
        "open": ("account",),
        "deposit": ("account", "amount", "transfer_id"),
        "transfer": ("account", "to_account", "amount", "transfer_id"),
        "refund": ("transfer_id", "refund_id"),
    },
    "orderbook": {"place": ("side", "price", "quantity", "order_id"), "cancel": ("order_id",)},
    "document": {
        "insert": ("tab", "base_version", "position", "text"),
        "delete": ("tab", "base_version", "position", "length"),
    },
}
# Fields a form may leave out: an id made from the stream version instead (see `_id`).
OPTIONAL = frozenset({"transfer_id", "refund_id", "order_id", "expected_version"})


class BadInput(ValueError):
    """A form field that is not the shape its command needs; `field` names it, the text says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def command_key(domain: str, fields: Mapping[str, str]) -> dict[str, str]:
    """The fields that make the command, as a command record compares them: the same id sent again with other
    values is another command, which a retry never is. Raises BadInput for an unknown kind or an oversized field."""
    kinds = COMMAND_FIELDS[domain]
    kind = _text(fields, "kind")
    if kind not in kinds:
        raise BadInput("kind", f"kind must be one of {', '.join(kinds)}")
    key = {"kind": kind}
    for name in (*kinds[kind], "expected_version"):
        raw = fields.get(name)
        if raw is not None:
            key[name] = _text(fields, name, strip=name != "text")
    return key


def expected_version(key: Mapping[str, str]) -> int | None:
    raw = key.get("expected_version", "")
    return _whole(key, "expected_version") if raw.strip() else None


def parse(domain: str, key: Mapping[str, str], version: int) -> Any:
    """The domain's command for `key` (from command_key); `version` is the stream's head, for made-up ids."""
    kind = key["kind"]
    if domain == "ledger":
        return _ledger(kind, key, version)
    if domain == "orderbook":
        return _orderbook(kind, key, version)
    return _document(kind, key)


def _ledger(kind: str, key: Mapping[str, str], version: int) -> Any:
    if kind == "open":
        return ledger.OpenAccount(_required(key, "account"))
    if kind == "refund":
        return ledger.Refund(_id(key, "refund_id", "r", version), _required(key, "transfer_id"))
    amount = decider.parse_amount(_required(key, "amount"))
    if isinstance(amount, Rejected):
        raise BadInput("amount", amount.message)
    posting_id = _id(key, "transfer_id", "t", version)
    if kind == "deposit":
        return ledger.Deposit(posting_id, _required(key, "account"), amount)
    return ledger.Transfer(posting_id, _required(key, "account"), _required(key, "to_account"), amount)


def _orderbook(kind: str, key: Mapping[str, str], version: int) -> Any:
    if kind == "cancel":
        return orderbook.CancelOrder(_required(key, "order_id"))
    side = _required(key, "side")
    if side not in ("buy", "sell"):
        raise BadInput("side", "side must be buy or sell")
    order_id = _id(key, "order_id", "o", version)
    return orderbook.PlaceOrder(order_id, side, _whole(key, "price"), _whole(key, "quantity"))  # type: ignore[arg-type]


def _document(kind: str, key: Mapping[str, str]) -> Any:
    tab, base, position = _required(key, "tab"), _whole(key, "base_version"), _whole(key, "position")
    if kind == "insert":
        return document.Insert(tab, base, position, _required(key, "text"))
    return document.Delete(tab, base, position, _whole(key, "length"))


def _text(fields: Mapping[str, str], name: str, *, strip: bool = True) -> str:
    raw = fields.get(name, "")
    if not isinstance(raw, str):
        raise BadInput(name, f"{name} must be text")
    if len(raw) > FIELD_MAX:
        raise BadInput(name, f"{name} is at most {FIELD_MAX} characters")
    return raw.strip() if strip else raw


def _required(key: Mapping[str, str], name: str) -> str:
    value = key.get(name, "")
    if not value:
        raise BadInput(name, f"{name} is required")
    return value


def _whole(key: Mapping[str, str], name: str) -> int:
    value = key.get(name, "").strip()
    if not _WHOLE.fullmatch(value):
        raise BadInput(name, f"{name} must be a whole number")
    return int(value)


def _id(key: Mapping[str, str], name: str, prefix: str, version: int) -> str:
    """The id the form gave, or one made from the next stream version ("t4"): unique unless a learner typed it."""
    return key.get(name) or f"{prefix}{version + 1}"
