"""`-m browser` and `-m "not browser"` (make test-fast) select by the marker, so the marker must be on the browser
tests before pytest's `-m` deselection runs, not added by a hook after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROWSER = "tests/browser/"


def collected(*args: str) -> set[str]:
    """The node ids `pytest --collect-only` lists for `args`, from a fresh process in the repository root."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}  # an outer `-m` would skew the answer
    env.setdefault("REQFLOW_TEST_DB", ".test_db.sqlite3")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    # 5: nothing collected, which is a valid answer here; anything else (collection errors) is not.
    assert result.returncode in (0, 5), f"pytest {' '.join(args)} exited {result.returncode}:\n{result.stdout[-4000:]}"
    return {line for line in result.stdout.splitlines() if "::" in line and not line.startswith(" ")}


def test_marker_browser_selects_exactly_the_tests_under_tests_browser():
    every_browser_test = collected(BROWSER)
    assert every_browser_test, "nothing collected under tests/browser/"
    assert all(node.startswith(BROWSER) for node in every_browser_test)
    selected = collected("-m", "browser")  # the whole suite (testpaths), so a stray marker elsewhere shows too
    assert sorted(selected - every_browser_test) == [], "marked browser outside tests/browser/"
    assert sorted(every_browser_test - selected) == [], "under tests/browser/ but not selected by -m browser"


def test_marker_not_browser_leaves_every_test_under_tests_browser_out():
    # Only tests/browser/ is collected: the rest of the suite is not in question, and in CI its `redis` tests
    # would stop a collection without REDIS_URL.
    assert sorted(collected("-m", "not browser", BROWSER)) == []
