"""P2 of the failure catalogue (tests/reliability/CATALOGUE.md): the site dies after a command committed and
before its projection was applied and pushed. Nothing is lost: a restarted site projects it by itself, and the
page's socket, reconnecting, gets the whole state and then the read model's catch-up.

Real parts: daphne with the embedded projector on a SQLite file, SIGKILL (no clean shutdown), a second daphne on
the same file, a WebSocket opened like a page's.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.reliability.live import Learner, Site, copy_database, count_events, migrate


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    migrate(path)
    return path


def version(html: str, testid: str) -> int | None:
    match = re.search(rf'data-testid="{testid}">(\d+)<', html)
    return int(match.group(1)) if match else None


def page_socket(site: Site, cookies: str) -> ClientConnection:
    return connect(
        site.base.replace("http://", "ws://") + "/ws/lab/",
        additional_headers={"Origin": site.base, "Cookie": cookies}, open_timeout=10,
    )  # fmt: skip


@pytest.mark.long  # 8 to 15 s: two daphne starts and a lag to wait out
def test_P2_a_site_killed_after_the_commit_and_before_the_push_loses_nothing(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    first = Site(tmp_path / "first.log", SQLITE_PATH=str(db))
    try:
        learner = Learner(first.base)
        assert learner.get("/lab/").status == 200
        assert learner.post("/lab/lag/", {"lag": "5"}, target="lab-projector-result").status == 200
        cookies = "; ".join(f"{c.name}={c.value}" for c in learner.jar)
        with page_socket(first, cookies) as ws:
            ws.recv(timeout=10)
            assert learner.deposit("5").status == 200  # committed: the answer comes after the commit
            pushed = str(ws.recv(timeout=10))
            assert (version(pushed, "write-version"), version(pushed, "read-version")) == (1, 0)
            first.process.kill()  # SIGKILL inside the 5 s lag: the projection is neither applied nor pushed
            first.process.wait(10)
    finally:
        first.stop()
    assert count_events(db) == 1
    second = Site(tmp_path / "second.log", SQLITE_PATH=str(db))
    try:
        with page_socket(second, cookies) as ws:
            state = str(ws.recv(timeout=10))  # the page reconnects: the whole state, from the log
            assert version(state, "write-version") == 1
            deadline = time.monotonic() + 20
            while version(state, "read-version") != 1:
                left = deadline - time.monotonic()
                assert left > 0, "the restarted site never projected the committed deposit"
                state = str(ws.recv(timeout=left))
        assert count_events(db) == 1  # nothing lost, nothing doubled
        assert "Traceback" not in second.log(), second.log()[-3000:]
    finally:
        second.stop()
