"""Teaching, in Debian's chromium against a live daphne: missions met by clicking only, a "Try it" scenario beside
a claim of each group, the guided reveal of tools, and the shared link. Generous waits, no tight timings."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_lab import SLOW, deposit_and_wait, open_lab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def mission(page: Page, mission_id: str):
    return page.locator(f'[data-testid="mission"][data-mission="{mission_id}"]')


def click_slider_at(page: Page, testid: str, fraction: float) -> None:
    """A click on the slider's track, as a learner would: the value jumps to where they clicked."""
    slider = page.get_by_test_id(testid)
    box = slider.bounding_box()
    assert box is not None
    slider.click(position={"x": box["width"] * fraction, "y": box["height"] / 2})


def test_a_learner_meets_the_first_three_missions_by_clicking_only(page: Page, live_url):
    open_lab(page, live_url, guided=True)
    progress = page.get_by_test_id("mission-progress")
    expect(progress).to_have_attribute("value", "0")
    # The lab starts with the core loop: the lag and read-your-writes arrive with their missions.
    expect(page.get_by_test_id("lag")).to_be_hidden()
    expect(page.get_by_label("Read your writes")).to_be_hidden()
    expect(page.locator("#lab-rebuild-section")).to_be_hidden()

    # 1. Deposit and watch the read model catch up (the default lag is 2 s).
    page.get_by_test_id("deposit").click()
    expect(mission(page, "watch-it-trail")).to_have_attribute("data-done", "true", timeout=SLOW)
    expect(progress).to_have_attribute("value", "1")
    expect(page.locator(".lab-mission-now")).to_contain_text("Get a stale answer")

    # 2. The lag control has arrived: set it past 5 s, deposit, query before the projector applies it.
    expect(page.get_by_test_id("lag")).to_be_visible()
    click_slider_at(page, "lag", 0.8)
    expect(page.locator("#lab-versions")).to_have_attribute("data-lag", re.compile(r"^([5-9]|10)\.\d$"), timeout=SLOW)
    page.get_by_test_id("deposit").click()
    expect(page.get_by_test_id("write-version")).to_have_text("2", timeout=SLOW)
    page.get_by_test_id("query").click()
    expect(page.get_by_test_id("query-result")).to_contain_text("stale")
    expect(mission(page, "stale-read")).to_have_attribute("data-done", "true", timeout=SLOW)

    # 3. Read your writes: the query waits (at most 5 s) for the command's version and answers fresh.
    ryw = page.get_by_label("Read your writes")
    expect(ryw).to_be_visible()
    click_slider_at(page, "lag", 0.3)
    expect(page.locator("#lab-versions")).to_have_attribute("data-lag", re.compile(r"^[1-4]\.\d$"), timeout=SLOW)
    expect(page.get_by_test_id("read-version")).to_have_text("2", timeout=SLOW)
    page.get_by_test_id("deposit").click()
    expect(page.get_by_test_id("write-version")).to_have_text("3", timeout=SLOW)
    ryw.click()
    page.get_by_test_id("query").click()
    expect(page.get_by_test_id("query-result")).to_contain_text("Waited", timeout=SLOW)
    expect(page.get_by_test_id("query-result")).not_to_contain_text("stale")
    expect(mission(page, "read-your-writes")).to_have_attribute("data-done", "true", timeout=SLOW)
    expect(progress).to_have_attribute("value", "3")


@pytest.mark.parametrize(
    ("section", "scenario"),
    [
        ("why-use-it", "retroactive-model"),
        ("what-it-costs-you", "stale-reads"),
        ("gotchas", "separate-patterns"),
        ("architectures", "payment-ledger"),
    ],
)
def test_a_try_it_beside_a_claim_loads_its_scenario_into_the_lab(page: Page, live_url, section, scenario):
    open_lab(page, live_url)
    deposit_and_wait(page, "1", 1)
    link = page.locator(f"#{section}").locator(f'[data-testid="scenario-link"][data-scenario="{scenario}"]')
    expect(link).to_be_visible()
    link.click()
    result = page.locator("#lab-scenario-result")
    expect(result).not_to_be_empty(timeout=SLOW)
    expect(result).to_be_in_viewport()
    # A fresh sandbox with the scenario's events (a reset the learner can undo), and a sentence on what to notice.
    expect(page.get_by_test_id("reset-undo")).to_be_attached()
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live", timeout=SLOW)


def test_show_all_tools_reveals_everything_and_is_remembered(page: Page, live_url):
    open_lab(page, live_url, guided=True)
    expect(page.locator("#lab-time-travel")).to_be_hidden()
    page.get_by_test_id("show-all-tools").click()
    for tool in ("#lab-time-travel", "#lab-rebuild-section", "#lab-schema-section"):
        expect(page.locator(tool)).to_be_visible()
    expect(page.get_by_test_id("lag")).to_be_visible()
    page.reload()
    expect(page.locator("#lab-time-travel")).to_be_visible()
    expect(page.get_by_test_id("show-all-tools")).to_have_attribute("aria-pressed", "true")


def test_copy_link_then_another_learner_loads_the_situation_into_their_own_sandbox(browser, live_url):
    first = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = open_lab(first.new_page(), live_url)
    page.locator("#what-it-costs-you").locator('[data-scenario="stale-reads"]').click()
    expect(page.locator("#lab-scenario-result")).not_to_be_empty(timeout=SLOW)
    page.get_by_test_id("copy-link").click()
    expect(page.locator("[data-share-status]")).to_contain_text("Link copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert "scenario=stale-reads" in link and "lag=5" in link
    written = page.get_by_test_id("write-version").text_content()

    second = browser.new_context()
    other = second.new_page()
    other.goto(link)
    expect(other.get_by_test_id("load-shared")).to_be_visible()
    expect(other.get_by_test_id("write-version")).to_have_text("0")  # nothing changes until they confirm
    other.get_by_test_id("load-shared").click()
    expect(other.get_by_test_id("write-version")).to_have_text(written or "", timeout=SLOW)
    expect(other.locator("#lab-versions")).to_have_attribute("data-lag", "5.0")
    # Their own sandbox: a command there does not reach the first learner's.
    deposit_and_wait(other, "7", int(written or 0) + 1)
    expect(page.get_by_test_id("write-version")).to_have_text(written or "")
    first.close()
    second.close()
