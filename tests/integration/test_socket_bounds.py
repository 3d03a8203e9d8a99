"""Lab sockets are bounded: at most LAB_MAX_SOCKETS_PER_SESSION per session and LAB_MAX_SOCKETS_PER_ADDRESS per
address; the next one closes the oldest, whose page is told why (a push, then close code 4429). A page opened
before its visitor had a sandbox keeps its socket and goes live when the first command creates one.

Issue 13 measured 200 sockets accepted on one session, and one command there delaying another learner's push to
5.4 s. Through reqflow.asgi.application (origin check, session, routing), with real cookies.
"""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings

from lab import consumers, sockets
from reqflow.asgi import application
from tests.integration.lab_events import visitor

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.backend,
    pytest.mark.usefixtures("close_thread_connections"),
]

HX = {"HTTP_HX_REQUEST": "true"}


def in_thread(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run)


def cookies_of(client: Client) -> dict[str, str]:
    return {name: morsel.value for name, morsel in client.cookies.items()}


def socket(cookies: dict[str, str], address: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]
    if cookies:
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode()))
    communicator = WebsocketCommunicator(application, "/ws/lab/", headers=headers)
    if address is not None:
        communicator.scope["client"] = [address, 50000]  # as daphne fills it (--proxy-headers behind nginx)
    return communicator


def version(html: str, testid: str) -> int | None:
    match = re.search(rf'data-testid="{testid}">(\d+)<', html)
    return int(match.group(1)) if match else None


async def opened(cookies: dict[str, str], address: str | None = None, *, state: bool = True) -> WebsocketCommunicator:
    communicator = socket(cookies, address)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    if state:
        await communicator.receive_from(timeout=5)  # the whole state, first
    return communicator


async def closing_frames(communicator: WebsocketCommunicator) -> tuple[str, int]:
    """The push before the close, and the close code."""
    pushed = await communicator.receive_from(timeout=5)
    closed = await communicator.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    return pushed, closed["code"]


async def deposit(client: Client, amount: str = "5") -> None:
    response = await in_thread(client.post)("/lab/command/", {"kind": "deposit", "amount": amount}, **HX)
    assert response.status_code == 200


# --- Per session and per address --------------------------------------------------------------------------------


@override_settings(LAB_MAX_SOCKETS_PER_SESSION=3)
async def test_the_socket_past_the_session_cap_closes_the_oldest_with_the_reason():
    client = await in_thread(visitor)()
    cookies = cookies_of(client)
    pages = [await opened(cookies) for _ in range(3)]
    newest = await opened(cookies)
    pushed, code = await closing_frames(pages[0])
    assert code == consumers.CLOSE_TOO_MANY_PAGES
    assert 'id="lab-live-status"' in pushed and 'hx-swap-oob="true"' in pushed
    assert "This page was closed because you opened more than 3 lab pages" in pushed
    for page in [*pages[1:], newest]:
        assert await page.receive_nothing(timeout=0.1)  # still open
    # ...and they still get pushes.
    await deposit(client)
    assert version(await newest.receive_from(timeout=5), "write-version") == 1
    assert sockets.REGISTRY.count(session=client.cookies[settings.SESSION_COOKIE_NAME].value) == 3
    for page in [*pages[1:], newest]:
        await page.disconnect()


@override_settings(LAB_MAX_SOCKETS_PER_ADDRESS=2)
async def test_the_socket_past_the_address_cap_closes_that_addresses_oldest():
    learners = [await in_thread(visitor)() for _ in range(3)]
    first = await opened(cookies_of(learners[0]), "203.0.113.9")
    second = await opened(cookies_of(learners[1]), "203.0.113.9")
    elsewhere = await opened(cookies_of(learners[2]), "198.51.100.1")
    third = await opened(cookies_of(learners[2]), "203.0.113.9")
    pushed, code = await closing_frames(first)
    assert code == consumers.CLOSE_TOO_MANY_PAGES
    assert "more than 2 lab pages are open from your network" in pushed
    for page in (second, elsewhere, third):
        assert await page.receive_nothing(timeout=0.1)
        await page.disconnect()
    assert sockets.REGISTRY.count(address="203.0.113.9") == 0


async def test_a_closed_socket_is_no_longer_counted():
    client = await in_thread(visitor)()
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    pages = [await opened(cookies_of(client)) for _ in range(2)]
    assert sockets.REGISTRY.count(session=key) == 2
    for page in pages:
        await page.disconnect()
    assert sockets.REGISTRY.count(session=key) == 0


@pytest.mark.slow
async def test_200_sockets_on_one_session_leave_the_cap_open_and_another_learners_push_prompt():
    """Issue 13: 200 sockets were accepted on one session, and a command there delayed another learner's push."""
    crowd = await in_thread(visitor)()
    other = await in_thread(visitor)()
    theirs = await opened(cookies_of(other))
    pages = []
    for _ in range(200):
        pages.append(await opened(cookies_of(crowd), state=False))
    key = crowd.cookies[settings.SESSION_COOKIE_NAME].value
    assert sockets.REGISTRY.count(session=key) == settings.LAB_MAX_SOCKETS_PER_SESSION
    await asyncio.sleep(1.0)  # the evicted ones close
    loop = asyncio.get_running_loop()
    await deposit(crowd)
    started = loop.time()
    await deposit(other)
    while version(await theirs.receive_from(timeout=10), "write-version") != 1:
        pass
    assert loop.time() - started < 2.0
    for page in [*pages, theirs]:
        await page.disconnect()


# --- A page opened before the first sandbox ------------------------------------------------------------------


async def test_a_page_without_a_session_waits_and_reconnects_once_the_first_command_made_one():
    client = Client()
    await in_thread(client.get)("/lab/")
    before = cookies_of(client)
    assert settings.SESSION_COOKIE_NAME not in before and settings.CSRF_COOKIE_NAME in before
    page = await opened(before, state=False)  # accepted, nothing to push yet
    assert await page.receive_nothing(timeout=0.2)
    await deposit(client)
    closed = await page.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_RECONNECT}  # lab.js reconnects at once
    again = socket(cookies_of(client))
    assert (await again.connect(timeout=5))[0]
    assert version(await again.receive_from(timeout=5), "write-version") == 1
    await again.disconnect()


async def test_a_signed_in_page_without_a_sandbox_follows_the_first_one_without_reconnecting(alice_client):
    await in_thread(alice_client.get)("/lab/")
    page = await opened(cookies_of(alice_client), state=False)
    assert await page.receive_nothing(timeout=0.2)
    await deposit(alice_client)
    pushed = await page.receive_from(timeout=5)
    while version(pushed, "write-version") != 1:
        pushed = await page.receive_from(timeout=5)
    assert 'id="lab-event-log"' in pushed
    await page.disconnect()


async def test_a_socket_with_neither_a_sandbox_nor_a_page_of_ours_is_refused():
    connected, _ = await socket({}).connect(timeout=5)
    assert not connected
