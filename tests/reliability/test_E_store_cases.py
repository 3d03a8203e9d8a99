"""Store cases of the failure catalogue (tests/reliability/CATALOGUE.md): E3, E5 and the issue's I22.

E3 on SQLite and PostgreSQL (`backend`) with real commits and rollbacks; E5 and I22 with real processes on one
SQLite file (several processes on one file is the SQLite case; PostgreSQL's concurrent writers are E1 and E2).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection, transaction

from lab import queries, timeline
from lab.models import StoredEvent
from lab.projector import drain
from tests.integration.lab_events import append, new_sandbox
from tests.reliability.live import ROOT, Learner, Site, copy_database, migrate, site_env


class RolledBack(Exception):
    pass


# --- E3: a hole left by a rolled-back append ----------------------------------------------------------------------


@pytest.mark.backend
@pytest.mark.django_db(transaction=True)
def test_E3_a_rolled_back_append_leaves_a_hole_the_projector_passes_without_a_phantom():
    sandbox = new_sandbox()
    first = append(sandbox, "Deposited", "10.00")
    with pytest.raises(RolledBack), transaction.atomic():
        append(sandbox, "Deposited", "999.00")  # takes a position (on PostgreSQL a sequence value it never returns)
        raise RolledBack
    last = append(sandbox, "Deposited", "5.00")
    assert list(StoredEvent.objects.filter(sandbox=sandbox).values_list("version", flat=True)) == [1, 2]
    if connection.vendor == "postgresql":
        assert last.position > first.position + 1  # the hole is real
    started = time.monotonic()
    drain([sandbox.pk])
    assert time.monotonic() - started < 5  # passed at once, never waited for the missing position
    answer = queries.query(sandbox)
    assert (answer.balance, answer.read_version) == (Decimal("15.00"), 2)  # no phantom 999
    assert timeline.write_side(sandbox).balance == Decimal("15.00")
    assert not StoredEvent.objects.filter(payload__amount="999.00").exists()


# --- E5: four processes on one SQLite file -----------------------------------------------------------------------

WRITER = """
import json, sys
import django
django.setup()
from lab import commands
from lab.models import Sandbox
sandbox = Sandbox.objects.create(lag_ms=0, replay_rate=0)
outcomes = [commands.send_command(sandbox, "deposit", "1") for _ in range(int(sys.argv[1]))]
print(json.dumps({"sandbox": str(sandbox.pk), "accepted": sum(o.accepted for o in outcomes)}))
"""


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    migrate(path)
    return path


@pytest.mark.long  # about 15 s: four Django processes start and write
def test_E5_four_processes_appending_to_one_sqlite_file_lose_nothing_and_never_fail(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    env = site_env(SQLITE_PATH=str(db), DJANGO_SETTINGS_MODULE="reqflow.settings", EMBEDDED_PROJECTOR="0")
    each = 40
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(each)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    results = []
    for writer in writers:
        out, err = writer.communicate(timeout=180)
        assert writer.returncode == 0, err[-3000:]
        assert "database is locked" not in err and "Traceback" not in err, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["accepted"] for r in results] == [each] * 4
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as check:
        for r in results:
            versions = [row[0] for row in check.execute(
                "SELECT version FROM concepts_storedevent WHERE sandbox_id = ? ORDER BY position",
                (r["sandbox"].replace("-", ""),),
            )]  # fmt: skip
            assert versions == list(range(1, each + 1))
        positions = [row[0] for row in check.execute("SELECT position FROM concepts_storedevent ORDER BY position")]
    assert len(positions) == len(set(positions)) == 4 * each


# --- I22: rebuild_projection beside a running projector ----------------------------------------------------------


def balance_row(db: Path) -> tuple[str, int, int]:
    """(amount, version, events) of the one sandbox's live balance model."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as check:
        amount, version = check.execute(
            "SELECT b.amount, b.version FROM concepts_balanceview b JOIN concepts_sandbox s ON s.id = b.sandbox_id"
            " WHERE b.generation = s.live_generation AND s.retired_at IS NULL"
        ).fetchone()
        events = check.execute("SELECT count(*) FROM concepts_storedevent").fetchone()[0]
    return str(amount), int(version), int(events)


@pytest.mark.long  # about 30 s: a live site, 3 rebuilds, up to 200 deposits
def test_I22_rebuild_projection_completes_while_a_projector_runs_and_commands_arrive(tmp_path, template_db):
    db = copy_database(template_db, tmp_path / "db.sqlite3")
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db))
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200
        assert learner.post("/lab/lag/", {"lag": "0"}, target="lab-projector-result").status == 200
        statuses: list[int] = []
        done = threading.Event()

        def deposits() -> None:
            while not done.is_set() and len(statuses) < 200:
                statuses.append(learner.deposit("1").status)

        sender = threading.Thread(target=deposits)
        sender.start()
        env = site_env(SQLITE_PATH=str(db), DJANGO_SETTINGS_MODULE="reqflow.settings")
        try:
            runs = [subprocess.run([sys.executable, "manage.py", "rebuild_projection"], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=120) for _ in range(3)]  # fmt: skip
        finally:
            done.set()
            sender.join(60)
        for run in runs:
            assert run.returncode == 0, run.stderr[-3000:]
            assert "busy" not in (run.stdout + run.stderr).lower() and "Traceback" not in run.stderr
            assert "rebuilt 1 sandbox(es)" in run.stdout
        assert statuses and set(statuses) == {200}, statuses
        deadline = time.monotonic() + 30
        while (row := balance_row(db))[1] != row[2]:
            assert time.monotonic() < deadline, f"the read model stayed at {row}"
            time.sleep(0.2)
        amount, version, events = row
        assert Decimal(amount) == Decimal(events) and version == events == len(statuses)
        assert "Traceback" not in site.log(), site.log()[-3000:]
    finally:
        site.stop()
