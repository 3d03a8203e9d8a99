"""The database itself refuses to change or remove stored events; only a sandbox purge (with its permit) can."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from lab import store
from lab.engine.messages import Deposited
from lab.models import PurgePermit, Sandbox, StoredEvent

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

TABLE = StoredEvent._meta.db_table


@pytest.fixture
def sandbox():
    sandbox = Sandbox.objects.create()
    store.append(sandbox, [Deposited(Decimal("50.00")), Deposited(Decimal("5.00"))], 0, "seed")
    return sandbox


def refused(action):
    """Run `action` in a savepoint (PostgreSQL aborts the transaction on error) and return the error text."""
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        action()
    return str(raised.value)


def raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_an_orm_update_of_an_event_is_refused(sandbox):
    assert "append-only" in refused(lambda: StoredEvent.objects.filter(sandbox_id=sandbox.pk).update(version=99))
    assert sorted(StoredEvent.objects.values_list("version", flat=True)) == [1, 2]


def test_saving_a_changed_event_instance_is_refused(sandbox):
    event = StoredEvent.objects.get(sandbox_id=sandbox.pk, version=1)
    event.payload = {"amount": "5000.00"}
    assert "append-only" in refused(event.save)
    assert StoredEvent.objects.get(pk=event.pk).payload == {"amount": "50.00"}


def test_a_raw_sql_update_is_refused(sandbox):
    assert "append-only" in refused(lambda: raw(f"UPDATE {TABLE} SET payload = %s", ['{"amount": "1.00"}']))


def test_an_orm_delete_is_refused(sandbox):
    assert "append-only" in refused(lambda: StoredEvent.objects.filter(sandbox_id=sandbox.pk).delete())
    assert StoredEvent.objects.filter(sandbox_id=sandbox.pk).count() == 2


def test_a_raw_sql_delete_is_refused(sandbox):
    assert "append-only" in refused(lambda: raw(f"DELETE FROM {TABLE}"))
    assert StoredEvent.objects.count() == 2


def test_a_permit_allows_deleting_only_its_own_sandboxs_events(sandbox):
    other = Sandbox.objects.create()
    store.append(other, [Deposited(Decimal("1.00"))], 0, "other")
    with transaction.atomic():
        PurgePermit.objects.create(sandbox_id=sandbox.pk)
        StoredEvent.objects.filter(sandbox_id=sandbox.pk).delete()
        refused(lambda: StoredEvent.objects.filter(sandbox_id=other.pk).delete())
        PurgePermit.objects.filter(sandbox_id=sandbox.pk).delete()
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()
    assert StoredEvent.objects.filter(sandbox_id=other.pk).count() == 1


def test_a_permit_never_allows_an_update(sandbox):
    PurgePermit.objects.create(sandbox_id=sandbox.pk)
    assert "append-only" in refused(lambda: StoredEvent.objects.filter(sandbox_id=sandbox.pk).update(version=7))


def test_emptying_the_whole_table_at_once_is_refused(sandbox):
    # PostgreSQL's TRUNCATE skips row triggers, so it has its own; SQLite's truncate optimisation is off with triggers.
    sql = f"TRUNCATE {TABLE}" if connection.vendor == "postgresql" else f"DELETE FROM {TABLE} WHERE 1"
    assert "append-only" in refused(lambda: raw(sql))
    assert StoredEvent.objects.count() == 2


@pytest.mark.django_db(transaction=True)  # as flush really runs: outside any transaction (also test teardown)
def test_flush_can_still_empty_the_store_for_a_fresh_start(sandbox):
    call_command("flush", interactive=False, verbosity=0)
    assert StoredEvent.objects.count() == 0
    assert PurgePermit.objects.count() == 0
