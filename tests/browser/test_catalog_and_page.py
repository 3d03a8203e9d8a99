"""A learner in a real browser: the catalog, its live search, the CQRS page, accessibility and small screens."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONCEPT = "/concepts/cqrs-event-sourcing/"
SECTIONS = [
    "Try it",
    "First time reading this? Start here",
    "What it is",
    "The problem it solves",
    "How it works",
    "Why use it",
    "What it costs you",
    "Where it shows up in our architectures",
    "Gotchas",
    "Interview angle",
    "Your notes",
]


def test_a_learner_opens_the_catalog_follows_the_link_and_finds_every_section(live_url, page: Page):
    page.goto(live_url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("All concepts")
    page.get_by_role("link", name="CQRS & Event Sourcing").click()
    expect(page).to_have_url(live_url + CONCEPT)
    expect(page.get_by_role("heading", level=1)).to_have_text("CQRS & Event Sourcing")
    expect(page.get_by_role("link", name="← All concepts")).to_be_visible()
    expect(page.get_by_text("3 min read")).to_be_visible()
    for title in SECTIONS:
        expect(page.get_by_role("heading", level=2, name=title, exact=True)).to_be_visible()
    for system in ("Payment Gateway", "Stock Exchange (Matching Engine)", "Google Docs (Realtime Collab)"):
        expect(page.get_by_role("heading", level=3, name=system)).to_be_visible()
    expect(page.get_by_text("Private to you").first).to_be_visible()


def test_start_here_opens_when_clicked_and_when_linked_from_the_contents(live_url, page: Page):
    page.goto(live_url + CONCEPT)
    plain = page.get_by_text("Plain English: CQRS means using one model/datastore")
    expect(plain).to_be_hidden()
    page.locator("#start-here summary").click()
    expect(plain).to_be_visible()

    page.goto(live_url + "/")
    page.goto(live_url + CONCEPT + "#start-here")
    expect(page.get_by_text("Plain English: CQRS means using one model/datastore")).to_be_visible()


def test_the_table_of_contents_jumps_to_a_section(live_url, page: Page):
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto(live_url + CONCEPT)
    contents = page.get_by_role("navigation", name="On this page")
    contents.get_by_role("link", name="Gotchas").click()
    expect(page).to_have_url(re.compile(r"#gotchas$"))
    expect(page.locator("#gotchas")).to_be_in_viewport()


def test_search_filters_as_you_type_and_says_when_nothing_matches(live_url, page: Page):
    page.goto(live_url + "/")
    cards = page.locator(".concept-card")
    total = cards.count()
    assert total >= 1
    box = page.get_by_role("searchbox", name="Search concepts")
    box.press_sequentially("debit/credit", delay=20)  # only in the CQRS page's body
    expect(page.get_by_role("status")).to_contain_text("match “debit/credit”")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("CQRS & Event Sourcing")
    expect(page).to_have_url(re.compile(r"\?q=debit%2Fcredit$"))
    box.fill("no such thing anywhere")
    expect(page.get_by_role("status")).to_have_text("No concepts match “no such thing anywhere”.")
    expect(cards).to_have_count(0)
    box.fill("")
    expect(cards).to_have_count(total)


def test_search_works_without_javascript(live_url, browser):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(live_url + "/")
    page.get_by_role("searchbox", name="Search concepts").fill("replaying")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(live_url + "/?q=replaying")
    expect(page.locator(".concept-card")).to_contain_text(["CQRS & Event Sourcing"])
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", ["/", CONCEPT])
def test_axe_finds_no_violations(live_url, page: Page, axe, path, scheme):
    page.emulate_media(color_scheme=scheme)
    page.goto(live_url + path)
    page.wait_for_load_state("networkidle")
    assert axe() == []


@pytest.mark.parametrize("path", ["/", CONCEPT, "/?q=nothing-matches-this"])
def test_a_360_px_phone_needs_no_horizontal_scroll(live_url, page: Page, path):
    page.set_viewport_size({"width": 360, "height": 780})
    page.goto(live_url + path)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360


def test_the_theme_toggle_is_remembered_across_pages(live_url, page: Page):
    page.emulate_media(color_scheme="light")
    page.goto(live_url + "/")
    toggle = page.get_by_role("button", name="Dark theme")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.goto(live_url + CONCEPT)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Dark theme")).to_have_attribute("aria-pressed", "true")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 28)"


def test_no_request_leaves_the_site(live_url, page: Page):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(live_url + "/")
    page.goto(live_url + CONCEPT)
    page.wait_for_load_state("networkidle")
    outside = [url for url in requested if not url.startswith((live_url, "data:", live_url.replace("http", "ws")))]
    assert requested and outside == []


def test_keyboard_users_can_skip_to_the_content_and_see_where_focus_is(live_url, page: Page):
    page.goto(live_url + CONCEPT)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
