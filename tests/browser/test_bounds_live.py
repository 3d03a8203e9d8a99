"""In chromium against the live daphne: a page opened by a brand-new visitor (no cookie, so no session and no
sandbox) stays live through the first command, which creates both; and a page closed because too many lab pages
are open says so, and neither polls nor reconnects."""

from __future__ import annotations

import pytest
from django.conf import settings
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.test_lab import CONCEPT, SLOW, deposit_and_wait, open_lab, set_lag

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_new_visitors_page_goes_live_with_the_first_command(page: Page, live_url):
    open_lab(page, live_url)  # live: its socket waits for a sandbox
    assert not [c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME]
    expect(page.get_by_test_id("write-version")).to_have_text("0")
    set_lag(page, "0.5")  # the first action: it creates the sandbox, and the setting sticks
    deposit_and_wait(page, "5", 1)
    # The socket reconnected with the new session: the projector's progress arrives by push, not by polling.
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live", timeout=SLOW)
    expect(page.get_by_test_id("read-version")).to_have_text("1", timeout=SLOW)
    assert page.locator("#lab-poller").count() == 0
    deposit_and_wait(page, "2", 2)
    expect(page.get_by_test_id("read-version")).to_have_text("2", timeout=SLOW)
    expect(page.locator("#lab-versions")).to_have_attribute("data-lag", "0.5")


def test_the_oldest_page_past_the_cap_says_why_it_was_closed(context: BrowserContext, live_url):
    limit = settings.LAB_MAX_SOCKETS_PER_SESSION
    pages = [open_lab(context.new_page(), live_url)]
    deposit_and_wait(pages[0], "5", 1)
    for _ in range(limit):
        pages.append(context.new_page())
        pages[-1].goto(live_url + CONCEPT)
        expect(pages[-1].locator("[data-live-status]")).to_have_attribute("data-state", "live", timeout=SLOW)
    status = pages[0].locator("[data-live-status]")
    expect(status).to_have_attribute("data-state", "closed", timeout=SLOW)
    expect(status).to_contain_text(f"This page was closed because you opened more than {limit} lab pages")
    pages[0].wait_for_timeout(1500)  # neither polling nor reconnecting meanwhile
    assert pages[0].locator("#lab-poller").count() == 0
    expect(status).to_have_attribute("data-state", "closed")
    for other in pages[1:]:
        expect(other.locator("[data-live-status]")).to_have_attribute("data-state", "live")
    for each in pages:
        each.close()
