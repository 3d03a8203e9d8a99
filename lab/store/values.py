"""Values between Python and the database, for the store's raw SQL (and the projector's history insert).

SQLite keeps UUIDs as 32 hex characters and JSON and datetimes as text; PostgreSQL keeps all three natively.
Raw SQL skips the ORM's conversions (it is the hot path), so these few adapters stand in for them. Each takes
the connection to convert for (`db`, by default this thread's): the append passes the one it looked up, since
every reach through the `connection` proxy is a thread-local lookup, and an append made eight of them.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

from django.db import connection


def db_uuid(value: uuid.UUID, db: Any = connection) -> Any:
    return value if db.features.has_native_uuid_field else value.hex


def db_json(value: Any, db: Any = connection) -> Any:
    return db.ops.adapt_json_value(value, None)


def db_time(value: dt.datetime, db: Any = connection) -> Any:
    return db.ops.adapt_datetimefield_value(value)


def py_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def py_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def py_time(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


CENT = Decimal("0.01")


def py_money(value: Any) -> Decimal:
    """A DecimalField(decimal_places=2) as the ORM returns it: PostgreSQL gives a Decimal, SQLite a float or an int
    (its NUMERIC affinity), which came from a two-place decimal, so its shortest repr is that decimal."""
    return (value if isinstance(value, Decimal) else Decimal(repr(value))).quantize(CENT)
