"""The bound on a web process's database connections (reqflow.request_threads, deploy/budget.py), for real.

Requests through the real application run their sync work on at most ASGI_THREADS threads, however many arrive
at once; `make cluster`'s budget line reads the real server's max_connections and warns when a cluster would not
fit in it (issue 12: PostgreSQL's "too many clients already" under `make load`)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.conf import settings
from django.core.signals import request_started
from django.db import connection

from deploy import budget
from reqflow import asgi

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend]


async def test_a_burst_of_requests_runs_on_at_most_asgi_threads_threads():
    seen: set[str] = set()
    lock = threading.Lock()

    def note(**kwargs: object) -> None:  # Django sends request_started on the request's own sync thread
        with lock:
            seen.add(threading.current_thread().name)

    request_started.connect(note)
    try:
        burst = [HttpCommunicator(asgi.application, "GET", "/", headers=[(b"host", b"127.0.0.1")]) for _ in range(40)]
        answers = await asyncio.gather(*(c.get_response(timeout=30) for c in burst))
        # Let each application finish: one left pending closes its request body only when collected, and the
        # ResourceWarning then fails whichever test is running (test_paced_replay, once).
        await asyncio.gather(*(c.wait() for c in burst))
    finally:
        request_started.disconnect(note)
    assert {answer["status"] for answer in answers} == {200}
    assert seen and all(name.startswith("reqflow-request") for name in seen), seen
    assert len(seen) <= settings.ASGI_THREADS


@pytest.mark.postgres  # PostgreSQL's kept connections are the process's; a SQLite thread keeps its own file open
async def test_no_request_leaves_a_postgresql_connection_open_behind_it():
    # Django closes a request's connections on whichever pool thread its request_finished lands, while its view may
    # have queried on another: that connection stayed open with its thread, outside the kept ones that are checked
    # before they are lent (a hung server then held the next request on that thread for ever:
    # tests/reliability/test_hung_postgres.py). Requests one after another now reuse one kept connection: none
    # is left behind, and none added.
    def others() -> int:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                return int(cursor.fetchone()[0])
        finally:
            connection.close()

    before = await sync_to_async(others)()
    for _ in range(3 * settings.ASGI_THREADS):  # one after another, each reading the database (a session cookie)
        headers = [(b"host", b"127.0.0.1"), (b"cookie", b"sessionid=" + b"x" * 32)]
        request = HttpCommunicator(asgi.application, "GET", "/concepts/cqrs-event-sourcing/", headers=headers)
        answer = await request.get_response(timeout=30)
        await request.wait()
        assert answer["status"] == 200
    assert await sync_to_async(others)() == before


@pytest.mark.postgres  # only PostgreSQL has max_connections: make test-postgres runs it, the SQLite pass deselects it
def test_the_budget_line_compares_a_cluster_with_the_real_servers_limit():
    db = connection.settings_dict  # the test database: DATABASE_URL's own is not created by the tests
    url = f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    most, reserved, _ = budget.server_limits(url)
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        assert most == int(cursor.fetchone()[0])
    fits = budget.report(url, web=1, workers=1, threads=1)
    assert not fits.startswith("warning") and f"max_connections {most} - {reserved} reserved" in fits
    too_many = budget.report(url, web=most, workers=1, threads=budget.DEFAULT_THREADS)
    assert too_many.startswith("warning: ") and "too many" in too_many
