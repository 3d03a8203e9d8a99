"""The lab's settings limits, each with the message that explains it: the one home of these rules.

The forms (lab.forms) turn a ValueError from here into a form error (a 400); the service layer calls the same
functions, so a caller that is not a form (a test, a management command) meets the same rule and the same words.
Money amounts have their own home in the engine (lab.engine.decider.parse_amount), because they are a rule of
the write model itself.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

LAG_MAX_MS = 10_000
LAG_MESSAGE = "The lag must be a number of seconds from 0 to 10, in steps of 0.1."
LAG_TEXT_MAX = 16

SNAPSHOT_INTERVAL_MAX = 1000
SNAPSHOT_INTERVAL_MESSAGE = f"The snapshot interval must be a whole number from 0 to {SNAPSHOT_INTERVAL_MAX}."

DEPOSIT_SCHEMAS = (1, 2)
DEPOSIT_SCHEMA_MESSAGE = "The deposit schema version must be 1 or 2."

REPLAY_RATE_MAX = 1000  # events a second; 0 = as fast as the projector can
REPLAY_RATE_PRESETS = (2, 10, 50, 0)  # what the panel offers; any whole number from 0 to REPLAY_RATE_MAX is valid
REPLAY_RATE_MESSAGE = (
    f"The replay pace must be a whole number of events a second from 1 to {REPLAY_RATE_MAX}, or 0 for as fast as "
    "possible."
)

CRASH_MAX_S = 60.0
COMMAND_ID_MAX = 64  # StoredEvent.command_id / CommandRecord.command_id


def parse_lag(seconds: str | Decimal | int) -> int:
    """Lag in seconds (text, Decimal or int) -> milliseconds: 0 to 10 in steps of 0.1. ValueError otherwise."""
    if isinstance(seconds, bool | float):
        raise ValueError(LAG_MESSAGE)
    text = str(seconds).strip()
    if not text or len(text) > LAG_TEXT_MAX:
        raise ValueError(LAG_MESSAGE)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(LAG_MESSAGE) from None
    if not value.is_finite() or value < 0 or value > LAG_MAX_MS / 1000:
        raise ValueError(LAG_MESSAGE)
    tenths = value * 10
    if tenths != tenths.to_integral_value():
        raise ValueError(LAG_MESSAGE)
    return int(tenths) * 100


def check_snapshot_interval(n: object) -> int:
    """Snapshot every n events, 0 = off."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= SNAPSHOT_INTERVAL_MAX:
        raise ValueError(SNAPSHOT_INTERVAL_MESSAGE)
    return n


def check_deposit_schema(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version not in DEPOSIT_SCHEMAS:
        raise ValueError(DEPOSIT_SCHEMA_MESSAGE)
    return version


def check_replay_rate(rate: object) -> int:
    """Events a second for a rebuild and the retroactive model's catch-up; 0 = unpaced."""
    if isinstance(rate, bool) or not isinstance(rate, int) or not 0 <= rate <= REPLAY_RATE_MAX:
        raise ValueError(REPLAY_RATE_MESSAGE)
    return rate


def check_crash_downtime(seconds: float) -> float:
    if not 0 < seconds <= CRASH_MAX_S:
        raise ValueError(f"the downtime must be between 0 and {CRASH_MAX_S:g} seconds")
    return seconds


COMMAND_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{COMMAND_ID_MAX}}}")
COMMAND_ID_MESSAGE = f"A command id is at most {COMMAND_ID_MAX} printable characters: ASCII letters, digits, - and _."


def check_command_id(command_id: str) -> str:
    # PostgreSQL would refuse a longer id with a DataError (a 500). ASCII only: str.isalnum() and \d also take
    # Arabic-Indic or full-width digits, and ids that look alike but differ would be two commands.
    if not COMMAND_ID.fullmatch(command_id):
        raise ValueError(COMMAND_ID_MESSAGE)
    return command_id
