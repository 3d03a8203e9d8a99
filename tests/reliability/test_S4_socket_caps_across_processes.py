"""S4 across processes: the per-session socket cap holds over two web processes sharing Redis (lab.shared_sockets).

Each daphne process used to count its own sockets, so with two of them (`make cluster`) one session held twice
the cap. Here two live daphne processes serve the test's PostgreSQL database and Redis; one learner opens sockets
on both, and the socket past the cap closes the oldest, in the other process, with its reason and code 4429.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from lab.consumers import CLOSE_TOO_MANY_PAGES
from tests.reliability.live import Learner, Site

pytestmark = [pytest.mark.backend, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

CAP = 2


def database_url() -> str:
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


def open_page(stack: ExitStack, site: Site, cookies: str) -> ClientConnection:
    ws = stack.enter_context(connect(
        site.base.replace("http://", "ws://") + "/ws/lab/",
        additional_headers={"Origin": site.base, "Cookie": cookies}, open_timeout=10,
    ))  # fmt: skip
    ws.recv(timeout=10)  # the whole state, first
    return ws


def closed_with(ws: ClientConnection) -> tuple[list[str], int | None]:
    """Every frame until the server closes the socket, and its close code."""
    frames = []
    try:
        while True:
            frames.append(str(ws.recv(timeout=10)))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else None


def still_open(ws: ClientConnection) -> bool:
    try:
        ws.recv(timeout=0.5)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return True  # a push: open


def test_one_session_holds_the_cap_over_two_web_processes_not_the_cap_on_each(tmp_path):
    if not settings.IS_POSTGRES:
        pytest.fail("the scaled-out mode's test needs PostgreSQL (run it with `make test-postgres`)")
    env = {"DATABASE_URL": database_url(), "REDIS_URL": str(settings.REDIS_URL),
           "LAB_MAX_SOCKETS_PER_SESSION": str(CAP)}  # fmt: skip
    first, second = Site(tmp_path / "first.log", **env), Site(tmp_path / "second.log", **env)
    pages: list[ClientConnection] = []
    stack = ExitStack()
    try:
        learner = Learner(first.base)
        assert learner.get("/lab/").status == 200
        assert learner.deposit("5").status == 200  # the first command makes the session and the sandbox
        cookies = "; ".join(f"{c.name}={c.value}" for c in learner.jar)
        oldest = open_page(stack, first, cookies)
        pages = [
            open_page(stack, second, cookies),
            open_page(stack, second, cookies),
        ]  # the third of the session: past the cap
        frames, code = closed_with(oldest)
        assert code == CLOSE_TOO_MANY_PAGES
        assert any(f"you opened more than {CAP} lab pages" in frame for frame in frames), frames
        assert all(still_open(page) for page in pages)
        # And the other way round: a socket on the first process closes the oldest on the second.
        pages.append(open_page(stack, first, cookies))
        frames, code = closed_with(pages.pop(0))
        assert code == CLOSE_TOO_MANY_PAGES
        assert all(still_open(page) for page in pages)
        for page in pages:
            page.close()
        for site in (first, second):
            log = site.log()
            assert "Traceback" not in log and "shared socket count is unavailable" not in log, log[-3000:]
    finally:
        stack.close()
        first.stop()
        second.stop()
