"""Integrity at start: `manage.py check_store` (the first step of `make run`) refuses a damaged SQLite file with
one line naming it and what to do; and a restarted site's embedded projector catches up with pending events by
itself, before any request arrives."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.live import ROOT, Site, copy_database, migrate, site_env


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    migrate(path)
    return path


def check_store(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check_store"],
        cwd=ROOT, env=site_env(SQLITE_PATH=str(path)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_check_store_passes_a_sound_file_and_refuses_a_damaged_one_in_one_line(tmp_path, template_db):
    sound = copy_database(template_db, tmp_path / "sound.sqlite3")
    assert check_store(sound).returncode == 0
    broken = copy_database(template_db, tmp_path / "broken.sqlite3")
    data = bytearray(broken.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = b"\xa5" * 8192  # two pages in the middle of the file
    broken.write_bytes(bytes(data))
    result = check_store(broken)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(broken) in lines[0] and "damaged" in lines[0] and "restore a backup" in lines[0]
    assert "Traceback" not in result.stderr


def test_the_make_run_target_checks_the_store_before_serving():
    makefile = (ROOT / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") :]
    run = run[: run.index("\n\n")]
    assert run.index("manage.py check_store") < run.index("daphne")


PENDING = """
from lab import commands
from lab.models import Sandbox
sandbox = Sandbox.objects.create(lag_ms=0, replay_rate=0)
for amount in ("5", "7", "11"):
    commands.send_command(sandbox, "deposit", amount)
print(sandbox.pk.hex)
"""


def read_version(path: Path, sandbox_hex: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute(
            "SELECT max(version) FROM concepts_balanceview WHERE sandbox_id = ?", (sandbox_hex,)
        ).fetchone()
        return int(row[0] or 0)
    finally:
        db.close()


def test_a_restarted_site_projects_pending_events_before_any_request(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    made = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PENDING],
        cwd=ROOT, env=site_env(SQLITE_PATH=str(db), EMBEDDED_PROJECTOR="0"), capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    sandbox_hex = made.stdout.strip().splitlines()[-1]
    assert read_version(db, sandbox_hex) == 0  # three events in the log, none projected
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db))
    try:
        deadline = time.monotonic() + 30
        while read_version(db, sandbox_hex) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert read_version(db, sandbox_hex) == 3, site.log()[-3000:]
        assert '"GET' not in site.log() and '"POST' not in site.log()  # no request was made
    finally:
        site.stop()
