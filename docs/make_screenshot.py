"""Regenerate docs/concept-page.png, the README's picture of the CQRS & Event Sourcing page.

    make screenshot

Serves the site as `make run` does (DEBUG off, collected static files, a throwaway database) on a free port and
photographs the top of the concept page with Playwright driving Debian's chromium.
"""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from lighthouse import CHROME, server_env, start_daphne  # noqa: E402

OUTPUT = ROOT / "docs" / "concept-page.png"
PAGE = "/concepts/cqrs-event-sourcing/"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="reqflow-screenshot-") as tmp:
        workdir = Path(tmp)
        process, port = start_daphne(server_env(workdir), workdir / "daphne.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROME, args=["--no-sandbox", "--disable-gpu"])
                context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme="light")
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}{PAGE}")
                stage_the_lab(page)
                page.screenshot(path=OUTPUT)
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


def stage_the_lab(page: Page) -> None:
    """What a learner sees a few seconds in: two deposits applied, a third in flight on the projector's track."""
    page.wait_for_selector('[data-live-status][data-state="live"]', timeout=15_000)
    for amount in ("50", "20"):
        page.get_by_test_id("amount").fill(amount)
        page.get_by_test_id("deposit").click()
        page.wait_for_timeout(400)
    lag = page.get_by_test_id("lag")
    lag.evaluate("el => { el.value = '4'; el.dispatchEvent(new Event('input', {bubbles: true})); }")
    page.wait_for_selector('#lab-versions[data-lag="4.0"]', state="attached", timeout=15_000)
    page.wait_for_selector('[data-testid="event-token"][data-state="applied"]', timeout=15_000)
    page.get_by_test_id("amount").fill("35")
    page.get_by_test_id("deposit").click()
    page.wait_for_selector('[data-testid="event-token"][data-state="in-flight"]', timeout=15_000)
    page.wait_for_timeout(1500)  # the token is part way along the track
    page.evaluate("window.scrollTo(0, 0)")


if __name__ == "__main__":
    main()
