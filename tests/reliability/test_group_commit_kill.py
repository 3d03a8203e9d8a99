"""A SIGKILL in the middle of group commits loses no acknowledged command.

A real daphne serves a SQLite file (WAL, synchronous=FULL, as `make run` does); 16 learners post deposits as
fast as they are answered, so their commands share commits (lab.store.group_commit). The server is killed with
SIGKILL while commands are in flight, then started again on the same file. Every command answered 200 before the
kill must be in the store exactly once, and each stream's versions must still run 1, 2, 3 without a gap; the
same learners then go on where they were.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.reliability.live import Learner, Site, copy_database, migrate

pytestmark = [pytest.mark.long]

LEARNERS = 16
ACKED_BEFORE_KILL = 200  # kill once this many commands were answered (or after KILL_AFTER_S)
KILL_AFTER_S = 8.0


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("group-commit-template") / "db.sqlite3"
    migrate(path)
    return path


def stored_commands(db: Path) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Per command id how many events carry it; per stream its versions in position order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        counts = dict(conn.execute("SELECT command_id, count(*) FROM concepts_storedevent GROUP BY command_id"))
        streams: dict[str, list[int]] = {}
        for stream_id, version in conn.execute("SELECT stream_id, version FROM concepts_storedevent ORDER BY position"):
            streams.setdefault(stream_id, []).append(version)
        return counts, streams
    finally:
        conn.close()


def test_sigkill_mid_batch_loses_no_acknowledged_command(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db))
    try:
        learners = [Learner(site.base) for _ in range(LEARNERS)]
        for learner in learners:  # a page for the CSRF cookie, then a first command: the learner's sandbox
            assert learner.get("/lab/").status == 200
            assert (
                learner.post("/lab/command/", {"kind": "deposit", "amount": "1", "command_id": "first"}).status == 200
            )

        acked: list[str] = []
        cut_off: list[str] = []  # sent, and no answer came: in flight when the server died
        lock, stop = threading.Lock(), threading.Event()

        def post_until_killed(i: int) -> None:
            n = 0
            while not stop.is_set():
                command_id = f"k{i}-{n}"
                n += 1
                try:
                    answer = learners[i].post(
                        "/lab/command/", {"kind": "deposit", "amount": "1", "command_id": command_id}
                    )
                except OSError:  # the connection died with the server: this command's fate is unknown
                    with lock:
                        cut_off.append(command_id)
                    return
                if answer.status == 200:
                    with lock:
                        acked.append(command_id)

        threads = [threading.Thread(target=post_until_killed, args=(i,)) for i in range(LEARNERS)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + KILL_AFTER_S
        while len(acked) < ACKED_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(site.process.pid, signal.SIGKILL)
        site.process.wait(10)
        with lock:
            acked_at_kill = list(acked)
        stop.set()
        for t in threads:
            t.join(90)
        assert not any(t.is_alive() for t in threads)
    finally:
        site.stop()

    assert len(acked_at_kill) >= 50, f"too few commands were answered before the kill: {len(acked_at_kill)}"
    assert cut_off, "no command was in flight when the server was killed"

    again = Site(tmp_path / "again.log", SQLITE_PATH=str(db))
    try:
        counts, streams = stored_commands(db)
        lost = [c for c in acked_at_kill if counts.get(c) != 1]
        assert lost == [], f"{len(lost)} acknowledged command(s) not stored exactly once: {lost[:10]}"
        assert all(n == 1 for c, n in counts.items() if c != "first"), "a command id stored twice"
        for stream_id, versions in streams.items():
            assert versions == list(range(1, len(versions) + 1)), f"{stream_id} has a gap: {versions}"
        # The same learners (their sessions are in the database) go on after the restart.
        for learner in learners[:4]:
            learner.base = again.base
            assert learner.get("/lab/").status == 200
            assert learner.post("/lab/command/", {"kind": "deposit", "amount": "2"}).status == 200
        _counts, after = stored_commands(db)
        assert sum(map(len, after.values())) == sum(map(len, streams.values())) + 4
    finally:
        again.stop()
