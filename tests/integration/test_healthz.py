"""`/healthz` (reqflow/health.py): 200 when the database and the channel layer answer, 503 naming the one that does
not. The failures are real: a process whose DATABASE_URL or REDIS_URL points at a closed port, and a Redis
stopped with SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import AsyncClient

from deploy import services
from reqflow.asgi import application
from reqflow.health import CHECK_TIMEOUT_S
from tests.integration.lab_events import visitor

ROOT = Path(__file__).resolve().parents[2]

# Asks /healthz through Django's test client in a fresh process configured only by its environment.
ASK = """
import json, os
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reqflow.settings")
django.setup()
from django.test import Client
r = Client(HTTP_HOST="127.0.0.1").get("/healthz")
print(json.dumps({"status": r.status_code, "headers": dict(r.headers), "body": r.json(), "cookies": list(r.cookies)}))
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def healthz_in_a_process(tmp_path: Path, **env: str) -> dict:
    drop = {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "PYTHONWARNINGS"}
    base = {k: v for k, v in os.environ.items() if k not in drop}
    base |= {"REQFLOW_TESTING": "1", "SQLITE_PATH": str(tmp_path / "health.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-c", ASK], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.backend
@pytest.mark.django_db
def test_it_answers_ok_when_the_database_and_the_channel_layer_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "channel_layer": "ok"}}
    assert "no-store" in response["Cache-Control"]
    assert not response.cookies  # no session, no CSRF cookie
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_it_answers_503_naming_the_database_when_the_database_is_unreachable(tmp_path):
    answer = healthz_in_a_process(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/reqflow")
    assert answer["status"] == 503
    assert answer["body"]["failed"] == ["database"]
    assert answer["body"]["checks"]["channel_layer"] == "ok"
    assert answer["headers"]["Retry-After"] == "5"
    assert "no-store" in answer["headers"]["Cache-Control"]
    assert answer["cookies"] == []


def test_it_answers_503_naming_the_channel_layer_when_redis_is_unreachable(tmp_path):
    answer = healthz_in_a_process(tmp_path, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/1")
    assert answer["status"] == 503
    assert answer["body"]["failed"] == ["channel_layer"]
    assert answer["body"]["checks"]["database"] == "ok"
    assert answer["headers"]["Retry-After"] == "5"


def test_it_answers_503_in_bounded_time_when_redis_hangs(tmp_path):
    """A Redis that accepts connections but never answers (stopped with SIGSTOP): the check gives up instead of
    holding the proxy's probe."""
    redis = services.start_redis(tmp_path, 1)
    assert redis.process is not None
    try:
        os.kill(redis.process.pid, signal.SIGSTOP)
        answer = healthz_in_a_process(tmp_path, REDIS_URL=redis.url)
    finally:
        os.kill(redis.process.pid, signal.SIGCONT)
        services.stop(redis)
    assert answer["status"] == 503
    assert answer["body"]["checks"]["channel_layer"] == f"no answer within {CHECK_TIMEOUT_S:g} s"


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("close_thread_connections")
async def test_it_answers_while_a_lab_page_socket_is_open_in_the_same_process():
    """channels_redis reads every process-local channel through one receive: the check's channel must be one it
    follows, or the check waits behind an open page's socket until it times out."""

    def visit() -> str:
        try:
            return visitor().cookies[settings.SESSION_COOKIE_NAME].value
        finally:
            connections.close_all()

    key = await sync_to_async(visit)()
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()))
    page = WebsocketCommunicator(application, "/ws/lab/", headers=headers)
    connected, _ = await page.connect()
    assert connected
    await page.receive_from(timeout=5)
    try:
        response = await AsyncClient().get("/healthz")
        assert response.status_code == 200, response.content
    finally:
        await page.disconnect()
