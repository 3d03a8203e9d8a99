"""The lab's WebSocket over real TCP against a live daphne: what the in-process Communicator cannot show, such as
which close codes the server's WebSocket library (autobahn) actually sends."""

from __future__ import annotations

import asyncio
import http.cookiejar
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from lab.consumers import CLOSE_CLIENT_FRAME

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def session_cookie(live_url: str) -> str:
    """Visit the lab like a browser and act once (a page view creates no sandbox; the first action does), and
    return the Cookie header."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{live_url}/lab/", timeout=20) as response:
        assert response.status == 200
    token = next(c.value for c in jar if c.name == "csrftoken")
    lag = urllib.request.Request(f"{live_url}/lab/lag/", data=b"lag=2", headers={"X-CSRFToken": token})
    with opener.open(lag, timeout=20) as response:
        assert response.status == 200
    return "; ".join(f"{c.name}={c.value}" for c in jar)


async def close_code_after_sending(live_url: str, cookie: str, frame: str | bytes) -> int | None:
    ws_url = live_url.replace("http://", "ws://") + "/ws/lab/"
    async with connect(ws_url, additional_headers={"Cookie": cookie}, origin=live_url, open_timeout=10) as socket_:
        await asyncio.wait_for(socket_.recv(), 10)  # the full state every (re)connecting page is sent first
        await socket_.send(frame)
        try:
            while True:
                await asyncio.wait_for(socket_.recv(), 10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("frame", ["hello", b"\x00" * 64], ids=["text", "binary"])
def test_a_client_frame_closes_the_socket_with_the_labs_own_code_not_an_internal_error(live_url, frame):
    # The socket is server-to-client only. A close code the WebSocket library refuses (1008 was) turned every client
    # frame into a traceback on the server and an abnormal close (1011/1006) for the client.
    cookie = session_cookie(live_url)
    # On a thread of its own: Playwright's sync API keeps an event loop running in the main thread once any browser
    # test of the session has run, and asyncio.run refuses to start a second one there.
    with ThreadPoolExecutor(max_workers=1) as thread:
        code = thread.submit(lambda: asyncio.run(close_code_after_sending(live_url, cookie, frame))).result(60)
    assert code == CLOSE_CLIENT_FRAME == 4400
