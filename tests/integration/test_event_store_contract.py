"""One contract, every backend: the in-memory store and the Django store (SQLite, and PostgreSQL in
`make test-postgres`) must behave alike."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from lab.engine.store import ConcurrencyError, InMemoryEventStore, Metadata, NewEvent
from lab.store import DjangoEventStore

pytestmark = pytest.mark.backend


@pytest.fixture(
    params=[
        "memory",
        pytest.param("django-in-transaction", marks=pytest.mark.django_db),
        pytest.param("django-autocommit", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def store(request):
    # In a caller's transaction the Django store appends in a savepoint; on its own (autocommit) it runs its own
    # transaction, which on SQLite is the hot path straight on the DB-API connection. Both must keep the contract.
    if request.param == "memory":
        return InMemoryEventStore()
    return DjangoEventStore()


def stream() -> str:
    return f"account-{uuid.uuid4()}"


def deposits(*cents):
    return [NewEvent("Deposited", 2, {"amount_cents": c, "currency": "USD"}) for c in cents]


META = Metadata.for_command("cmd-1")


def test_a_first_append_numbers_the_stream_from_1(store):
    s = stream()
    recorded = store.append(s, deposits(100, 200), 0, META)
    assert [r.version for r in recorded] == [1, 2]
    assert recorded[0].position < recorded[1].position
    assert store.stream_version(s) == 2


def test_an_unknown_stream_is_at_version_0_and_empty(store):
    s = stream()
    assert store.stream_version(s) == 0
    assert store.read_stream(s) == []


def test_an_append_that_expects_an_old_version_is_refused_and_stores_nothing(store):
    s = stream()
    store.append(s, deposits(100), 0, META)
    with pytest.raises(ConcurrencyError) as raised:
        store.append(s, deposits(999), 0, META)
    assert (raised.value.expected_version, raised.value.actual_version) == (0, 1)
    assert [r.payload["amount_cents"] for r in store.read_stream(s)] == [100]


def test_an_append_that_expects_a_version_ahead_of_the_stream_is_refused(store):
    s = stream()
    store.append(s, deposits(100), 0, META)
    with pytest.raises(ConcurrencyError) as raised:
        store.append(s, deposits(5), 3, META)
    assert raised.value.actual_version == 1
    assert store.stream_version(s) == 1


def test_a_multi_event_append_is_all_or_nothing(store):
    s = stream()
    twin = uuid.uuid4()
    store.append(s, [NewEvent("Deposited", 2, {"amount_cents": 1, "currency": "USD"}, event_id=twin)], 0, META)
    batch = [*deposits(2), NewEvent("Deposited", 2, {"amount_cents": 3, "currency": "USD"}, event_id=twin)]
    with pytest.raises(ValueError):
        store.append(s, batch, 1, META)
    assert store.stream_version(s) == 1


def test_reading_a_stream_honours_after_and_up_to(store):
    s = stream()
    store.append(s, deposits(1, 2, 3, 4, 5), 0, META)
    assert [r.version for r in store.read_stream(s, after_version=2)] == [3, 4, 5]
    assert [r.version for r in store.read_stream(s, after_version=1, up_to_version=3)] == [2, 3]
    assert store.read_stream(s, after_version=5) == []


def test_the_global_log_interleaves_streams_in_append_order_and_pages(store):
    a, b = stream(), stream()
    start = max([r.position for r in store.read_all_after(0, 100_000)], default=0)
    store.append(a, deposits(1), 0, META)
    store.append(b, deposits(2), 0, META)
    store.append(a, deposits(3), 1, META)
    log = store.read_all_after(start, 10)
    assert [(r.stream_id, r.version) for r in log] == [(a, 1), (b, 1), (a, 2)]
    assert [r.position for r in log] == sorted(r.position for r in log)
    assert store.read_all_after(log[0].position, 1) == [log[1]]


def test_metadata_and_payload_come_back_as_they_went_in(store):
    s = stream()
    event = NewEvent("Withdrew", 1, {"amount": "12.34"})
    meta = Metadata(command_id="cmd-xyz", correlation_id=uuid.uuid4(), causation_id=uuid.uuid4())
    (written,) = store.append(s, [event], 0, meta)
    (read,) = store.read_stream(s)
    assert read == written
    assert (read.event_type, read.schema_version, read.payload) == ("Withdrew", 1, {"amount": "12.34"})
    assert (read.event_id, read.command_id) == (event.event_id, "cmd-xyz")
    assert (read.correlation_id, read.causation_id) == (meta.correlation_id, meta.causation_id)
    assert read.recorded_at.tzinfo is not None
    assert abs(read.recorded_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=60)
