"""E4 of the catalogue: the database connection dies in the middle of an append. The client cannot know whether it
landed; a retry with the same ids lands exactly once.

Real parts: this test's own PostgreSQL connection goes through the fault proxy (tests/reliability/faultproxy.py),
which resets it at the worst moments: when the INSERT of the event is on its way (it never reaches the server: the
transaction dies with the connection, nothing lands), and when the COMMIT is on its way (the server gets it and
commits, the client loses the reply). In both, the caller sees an error and retries with the same command id, or
the same event id and expected version; the log holds the event exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import DatabaseError, connection

from lab import commands
from lab.engine.store import ConcurrencyError, Metadata, NewEvent
from lab.models import Sandbox
from lab.store import DjangoEventStore
from reqflow.pooled_postgresql.base import close_kept
from tests.reliability.faultproxy import FaultProxy

pytestmark = [pytest.mark.backend, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

INSERT_EVENT = b"INSERT INTO concepts_storedevent"


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    """Point the test's connection at a fault proxy in front of its PostgreSQL, for the length of the test."""
    if not settings.IS_POSTGRES:
        pytest.skip("cuts a PostgreSQL connection mid-append: `make test-postgres` runs this test")
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    connection.close()
    with FaultProxy(int(port), host) as running:
        db["HOST"], db["PORT"] = "127.0.0.1", str(running.port)
        close_kept()  # the connections this process keeps lead to the server itself: connect anew, through the proxy
        try:
            yield running
        finally:
            connection.close()
            db["HOST"], db["PORT"] = host, port
            close_kept()


def stored_with_command(command_id: str) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM concepts_storedevent WHERE command_id = %s", [command_id])
        return int(cur.fetchone()[0])


def stored_with_event_id(event_id: uuid.UUID) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM concepts_storedevent WHERE event_id = %s", [event_id])
        return int(cur.fetchone()[0])


def dies(proxy: FaultProxy, pattern: bytes, *, deliver: bool, call) -> None:
    """Run `call` while the proxy resets the connection on `pattern`; the caller sees a database error."""
    fired = proxy.cut_on(pattern, deliver=deliver)
    with pytest.raises(DatabaseError):
        call()
    assert fired.wait(5), f"{pattern!r} never went through the proxy"
    connection.close()  # what Django does with a broken connection at the end of a request


def test_E4_the_insert_is_lost_with_the_connection_and_the_retry_lands_once(proxy):
    sandbox = Sandbox.objects.create(lag_ms=0, replay_rate=0)
    command_id = f"e4-{uuid.uuid4().hex[:12]}"
    dies(proxy, INSERT_EVENT, deliver=False, call=lambda: commands.send_command(sandbox, "deposit", "5", command_id))
    assert stored_with_command(command_id) == 0  # the transaction died with its connection
    retried = commands.send_command(sandbox, "deposit", "5", command_id)
    assert retried.accepted and not retried.replayed and retried.write_version == 1
    assert stored_with_command(command_id) == 1


def test_E4_the_commit_lands_but_its_reply_is_lost_and_the_retry_appends_nothing(proxy):
    sandbox = Sandbox.objects.create(lag_ms=0, replay_rate=0)
    first = commands.send_command(sandbox, "deposit", "3")
    assert first.accepted
    command_id = f"e4-{uuid.uuid4().hex[:12]}"
    dies(proxy, b"COMMIT", deliver=True, call=lambda: commands.send_command(sandbox, "deposit", "5", command_id))
    retried = commands.send_command(sandbox, "deposit", "5", command_id)
    assert retried.accepted and retried.replayed and retried.write_version == 2  # the first outcome, told again
    assert stored_with_command(command_id) == 1
    again = commands.send_command(sandbox, "deposit", "7")  # the stream goes on from there
    assert again.write_version == 3


def test_E4_a_raw_append_retried_with_the_same_event_id_lands_once(proxy):
    store = DjangoEventStore()
    stream = f"account-{uuid.uuid4()}"
    event = NewEvent("Deposited", 2, {"amount_cents": 500, "currency": "USD"})
    meta = Metadata.for_command("e4-raw")
    dies(proxy, b"COMMIT", deliver=True, call=lambda: store.append(stream, [event], 0, meta))
    with pytest.raises(ConcurrencyError):  # it landed: the stream is at 1, so the same append is refused
        store.append(stream, [event], 0, meta)
    assert stored_with_event_id(event.event_id) == 1
    assert store.stream_version(stream) == 1
