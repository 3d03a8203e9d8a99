"""A lab socket whose handshake meets a database it cannot use (reqflow.handshake), through the real application:
the origin check, channels' session and auth middleware, the consumer. The database is made unreachable for real
(new connections go to a port nothing listens on, or an SQLite file that cannot be opened), as when PostgreSQL
answered "too many clients already" under `make load` (issue 12)."""

from __future__ import annotations

import logging
import traceback

import pytest
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import OperationalError, connections

from lab.routing import websocket_urlpatterns
from reqflow.asgi import application
from reqflow.handshake import CLOSE_DATABASE_UNAVAILABLE
from tests.integration.lab_events import visitor

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.backend,
    pytest.mark.usefixtures("close_thread_connections"),
]

HEADERS = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


def _session_key() -> str:
    try:
        return str(visitor().cookies[settings.SESSION_COOKIE_NAME].value)
    finally:
        connections.close_all()


def make_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new connection fails from here on. Each thread's connection shares this settings dict, and the
    handshake's reads connect afresh (CONN_MAX_AGE 0; the consumer closes its thread's connection after each)."""
    db = connections.settings["default"]
    if db["ENGINE"].endswith("sqlite3"):
        monkeypatch.setitem(db, "NAME", "/nonexistent-reqflow-dir/db.sqlite3")
    else:
        monkeypatch.setitem(db, "HOST", "127.0.0.1")
        monkeypatch.setitem(db, "PORT", "9")  # discard: nothing listens, the connection is refused at once


def socket(app, session_key: str) -> WebsocketCommunicator:
    cookie = (b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())
    return WebsocketCommunicator(app, "/ws/lab/", headers=[*HEADERS, cookie])


async def test_the_socket_is_closed_with_a_code_the_page_understands_and_one_log_line(caplog):
    key = await sync_to_async(_session_key)()
    with pytest.MonkeyPatch.context() as patch:
        make_unreachable(patch)
        caplog.set_level(logging.INFO)
        communicator = socket(application, key)
        connected, _ = await communicator.connect(timeout=10)
        closed = await communicator.receive_output(timeout=10)
        await communicator.wait(timeout=5)
    assert connected
    assert closed == {"type": "websocket.close", "code": CLOSE_DATABASE_UNAVAILABLE}
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].name == "reqflow.dbfailure" and lines[0].exc_info is None
    assert "a lab socket's handshake" in lines[0].getMessage()
    assert "_session_cache" not in caplog.text


async def test_without_it_the_handshake_raised_the_error_the_load_run_logged():
    # The baseline: the same stack without reqflow.handshake. The session's load fails inside Django's
    # `except AttributeError` (its cache lookup), which is why daphne's traceback began with '_session_cache'.
    key = await sync_to_async(_session_key)()
    with pytest.MonkeyPatch.context() as patch:
        make_unreachable(patch)
        communicator = socket(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), key)
        with pytest.raises(OperationalError) as raised:
            await communicator.connect(timeout=10)
    assert "no attribute '_session_cache'" in "".join(traceback.format_exception(raised.value))


async def test_once_the_database_answers_again_the_socket_opens():
    key = await sync_to_async(_session_key)()
    communicator = socket(application, key)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.disconnect()
