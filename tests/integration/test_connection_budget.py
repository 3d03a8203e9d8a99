"""The bound on a web process's database connections (reqflow.request_threads, deploy/budget.py), for real.

Requests through the real application run their sync work on at most ASGI_THREADS threads, however many arrive
at once; `make cluster`'s budget line reads the real server's max_connections and warns when a cluster would not
fit in it (issue 12: PostgreSQL's "too many clients already" under `make load`)."""

from __future__ import annotations

import asyncio
import threading

import pytest
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
    finally:
        request_started.disconnect(note)
    assert {answer["status"] for answer in answers} == {200}
    assert seen and all(name.startswith("reqflow-request") for name in seen), seen
    assert len(seen) <= settings.ASGI_THREADS


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
