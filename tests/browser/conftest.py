"""A live daphne (the real ASGI app, WebSockets and the in-process projector) and Debian's chromium.

Each line that is not obvious says why it is here (Debian chromium, a forked daphne, fresh thread pools).
"""

from __future__ import annotations

import os

# Playwright's sync API leaves an event loop running in the main thread; Django would refuse ORM calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from functools import partial
from pathlib import Path

import pytest
from channels.testing.live import make_application, set_database_connection
from daphne.testing import DaphneProcess
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
AXE_JS = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def _setup_server_process() -> None:
    """Runs inside the forked daphne: use the test database and run the projector as `make run` does."""
    import warnings

    from django.conf import settings

    # The fork inherits pytest's "warnings are errors". In the server that turns Django's warning about
    # WhiteNoise's synchronous file iterator into an exception mid-response, and every static file hangs.
    warnings.resetwarnings()
    # A fork keeps no threads: if an earlier test in this session used asgiref's shared sync thread (any
    # sync_to_async or database_sync_to_async call), the copied executor points at a dead worker and every
    # thread-sensitive call in the server (session loading for WebSockets, for one) would wait forever.
    # Channel layers hold asyncio objects from the parent's loops: start from fresh ones too.
    from concurrent.futures import ThreadPoolExecutor

    from asgiref.sync import SyncToAsync
    from channels.layers import channel_layers

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
    channel_layers.backends.clear()
    set_database_connection()
    settings.EMBEDDED_PROJECTOR = True


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def live_url(django_db_setup, django_db_blocker):
    connections.close_all()
    process = DaphneProcess("127.0.0.1", partial(make_application, static_wrapper=None), setup=_setup_server_process)
    with django_db_blocker.unblock():
        process.start()
    if not process.ready.wait(20):
        process.terminate()
        raise RuntimeError("daphne did not start within 20 s")
    yield f"http://127.0.0.1:{process.port.value}"
    process.terminate()
    process.join(10)


@pytest.fixture
def axe(page):
    """Run axe-core (pinned in package.json, injected from node_modules) and return its violations."""

    def run() -> list[dict]:
        # evaluate() runs through the devtools protocol, so our strict CSP (script-src 'self') does not block it.
        page.evaluate(AXE_JS.read_text())
        result = page.evaluate(
            "() => axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa','best-practice']})"
        )
        return [
            {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]
        ]

    return run


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The `browser` marker is not added here: this hook runs after `-m` has selected the tests, so a marker
    # added now would not count. Each module says `pytestmark = [pytest.mark.browser, ...]` instead, and
    # tests/unit/test_test_selection.py checks that `-m browser` selects exactly the tests under tests/browser/.
    # Browser tests last: Playwright's sync API keeps an event loop running in the main thread for the rest of
    # the session, and every async test after it fails with "Cannot run the event loop while another loop is
    # running". A stable sort keeps the random order within each group.
    items.sort(key=lambda item: "tests/browser/" in str(item.fspath))
