"""Slow clients are cut, against a real daphne started the way `make run` starts it (the options of the Makefile's
`run` line): a request whose headers trickle in (one line every half second, like issue 13's one every 5 s, where
350 of 350 were still open after 75 s) gets a 408 and is closed HTTP_HEADER_TIMEOUT_S after its first byte, a
stalled WebSocket upgrade likewise, a body that trickles HTTP_BODY_TIMEOUT_S after its headers; a connection that
waits between two requests is not cut for it, and prompt requests are untouched.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = Path(sys.executable).parent / "daphne"
HEADER_S = 2
BODY_S = 2
STATIC = "/static/css/site.css"  # answered without the database

pytestmark = [pytest.mark.timeout(120)]


def run_options() -> list[str]:
    """daphne's options on the Makefile's `run` line (between the port and the application)."""
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "/daphne -b" in line)
    return shlex.split(line.split("-p $(PORT)", 1)[1].split("reqflow.asgi:application", 1)[0])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("slow-clients")
    drop = ("DATABASE_URL", "REDIS_URL", "REQFLOW_TEST_DB", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(REQFLOW_TESTING="1", EMBEDDED_PROJECTOR="0", SQLITE_PATH=str(folder / "db.sqlite3"),
               HTTP_HEADER_TIMEOUT_S=str(HEADER_S), HTTP_BODY_TIMEOUT_S=str(BODY_S))  # fmt: skip
    with open(folder / "daphne.log", "wb") as log:
        argv = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), *run_options(), "reqflow.asgi:application"]
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((folder / "daphne.log").read_text()) from None
                    time.sleep(0.1)
            yield port
        finally:
            process.terminate()
            process.wait(10)


def test_the_makefile_runs_daphne_with_explicit_timeouts():
    options = run_options()
    for flag in ("--http-timeout", "--websocket_connect_timeout", "--ping-interval", "--ping-timeout"):
        assert flag in options


async def _trickle(port: int, head: bytes, lines: list[bytes], every_s: float) -> tuple[bytes, float]:
    """Send `head`, then a line every `every_s` until the server closes; (what it answered, seconds it took)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    answer = b""

    async def feed() -> None:
        for line in lines:
            await asyncio.sleep(every_s)
            try:
                writer.write(line)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    feeding = asyncio.ensure_future(feed())
    try:
        while chunk := await reader.read(4096):
            answer += chunk
    except ConnectionError:
        pass
    took = time.monotonic() - started
    feeding.cancel()
    writer.close()
    return answer, took


async def test_350_clients_sending_a_header_line_every_half_second_are_all_cut(site):
    head = b"GET " + STATIC.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    lines = [f"X-Slow-{i}: {i}\r\n".encode() for i in range(200)]  # 100 s worth, never finishing the headers
    results = await asyncio.gather(*(_trickle(site, head, lines, 0.5) for _ in range(350)))
    for answer, took in results:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert took < HEADER_S + 5
    assert b"x-content-type-options: nosniff" in results[0][0]


async def test_a_stalled_websocket_upgrade_is_cut(site):
    head = (
        b"GET /ws/lab/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
    )
    answer, took = await _trickle(site, head, [b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"] * 100, 0.5)
    assert answer.startswith(b"HTTP/1.1 408 ") and took < HEADER_S + 5


async def test_a_body_that_trickles_is_cut(site):
    head = b"POST /lab/command/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
    answer, took = await _trickle(site, head, [b"amount=1&"] * 100, 0.5)
    assert answer.startswith(b"HTTP/1.1 408 ") and HEADER_S <= took < HEADER_S + BODY_S + 5


async def test_a_prompt_request_and_a_pause_between_two_requests_are_fine(site):
    reader, writer = await asyncio.open_connection("127.0.0.1", site)
    request = b"GET " + STATIC.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for pause in (0, HEADER_S + 1):  # waiting longer than the header deadline between requests is not slow
        await asyncio.sleep(pause)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 "), head[:80]
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        await reader.readexactly(length)
    writer.close()
