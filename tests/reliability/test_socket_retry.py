"""A lab socket whose push meets a database that refuses connections stays open, tells the page it is retrying
(the last known state stays on it), logs one line, and pushes the state again once the database is back.

Real parts: a live daphne on the test's PostgreSQL database, which is closed to new connections for real
(ALTER DATABASE ... ALLOW_CONNECTIONS false, and its open sessions ended), and a hint sent through Redis.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from lab.live import group_name, message
from tests.reliability.live import Learner, Site

pytestmark = [pytest.mark.backend, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def allow_connections(allowed: bool) -> None:
    """From the `postgres` database: PostgreSQL refuses to close the current one to connections. Closing it also
    ends the sessions open on it, as taking a database down does: the site keeps connections open between pushes
    (reqflow.pooled_postgresql), and a kept one must not hide the outage."""
    db = settings.DATABASES["default"]
    name = connection.settings_dict["NAME"]
    with psycopg.connect(
        host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432, user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True, connect_timeout=5,
    ) as admin:  # fmt: skip
        allow = "true" if allowed else "false"
        admin.execute(f"ALTER DATABASE {connection.ops.quote_name(name)} ALLOW_CONNECTIONS {allow}")
        if not allowed:
            connection.close()  # this test's own, kept: the next query finds it ended and connects afresh
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )


def frames_until(ws: ClientConnection, needle: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no frame with {needle!r} within {timeout} s"
        frame = str(ws.recv(timeout=left))
        if needle in frame:
            return frame


def drain(ws: ClientConnection) -> None:
    try:
        while True:
            ws.recv(timeout=1.0)
    except TimeoutError:
        return


def test_a_push_that_meets_a_closed_database_keeps_the_socket_says_retrying_and_recovers(tmp_path):
    if not (settings.IS_POSTGRES and settings.REDIS_URL):
        pytest.skip("closes a PostgreSQL database to connections and hints through Redis: `make test-postgres`")
    db = settings.DATABASES["default"]
    secret = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgres://{db['USER']}{secret}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/"
    url += connection.settings_dict["NAME"]
    site = Site(tmp_path / "site.log", DATABASE_URL=url, REDIS_URL=settings.REDIS_URL)
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200
        assert learner.deposit("5").status == 200
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM concepts_sandbox")
            (sandbox_id,) = cur.fetchone()
        cookies = "; ".join(f"{c.name}={c.value}" for c in learner.jar)
        ws_url = site.base.replace("http://", "ws://") + "/ws/lab/"
        with connect(ws_url, additional_headers={"Origin": site.base, "Cookie": cookies}, open_timeout=10) as ws:
            frames_until(ws, 'data-testid="read-version">1<', 20)
            drain(ws)
            allow_connections(False)
            try:
                for _ in range(3):
                    async_to_sync(get_channel_layer().group_send)(group_name(sandbox_id), message("command"))
                    frame = frames_until(ws, 'data-state="retrying"', 20)
                    assert "cannot be reached" in frame and "last known state" in frame
            finally:
                allow_connections(True)
            frame = frames_until(ws, 'data-state="live"', 30)  # the retried push went out
            try:
                ws.recv(timeout=0.5)
            except TimeoutError:
                pass
            except ConnectionClosed as closed:
                raise AssertionError(f"the socket closed: {closed}") from None
        log = site.log()
        assert sum(line.startswith("database unavailable: answering 503") for line in log.splitlines()) == 1, log
        assert "rendering a push" not in log and "reading the session for a push" not in log, log[-3000:]
    finally:
        allow_connections(True)
        site.stop()
