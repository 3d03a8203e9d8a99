"""Django's database sessions, read in one plain statement (SESSION_ENGINE).

Every request with a session reads its row, and so does every push to an open lab page (the socket re-reads its
session: a sign-out shows up there). Through the ORM that read cost about ten times the query itself (measured on
SQLite: 143 µs against 14), most of it building the same SQL again each time. The row, the expiry rule and the
decoding are Django's own; only the read is plain SQL. Writes, the async methods and `exists` stay Django's.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Any:
        """The unexpired row of this key, or None (and the store forgets the key, as Django's does)."""
        model, key = self.model, self.session_key or ""  # only called with a key (SessionBase._get_session)
        connection = connections[router.db_for_read(model)]
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data FROM {model._meta.db_table} WHERE session_key = %s AND expire_date > %s",  # noqa: S608 (the table name only)
                [key, now],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return model(session_key=key, session_data=row[0])
