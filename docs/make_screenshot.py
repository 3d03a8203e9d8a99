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

from playwright.sync_api import sync_playwright

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
                context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="light")
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}{PAGE}")
                page.wait_for_load_state("networkidle")
                page.screenshot(path=OUTPUT)
                browser.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
