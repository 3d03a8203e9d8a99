"""`manage.py flush`, able to empty the append-only event table.

The table's triggers (concepts/migrations/0002) refuse DELETE without a purge permit, and on PostgreSQL TRUNCATE
while the table holds rows, so Django's own flush, which also runs after every transactional test, would fail.
This one empties the events first (lab.store.delete_all_events, under the all-sandboxes permit), then runs
Django's flush.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush
from django.db import connections

from lab.store import delete_all_events


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
        delete_all_events(database)
        super().handle(**options)
