"""The lab as one pipeline on one screen (write model → event log → projector → read model), in Debian's chromium
against a live daphne: what a learner sees move, and every wait made visible.

Waits are generous and nothing asserts a tight timing: the machine is a busy 2-core box.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_lab import SLOW, command, deposit_and_wait, open_lab, open_tool, set_lag

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

STAGES = ("lab-write", "lab-log", "lab-projector", "lab-read")


def box(page: Page, selector: str) -> dict:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def test_at_1366x900_the_four_stages_and_their_controls_share_one_viewport(page: Page, live_url):
    page.set_viewport_size({"width": 1366, "height": 900})
    open_lab(page, live_url)
    deposit_and_wait(page, "50", 1)
    page.evaluate("document.getElementById('lab').scrollIntoView({block: 'start'})")
    stages = [box(page, f"#{s}") for s in STAGES]
    # Left to right, in one row.
    assert [s["x"] for s in stages] == sorted(s["x"] for s in stages)
    assert len({round(s["y"]) for s in stages}) == 1
    for testid in ("pipeline", "amount", "deposit", "withdraw", "lag", "query", "projector-status"):
        b = box(page, f'[data-testid="{testid}"]')
        assert 0 <= b["y"] and b["y"] + b["height"] <= 900, (testid, b)
    # The lab spans the content width, and the table of contents steps aside: it starts below the lab.
    assert box(page, '[data-testid="pipeline"]')["width"] > 1100
    assert box(page, ".toc")["y"] >= box(page, "#try-it")["y"] + box(page, "#try-it")["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_below_1100px_the_pipeline_runs_top_to_bottom(page: Page, live_url):
    page.set_viewport_size({"width": 1024, "height": 800})
    open_lab(page, live_url)
    stages = [box(page, f"#{s}") for s in STAGES]
    assert [s["y"] for s in stages] == sorted(s["y"] for s in stages)
    assert len({round(s["x"]) for s in stages}) == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024


def test_a_token_travels_for_the_lag_then_reaches_the_read_model(page: Page, live_url):
    open_lab(page, live_url)
    set_lag(page, "4")
    command(page, "deposit", "25")
    token = page.locator('[data-testid="event-token"][data-seq="1"][data-state="in-flight"]')
    expect(token).to_be_visible(timeout=SLOW)
    # It moves along the projector's track as the lag is spent, and says how long is left.
    first = float(token.evaluate("el => getComputedStyle(el).getPropertyValue('--p') || '0'") or 0)
    page.wait_for_timeout(1200)
    later = float(token.evaluate("el => getComputedStyle(el).getPropertyValue('--p') || '0'") or 0)
    assert 0 <= first < later <= 1
    expect(token.locator(".lab-countdown")).to_contain_text(re.compile(r"applies in \d+\.\d s|applying"))
    expect(page.get_by_test_id("read-version")).to_have_text("0")
    applied = page.locator('[data-testid="event-token"][data-seq="1"][data-state="applied"]')
    expect(applied).to_be_visible(timeout=SLOW)
    expect(token).to_have_count(0)
    expect(page.get_by_test_id("read-version")).to_have_text("1")
    expect(page.get_by_test_id("read-balance")).to_have_text("$25.00")


def test_the_read_your_writes_wait_is_shown_while_it_happens(page: Page, live_url):
    open_lab(page, live_url)
    set_lag(page, "3")
    deposit_and_wait(page, "30", 1)
    page.get_by_label("Read your writes").check()
    page.get_by_test_id("query").click()
    wait = page.get_by_test_id("ryw-wait")
    expect(wait).to_be_visible()
    expect(wait).to_contain_text("Waiting for the read model to reach v=1")
    expect(page.get_by_test_id("query-result")).to_contain_text("$30.00", timeout=SLOW)
    expect(wait).to_contain_text("Waited")


def test_a_slow_rebuild_shows_its_progress_the_fold_and_both_read_models(page: Page, live_url):
    open_lab(page, live_url)
    set_lag(page, "0")
    for n in range(1, 9):
        deposit_and_wait(page, "5", n)
    expect(page.get_by_test_id("read-version")).to_have_text("8", timeout=SLOW)
    open_tool(page, "Rebuild")
    page.get_by_test_id("rebuild-speed").select_option("2")
    expect(page.locator("#lab-rebuild-result")).to_contain_text("2 events a second", timeout=SLOW)
    page.get_by_test_id("rebuild").click()
    progress = page.get_by_test_id("rebuild-progress")
    expect(progress).to_have_attribute("data-total", "8", timeout=SLOW)
    # Part way: some events replayed, not all, with the arithmetic of the step and the new model beside the old.
    expect(progress).to_have_attribute("data-done", re.compile(r"^[1-7]$"), timeout=SLOW)
    expect(page.get_by_test_id("rebuild-fold")).to_contain_text(re.compile(r"\$\d+\.\d\d \+ \$5\.00 = \$\d+\.\d\d"))
    expect(page.get_by_test_id("rebuild-model")).to_be_visible()
    expect(page.get_by_test_id("read-balance")).to_have_text("$40.00")
    page.get_by_test_id("query").click()
    result = page.get_by_test_id("query-result")
    expect(result).to_contain_text("$40.00")
    expect(result).to_contain_text("new read model")
    expect(progress).to_have_attribute("data-done", "8", timeout=SLOW)
    expect(page.get_by_test_id("rebuild-model")).to_have_count(0, timeout=SLOW)
    expect(page.get_by_test_id("read-balance")).to_have_text("$40.00")


def test_a_poison_event_stalls_the_projector_until_it_is_skipped(page: Page, live_url):
    open_lab(page, live_url)
    set_lag(page, "0")
    deposit_and_wait(page, "10", 1)
    expect(page.get_by_test_id("read-version")).to_have_text("1", timeout=SLOW)
    page.get_by_test_id("poison").click()
    status = page.get_by_test_id("projector-status")
    expect(status).to_contain_text("stalled", timeout=SLOW)
    expect(page.locator("#lab-projection")).to_contain_text("#2")
    # Commands still succeed; the read model waits behind the poison event.
    deposit_and_wait(page, "5", 3)
    page.wait_for_timeout(800)
    expect(page.get_by_test_id("read-version")).to_have_text("1")
    page.get_by_test_id("retry").click()
    expect(page.locator("#lab-projector-result")).to_contain_text("Retr", timeout=SLOW)
    expect(status).to_contain_text("stalled", timeout=SLOW)
    page.get_by_test_id("skip").click()
    expect(status).to_contain_text("running", timeout=SLOW)
    expect(page.get_by_test_id("read-version")).to_have_text("3", timeout=SLOW)
    expect(page.get_by_test_id("read-balance")).to_have_text("$15.00")
    expect(page.locator(".lab-dead-letters")).to_contain_text("1 skipped event")


def test_time_travel_by_time_of_day(page: Page, live_url):
    open_lab(page, live_url)
    deposit_and_wait(page, "10", 1)
    first = page.get_by_test_id("event-row").first.locator("time").get_attribute("datetime")
    page.wait_for_timeout(1100)  # the next event lands in a later second
    deposit_and_wait(page, "20", 2)
    open_tool(page, "Time travel")
    at = re.search(r"T(\d\d:\d\d:\d\d)", first or "").group(1)
    page.get_by_test_id("time-travel-at").fill(at)
    page.get_by_test_id("time-travel-at").press("Enter")
    state = page.get_by_test_id("time-travel-state")
    expect(state).to_contain_text("v=1", timeout=SLOW)
    expect(state).to_contain_text("$10.00")


def test_reset_can_be_undone_and_keeps_focus_in_the_lab(page: Page, live_url):
    open_lab(page, live_url)
    deposit_and_wait(page, "10", 1)
    open_tool(page, "Sandbox")
    page.get_by_test_id("reset").click()
    expect(page.get_by_test_id("write-version")).to_have_text("0", timeout=SLOW)
    undo = page.get_by_test_id("reset-undo")
    expect(undo).to_be_visible()
    expect(undo).to_be_focused()
    expect(page.locator("#lab-reset-result")).to_contain_text("fresh sandbox")
    undo.click()
    expect(page.get_by_test_id("write-version")).to_have_text("1", timeout=SLOW)
    expect(page.get_by_test_id("write-balance")).to_have_text("$10.00")
    expect(page.locator("#lab-reset-result")).to_contain_text("undone")


def test_a_session_of_clicks_leaves_the_console_clean(page: Page, live_url):
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    open_lab(page, live_url)
    set_lag(page, "1")
    deposit_and_wait(page, "10", 1)
    command(page, "withdraw", "999")
    expect(page.get_by_test_id("command-result")).to_contain_text("Rejected")
    page.get_by_test_id("query").click()
    expect(page.get_by_test_id("query-result")).to_contain_text("from read model")
    for title in ("Snapshots", "Rebuild", "Step replay", "Time travel", "Schema v2"):
        open_tool(page, title)
    page.reload()
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live", timeout=SLOW)
    # The chart keeps its history across the reload: the server sends it.
    expect(page.locator("#lab-chart-marks circle")).to_have_count(1, timeout=SLOW)
    assert problems == []


def test_a_prediction_during_the_lag_reveals_the_real_answer(page: Page, live_url):
    open_lab(page, live_url)
    set_lag(page, "8")
    deposit_and_wait(page, "20", 1)
    question = page.get_by_test_id("prediction").filter(has_text="What will Query balance return")
    expect(question).to_be_visible()
    question.get_by_role("button", name="$0.00").click()
    answer = page.get_by_test_id("prediction-answer")
    expect(answer).to_contain_text("Right")
    expect(answer).to_contain_text("It returned $0.00")
