"""On SQLite each request thread keeps its database connection (reqflow/settings.py): opening one (the file, the
WAL and synchronous pragmas, the SQL functions Django registers) cost more than most requests' queries, and under
`make load` a sixth of the web process's CPU went to opening and closing them. PostgreSQL connects per request
(its connections count against the server's budget: test_connection_budget.py), so this runs on SQLite only."""

from __future__ import annotations

import threading

import pytest
from channels.testing import HttpCommunicator
from django.conf import settings
from django.db.backends.signals import connection_created

from reqflow import asgi

pytestmark = pytest.mark.django_db(transaction=True)


async def test_requests_reuse_their_threads_sqlite_connections():
    assert not settings.IS_POSTGRES
    opened: list[str] = []
    lock = threading.Lock()

    def note(**kwargs: object) -> None:
        with lock:
            opened.append(threading.current_thread().name)

    requests = 3 * settings.ASGI_THREADS
    connection_created.connect(note)
    try:
        for _ in range(requests):  # one after another, each reading the database (a session cookie unknown to it)
            headers = [(b"host", b"127.0.0.1"), (b"cookie", b"sessionid=" + b"x" * 32)]
            request = HttpCommunicator(asgi.application, "GET", "/concepts/cqrs-event-sourcing/", headers=headers)
            answer = await request.get_response(timeout=30)
            await request.wait()
            assert answer["status"] == 200
    finally:
        connection_created.disconnect(note)
    assert opened, "the requests never read the database: this test would prove nothing"
    # At most one connection per request thread, however many requests: each thread kept the one it opened.
    assert len(opened) == len(set(opened)) <= settings.ASGI_THREADS < requests
