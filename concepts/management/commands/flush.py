"""`manage.py flush`, able to empty the append-only event table.

The table's triggers refuse DELETE and TRUNCATE without a purge permit (migration 0002), so Django's own flush,
which also runs after every transactional test, would fail. This one empties the events first under the
all-sandboxes permit (the nil UUID), removes that permit in the same transaction, then runs Django's flush.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import uuid
from typing import Any

from django.core.management.commands import flush
from django.db import connections, transaction

from concepts.models import PurgePermit, StoredEvent

ALL_SANDBOXES = uuid.UUID(int=0)


class Command(flush.Command):
    def handle(self, **options: Any) -> None:
        database = options["database"]
        connection = connections[database]
        if options["interactive"]:
            answer = input(
                f'This will IRREVERSIBLY DESTROY all data in the "{connection.settings_dict["NAME"]}" database, '
                "including the append-only event log.\nType 'yes' to continue, or 'no' to cancel: "
            )
            if answer != "yes":
                self.stdout.write("Flush cancelled.")
                return
            options["interactive"] = False
        if StoredEvent._meta.db_table in connection.introspection.table_names():
            with transaction.atomic(using=database):
                PurgePermit.objects.using(database).get_or_create(sandbox_id=ALL_SANDBOXES)
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {connection.ops.quote_name(StoredEvent._meta.db_table)}")
                PurgePermit.objects.using(database).filter(sandbox_id=ALL_SANDBOXES).delete()
        super().handle(**options)
