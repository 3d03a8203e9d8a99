"""The only ways events ever leave the store: purging one whole sandbox, and emptying the database (flush).

The events table's triggers refuse DELETE unless a PurgePermit names the row's sandbox (or the nil UUID, for
every sandbox); the permit is written and removed inside the deleting transaction, so it never outlives it.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import logging
import uuid

from django.db import connection, connections, transaction
from django.db.models import Q

from lab.models import PurgePermit, Sandbox, StoredEvent
from lab.store.events import lock_for_append
from lab.store.values import db_uuid

log = logging.getLogger(__name__)

EVENTS = StoredEvent._meta.db_table
ALL_SANDBOXES = uuid.UUID(int=0)


def purge_sandbox(sandbox_id: uuid.UUID, *, only_if: Q | None = None) -> bool:
    """Delete one sandbox and all its rows. The events go under a permit that lives only in this transaction.

    `only_if`: a condition on the sandbox row, checked again under the sandbox's lock; when the row no longer meets
    it (a purge of idle sandboxes, and the learner came back meanwhile) nothing is deleted. Returns whether it
    purged (with `only_if`, False also when the sandbox was already gone)."""
    with transaction.atomic():
        # The sandbox's append lock first (the lock order in docs/architecture.md): an append to it in flight
        # commits before the delete reads the rows, so no event of it outlives the purge.
        lock_for_append(sandbox_id)
        if only_if is not None and not Sandbox.objects.filter(only_if, pk=sandbox_id).exists():
            return False
        PurgePermit.objects.get_or_create(sandbox_id=sandbox_id)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {EVENTS} WHERE sandbox_id = %s", [db_uuid(sandbox_id)])
        PurgePermit.objects.filter(sandbox_id=sandbox_id).delete()
        # Snapshots, command records, load reports and every read-model row go with it: their foreign keys are
        # on_delete=CASCADE, which Django's ORM carries out (the events table has no foreign key, hence the above).
        Sandbox.objects.filter(pk=sandbox_id).delete()
    log.debug("purged sandbox %s", sandbox_id)  # callers log how many (one line, not one per sandbox)
    return True


def delete_all_events(using: str) -> None:
    """Empty the events table of database `using` (manage.py flush, and test teardown through it)."""
    db = connections[using]
    if EVENTS not in db.introspection.table_names():
        return
    with transaction.atomic(using=using):
        PurgePermit.objects.using(using).get_or_create(sandbox_id=ALL_SANDBOXES)
        with db.cursor() as cursor:
            cursor.execute(f"DELETE FROM {db.ops.quote_name(EVENTS)}")
        PurgePermit.objects.using(using).filter(sandbox_id=ALL_SANDBOXES).delete()
