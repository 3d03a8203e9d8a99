"""Honest failure: a database that is locked past its timeout, read-only, full or unreachable makes the live site
answer 503 with Retry-After and a message saying which, logs one line for many requests (no traceback per
request), and appends nothing; once the fault is gone the same learner goes on.

Each fault is real, under a daphne subprocess: another connection's BEGIN EXCLUSIVE; a tmpfs remounted read-only
(root only: as root the file's permissions
are ignored, and this user's Python is not readable by another); a tiny tmpfs filled to the last byte (root only:
SQLite's max_page_count is per connection and cannot reach another process); a PostgreSQL URL at a closed port.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.live import Learner, Site, copy_database, count_events, free_port, migrate

N = 6
ROOT_USER = os.geteuid() == 0


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    migrate(path)
    return path


def needs_root_for_mounts() -> None:
    if not ROOT_USER:
        if os.environ.get("CI"):
            pytest.fail("the read-only and disk-full faults mount a tmpfs: CI must run them as root")
        pytest.skip("mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def serving(tmp_path: Path, db: Path, **env: str) -> Iterator[tuple[Site, Learner]]:
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db), **env)
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200
        assert learner.deposit("5").status == 200
        yield site, learner
    finally:
        site.stop()


def assert_honest_503s(site: Site, learner: Learner, kind: str, words: str, *, fits: bool = False) -> int:
    """N commands and N page views: each a 503 with Retry-After saying `words`; one log line for them all.

    With `fits`, a command may also succeed (200): on a full disk the space that failed writes left allocated in
    the WAL file can hold a later, smaller commit (about 1 in 400 here). Returns how many succeeded; the caller
    checks that each of those was appended whole."""
    done = 0
    for _ in range(N):
        answer = learner.deposit("7")
        if fits and answer.status == 200:
            done += 1
            continue
        assert answer.status == 503, answer.body[:500]
        assert int(answer.headers["Retry-After"]) > 0
        assert words in answer.body and 'id="lab-command-result"' in answer.body  # shown in the slot it targeted
        page = learner.get("/lab/")
        if page.status != 200:  # reads may still work (a locked WAL database): then the page is fine as it is
            assert page.status == 503 and "Retry-After" in page.headers
            assert words in page.body and "503" in page.body
    newcomer = Learner(site.base).get("/lab/")  # a new visitor's page was a 400 (a session it could not save)
    assert newcomer.status in (200, 503), newcomer.body[:500]
    assert newcomer.status == 200 or (words in newcomer.body and "Retry-After" in newcomer.headers)
    assert_one_line(site.log(), f"database {kind}: answering 503")
    assert done <= N // 2, f"{done} of {N} commands succeeded on a {kind} database"
    return done


def assert_one_line(log: str, message: str) -> None:
    """One record of `message`, and no request's traceback (the projector's own rate-limited report may show).
    A record appears twice under daphne (our handler, and daphne's root handler with a timestamp): count ours."""
    assert sum(line.startswith(message) for line in log.splitlines()) == 1, log[-3000:]
    assert "django/core/handlers" not in log and "Internal Server Error" not in log, log[-3000:]
    assert "Bad Request" not in log, log[-3000:]


def test_a_database_locked_past_its_timeout_is_a_503_and_nothing_is_appended(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    with serving(tmp_path, db, SQLITE_TIMEOUT_S="1") as (site, learner):
        before = count_events(db)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            assert_honest_503s(site, learner, "locked", "The database is busy")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert count_events(db) == before
        assert learner.deposit("9").status == 200  # the lock gone, the same learner goes on
        assert count_events(db) == before + 1


def test_a_read_only_database_is_a_503_and_nothing_is_appended(tmp_path, template_db):
    needs_root_for_mounts()
    # A read-only remount waits for every file opened for writing to close (the embedded projector keeps its
    # connection), so the site is restarted over the read-only mount: the learner's session is in the file.
    with tmpfs(tmp_path / "ro", "64m") as folder:
        db = copy_database(template_db, folder / "db.sqlite3")
        with serving(tmp_path, db) as (_, learner):
            pass
        before = count_events(db)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        try:
            site = Site(tmp_path / "site-ro.log", SQLITE_PATH=str(db))
            try:
                learner.base = site.base
                assert_honest_503s(site, learner, "read-only", "read-only")
            finally:
                site.stop()
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
        assert count_events(db) == before
        with serving(tmp_path, db):
            assert count_events(db) == before + 1  # serving() deposits once: writable again


def test_a_full_disk_is_a_503_and_nothing_is_half_written(tmp_path, template_db):
    needs_root_for_mounts()
    with tmpfs(tmp_path / "small", "8m") as folder:
        db = copy_database(template_db, folder / "db.sqlite3")
        with serving(tmp_path, db) as (site, learner):
            before = count_events(db)
            filler = folder / "filler"
            with contextlib.suppress(OSError), open(filler, "wb") as out:
                while True:
                    out.write(b"\0" * 4096)
                    out.flush()
            done = assert_honest_503s(site, learner, "full", "disk is full", fits=True)
            filler.unlink()
            assert count_events(db) == before + done  # each 503 appended nothing, each 200 its whole event
            with sqlite3.connect(db) as check:
                assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert learner.deposit("9").status == 200
            assert count_events(db) == before + done + 1


def returning_visitor_cookie(base: str) -> http.cookiejar.Cookie:
    """A session cookie as a returning visitor's browser sends it (the session row is in the unreachable database)."""
    host = base.split("//")[1].split(":")[0]
    return http.cookiejar.Cookie(
        0, "sessionid", "a" * 32, None, False, host, False, False, "/", True, False, None, False, None, None, {}
    )


def test_an_unreachable_postgresql_is_a_503_for_every_page_with_one_log_line(tmp_path):
    closed = free_port()
    site = Site(tmp_path / "site.log", DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/reqflow_fail")
    try:
        # A new visitor's page reads nothing from the database (6242348): it is served whole.
        assert Learner(site.base).get("/lab/").status == 200
        # A returning one's pages read the session first: each is a 503.
        learner = Learner(site.base)
        learner.jar.set_cookie(returning_visitor_cookie(site.base))
        for _ in range(N):
            page = learner.get("/lab/")
            assert page.status == 503 and int(page.headers["Retry-After"]) > 0
            assert "cannot be reached" in page.body and 'data-kind="unavailable"' in page.body
            fragment = learner.get("/lab/state/", htmx=True)
            assert fragment.status == 503 and "cannot be reached" in fragment.body
            assert fragment.body.startswith('<div id="lab-command-result"')
            asked = learner.get("/lab/query/", htmx=True)  # an async view: the same 503
            assert asked.status == 503 and "cannot be reached" in asked.body and "Retry-After" in asked.headers
        assert_one_line(site.log(), "database unavailable: answering 503")
    finally:
        site.stop()
