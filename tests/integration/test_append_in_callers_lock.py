"""An append inside a caller's transaction that already holds the sandbox's append lock (`caller_locked`, as a
command's): no savepoint and no second lock, and still nothing half-written. On PostgreSQL an error aborts the
caller's transaction, which the caller rolls back whole; these check that each refusal comes out as the store's own
exception and leaves nothing behind once the caller has rolled back (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from lab.engine.store import ConcurrencyError, Metadata, NewEvent
from lab.store import DjangoEventStore, lock_for_append
from lab.store.events import DuplicateEventId

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]

META = Metadata.for_command("cmd-locked")
STORE = DjangoEventStore()


class RolledBack(Exception):
    """Raised inside the caller's atomic block so that it rolls back, as a failed command's does."""


def deposit(cents: int, event_id: uuid.UUID | None = None) -> NewEvent:
    return NewEvent("Deposited", 2, {"amount_cents": cents, "currency": "USD"}, event_id=event_id or uuid.uuid4())


def locked_append(stream_id: str, events: list[NewEvent], expected: int, then=None):
    """The command's shape: one transaction, the lock first, the append, anything after, all rolled back on error."""
    with transaction.atomic():
        lock_for_append(uuid.UUID(stream_id.removeprefix("account-")))
        recorded = STORE.append(stream_id, events, expected, META, caller_locked=True)
        if then is not None:
            then()
        return recorded


def test_it_appends_with_no_savepoint_and_no_second_lock():
    stream_id = f"account-{uuid.uuid4()}"
    with CaptureQueriesContext(connection) as captured:
        recorded = locked_append(stream_id, [deposit(1), deposit(2)], 0)
    assert [r.version for r in recorded] == [1, 2]
    sql = " ".join(q["sql"] for q in captured.captured_queries).upper()
    assert "SAVEPOINT" not in sql
    assert sql.count("PG_ADVISORY_XACT_LOCK") == (1 if connection.vendor == "postgresql" else 0)
    assert [e.version for e in STORE.read_stream(stream_id)] == [1, 2]


def test_a_stale_expected_version_is_a_concurrency_error_and_writes_nothing():
    stream_id = f"account-{uuid.uuid4()}"
    locked_append(stream_id, [deposit(1)], 0)
    with pytest.raises(ConcurrencyError) as refused:
        locked_append(stream_id, [deposit(2), deposit(3)], 0)
    assert refused.value.actual_version == 1
    assert [e.version for e in STORE.read_stream(stream_id)] == [1]


def test_a_duplicate_event_id_is_refused_as_one_and_the_callers_rollback_leaves_nothing():
    stream_id, twin = f"account-{uuid.uuid4()}", uuid.uuid4()
    locked_append(stream_id, [deposit(1, twin)], 0)
    with pytest.raises(DuplicateEventId):
        locked_append(stream_id, [deposit(2), deposit(3, twin)], 1)  # the first of the two must not survive
    assert [e.version for e in STORE.read_stream(stream_id)] == [1]
    assert STORE.stream_version(stream_id) == 1  # the connection is usable again after the rollback


def test_an_error_after_the_append_rolls_its_events_back_with_the_rest():
    stream_id = f"account-{uuid.uuid4()}"

    def fail() -> None:
        raise RolledBack

    with pytest.raises(RolledBack):
        locked_append(stream_id, [deposit(1)], 0, then=fail)
    assert STORE.read_stream(stream_id) == []


def test_outside_a_transaction_the_flag_changes_nothing():
    stream_id = f"account-{uuid.uuid4()}"
    recorded = STORE.append(stream_id, [deposit(1)], 0, META, caller_locked=True)
    assert [r.version for r in recorded] == [1]
    with pytest.raises(ConcurrencyError):
        STORE.append(stream_id, [deposit(2)], 0, META, caller_locked=True)
