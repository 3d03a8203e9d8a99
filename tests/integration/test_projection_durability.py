"""lab/projection_durability.py: on SQLite the projector's own connection commits at synchronous=NORMAL (no fsync
per projection step), every other connection stays at FULL, and a reconnect is relaxed again; PostgreSQL sessions,
the projector's included, keep synchronous_commit on. Exactly once across a killed projector is proven in
tests/reliability; this checks the setting each connection really runs with."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from lab.projector import Projector

pytestmark = [
    pytest.mark.backend,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("close_thread_connections"),
]

NORMAL, FULL = 1, 2  # what SQLite's PRAGMA synchronous reports


def _setting() -> str:
    with connection.cursor() as cursor:
        if settings.IS_POSTGRES:
            cursor.execute("SHOW synchronous_commit")
        else:
            cursor.execute("PRAGMA synchronous")
        return str(cursor.fetchone()[0])


def _close() -> None:
    connection.close()


async def test_only_the_projectors_connection_skips_the_fsync_per_commit() -> None:
    p = Projector(name="durability-probe")
    try:
        in_projector = await p._db(_setting)
        await p._db(_close)  # a broken connection is closed like this; the next step opens a new one
        after_reconnect = await p._db(_setting)
        elsewhere = await sync_to_async(_setting)()  # a request's thread
    finally:
        await p._db(_close)
        p._executor.shutdown()
    if settings.IS_POSTGRES:
        assert in_projector == after_reconnect == elsewhere == "on"
    else:
        assert (int(in_projector), int(after_reconnect), int(elsewhere)) == (NORMAL, NORMAL, FULL)
