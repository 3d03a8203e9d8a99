"""What the domain labs take from a browser, checked before anything reaches a sandbox: a bad value is a 400 with
its reason (DomainInputError), never a 500 and never a half-sent command.

The domain's own rules (an overdraw, an order id used before, an edit outside the text) are the service layer's
(lab.domain_labs) to judge; here only the shape: a known command kind, its fields present and short, a command id
of the lab's form, a lag, a time-travel version or moment.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping

from lab.domain_labs import COMMAND_FIELDS
from lab.limits import check_command_id, parse_lag

FIELD_MAX = 200  # characters of any one field: more than any domain rule allows (a document insert is 50)
VERSION_MAX = 10**9
ACCOUNT_MAX = 20  # lab.engine.domains.ledger: an account's name is at most 20 characters
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class DomainInputError(ValueError):
    """Input the lab cannot use; the text is for the learner, `field` the form field at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def command_fields(domain: str, data: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(the fields of the command `data["kind"]` names, including `kind`; its command id). A field the form left
    out is sent as "" (the service layer makes the ids it may make, and names any other as missing)."""
    kinds = COMMAND_FIELDS[domain]
    kind = data.get("kind", "")
    if kind not in kinds:
        raise DomainInputError(f"Choose one of the commands: {', '.join(kinds)}.", "kind")
    fields = {"kind": kind}
    for name in (*kinds[kind], "expected_version"):
        value = data.get(name, "")
        if len(value) > FIELD_MAX:
            raise DomainInputError(f"The {name.replace('_', ' ')} is too long (at most {FIELD_MAX} characters).", name)
        if value or name != "expected_version":
            fields[name] = value
    raw_id = data.get("command_id", "")
    try:
        command_id = check_command_id(raw_id) if raw_id else uuid.uuid4().hex
    except ValueError as exc:
        raise DomainInputError(str(exc), "command_id") from exc
    return fields, command_id


def lag_ms(data: Mapping[str, str]) -> int:
    try:
        return parse_lag(data.get("lag", ""))
    except ValueError as exc:
        raise DomainInputError(str(exc), "lag") from exc


def paused(data: Mapping[str, str]) -> bool:
    value = data.get("paused", "")
    if value not in ("0", "1"):
        raise DomainInputError("Say whether to pause (1) or resume (0) the projection.", "paused")
    return value == "1"


def time_travel(data: Mapping[str, str], now: dt.datetime) -> tuple[int | None, dt.datetime | None]:
    """(version, moment) to travel to: `version` (a whole number) or `at` (HH:MM or HH:MM:SS, UTC: the latest such
    minute or second that has begun, so "09:12" is this morning's 09:12, or yesterday's before then); both empty:
    the head."""
    version, at = data.get("version", "").strip(), data.get("at", "").strip()
    if version and at:
        raise DomainInputError("Travel to a version or to a time, not both.", "at")
    if version:
        if not version.isdigit() or int(version) > VERSION_MAX:
            raise DomainInputError("The version is a whole number from 0.", "version")
        return int(version), None
    if not at:
        return None, None
    match = _CLOCK.fullmatch(at)
    if match is None:
        raise DomainInputError("Give a time of day as HH:MM or HH:MM:SS (UTC), e.g. 09:12.", "at")
    hour, minute, second = (int(part or 0) for part in match.groups())
    # "09:12" is the whole minute the log shows as 09:12:xx, "09:12:30" that whole second: the moment is its end,
    # or now while it is still going on; a time of day still ahead today means yesterday's.
    start = now.astimezone(dt.UTC).replace(hour=hour, minute=minute, second=second, microsecond=0)
    if start > now:
        start -= dt.timedelta(days=1)
    length = dt.timedelta(seconds=1) if match.group(3) else dt.timedelta(minutes=1)
    return None, min(start + length - dt.timedelta(microseconds=1), now)


def asked_account(data: Mapping[str, str]) -> dict[str, str]:
    """The ledger account a time-travel question names ("the balance of alice at 09:12"), if any. Only shown back
    (escaped) and looked up in a dict, so any short text will do; a longer one is ignored."""
    account = data.get("account", "").strip()
    return {"account": account} if 0 < len(account) <= ACCOUNT_MAX else {}
