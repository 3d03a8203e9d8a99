"""The lab in chromium when the database is locked past its timeout (another connection's BEGIN EXCLUSIVE on the
file of a daphne subprocess, SQLITE_TIMEOUT_S=1): the command's slot says so, the panel stays as it was, the
status line says it is retrying, nothing is appended; once the lock is gone the page asks for the state by itself
after Retry-After and the status line is live again."""

from __future__ import annotations

import sqlite3

import pytest
from playwright.sync_api import expect

from tests.reliability.live import Site, count_events, migrate

pytestmark = [pytest.mark.browser]


def test_a_locked_database_keeps_the_lab_says_why_and_recovers_by_itself(page, tmp_path):
    db = tmp_path / "db.sqlite3"
    migrate(db)
    site = Site(tmp_path / "site.log", SQLITE_PATH=str(db), SQLITE_TIMEOUT_S="1")
    try:
        page.goto(site.base + "/lab/")
        page.get_by_test_id("deposit").click()
        expect(page.locator("#lab-command-result")).to_contain_text("Accepted")
        expect(page.locator("#lab-live-status")).to_have_attribute("data-state", "live")
        before = count_events(db)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            page.get_by_test_id("deposit").click()
            expect(page.locator("#lab-command-result")).to_contain_text("The database is busy", timeout=15_000)
            expect(page.locator("#lab-live-status")).to_have_attribute("data-state", "retrying")
            expect(page.locator("#lab-versions")).to_have_count(1)  # the panel was not swapped away
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert count_events(db) == before
        # Retry-After (5 s for a lock) later, the page fetched the state on its own: live again.
        expect(page.locator("#lab-live-status")).to_have_attribute("data-state", "live", timeout=20_000)
        assert '"GET /lab/state/" 200' in site.log()
    finally:
        site.stop()
