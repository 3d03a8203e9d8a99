"""A learner signs up from a concept page, writes notes that save themselves, and finds them again; nobody else does."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Browser, Page, expect

from notes.models import Note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CONCEPT = "/concepts/cqrs-event-sourcing/"
PASSWORD = "plum-orbit-lantern-7"


def sign_up(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).not_to_have_url(re.compile(r"/accounts/signup/"))  # signed in and on the page `next` named
    # The URL changes before the page's deferred scripts run; text filled in before htmx has wired the notes form
    # raised no save (a fresh-clone run at 04:05 UTC waited 5 s for "Saved" that way). Type once the page has loaded.
    page.wait_for_load_state("load")


def test_a_learner_signs_up_types_sees_saved_reloads_and_finds_the_note_and_another_learner_does_not(
    live_url, page: Page, browser: Browser
):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    page.goto(live_url + CONCEPT)
    box = page.get_by_test_id("notes")
    expect(box).to_contain_text("private to you")
    box.get_by_role("link", name="Sign up to take notes").click()
    sign_up(page, "learner-one")
    expect(page).to_have_url(re.compile(re.escape(CONCEPT) + "#notes$"))

    editor = page.get_by_role("textbox", name="Your notes")
    expect(editor).to_have_attribute("data-testid", "note-editor")
    editor.press_sequentially("## My summary\n\nCommands **decide**, events *evolve*.", delay=5)
    # A note that tries to run code must render as harmless text, and no dialog may ever open.
    editor.press_sequentially("\n\n<img src=x onerror=alert(1)> [click](javascript:alert(2))", delay=2)
    status = page.get_by_test_id("note-status")
    expect(status).to_contain_text(re.compile(r"Saved at \d\d:\d\d"))
    preview = page.get_by_test_id("note-preview")
    expect(preview.locator("h2")).to_have_text("My summary")
    expect(preview.locator("strong")).to_have_text("decide")
    expect(preview.locator("img")).to_have_count(0)
    expect(preview.locator("a")).to_have_count(0)

    page.reload()
    expect(page.get_by_test_id("note-editor")).to_have_value(re.compile(r"^## My summary"))
    expect(page.get_by_test_id("note-status")).to_contain_text("Saved")
    expect(page.get_by_test_id("note-preview").locator("h2")).to_have_text("My summary")

    page.goto(live_url + "/notes/")
    expect(page.get_by_role("heading", level=2, name="CQRS & Event Sourcing")).to_be_visible()
    assert dialogs == []

    other = browser.new_context()
    try:
        second = other.new_page()
        second.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
        sign_up(second, "learner-two")
        expect(second.get_by_test_id("note-editor")).to_have_value("")
        expect(second.get_by_test_id("notes")).not_to_contain_text("My summary")
        second.goto(live_url + "/notes/")
        expect(second.get_by_text("No notes yet.")).to_be_visible()
        owner_note = Note.objects.get(owner__username="learner-one")
        response = second.goto(live_url + f"/notes/{owner_note.pk}/")
        assert response is not None and response.status == 404
        expect(second.locator("body")).not_to_contain_text("My summary")
    finally:
        other.close()


def test_leaving_the_page_right_after_typing_still_saves_the_note(live_url, page: Page):
    page.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
    sign_up(page, "quick-leaver")
    # fill() then leave at once: the debounced autosave never fires, so only the pagehide beacon can save it.
    page.get_by_test_id("note-editor").fill("typed and gone")
    page.goto(live_url + "/notes/")
    # The beacon races the next page's request; give it a moment to land, then look.
    deadline = time.monotonic() + 5
    while not Note.objects.filter(body="typed and gone").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    page.reload()
    expect(page.get_by_text("typed and gone")).to_be_visible()


def test_without_javascript_the_save_button_saves_and_returns_to_the_notes(live_url, browser: Browser):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_url + "/accounts/signup/?next=" + CONCEPT + "%23notes")
        sign_up(page, "no-script")
        page.get_by_role("textbox", name="Your notes").fill("saved by the button")
        page.get_by_test_id("notes").get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(re.escape(CONCEPT) + "#notes$"))
        expect(page.get_by_test_id("note-editor")).to_have_value("saved by the button")
        expect(page.get_by_test_id("note-status")).to_contain_text("Saved")
    finally:
        context.close()


def test_my_notes_searches_and_exports(live_url, page: Page):
    page.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
    sign_up(page, "searcher")
    page.get_by_test_id("note-editor").fill("projections can lag behind")
    expect(page.get_by_test_id("note-status")).to_contain_text("Saved")
    page.goto(live_url + "/notes/")
    page.get_by_label("Search your notes").fill("nothing-like-this")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("0 of 1 note match")).to_be_visible()
    page.get_by_label("Search your notes").fill("lag")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("projections can lag behind")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export all as Markdown").click()
    download = download_info.value
    assert download.suggested_filename.startswith("reqflow-notes-")
    text = download.path().read_text(encoding="utf-8")
    assert "## CQRS & Event Sourcing" in text
    assert "projections can lag behind" in text


def test_when_saving_fails_the_text_stays_the_error_is_clear_and_it_retries_until_saved(live_url, page: Page):
    # The network is cut before the page loads: a route added after a navigation once missed the first save.
    cut: list[str] = []

    def offline(route):
        cut.append(route.request.url)
        route.abort("internetdisconnected")

    page.route("**/notes/concept/**", offline)
    page.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
    sign_up(page, "offline-learner")
    editor = page.get_by_test_id("note-editor")
    status = page.get_by_test_id("note-status")

    editor.press_sequentially("written while offline", delay=5)
    expect(status).to_contain_text("Not saved: the server could not be reached. Your text is still here")
    expect(editor).to_have_value("written while offline")
    assert cut, "no save was attempted while offline"
    assert not Note.objects.filter(owner__username="offline-learner").exists()

    page.unroute("**/notes/concept/**")
    expect(status).to_contain_text("Saved at", timeout=10_000)
    assert Note.objects.get(owner__username="offline-learner").body == "written while offline"


def test_a_note_at_the_size_limit_says_so(live_url, page: Page):
    page.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
    sign_up(page, "long-writer")
    limit_hint = page.get_by_text("You have reached the 20,000-character limit")
    expect(limit_hint).to_be_hidden()
    page.get_by_test_id("note-editor").fill("x" * 19_999)
    page.get_by_test_id("note-editor").press("End")
    page.keyboard.type("yz")
    expect(limit_hint).to_be_visible()
    expect(page.get_by_test_id("note-editor")).to_have_value("x" * 19_999 + "y")
    expect(page.get_by_test_id("note-status")).to_contain_text("Saved")


def test_text_typed_before_the_scripts_ran_is_saved_without_another_keystroke(live_url, page: Page):
    page.goto(live_url + "/accounts/signup/?next=" + CONCEPT)
    sign_up(page, "early-typist")
    held = []

    def deferred(url: str) -> bool:  # theme.js blocks the parser (no flash of the wrong theme); the rest is deferred
        return url.endswith(".js") and not url.endswith("theme.js")

    page.route(deferred, lambda route: held.append(route))  # the page is only HTML meanwhile, as on a slow connection
    page.goto(live_url + CONCEPT, wait_until="commit")
    editor = page.get_by_test_id("note-editor")
    editor.fill("typed while the scripts were still loading")
    expect(page.get_by_test_id("note-status")).not_to_contain_text("Saved at")  # nothing could save it yet
    assert held, "the scripts were not held: this test would prove nothing"
    for route in held:
        route.continue_()
    expect(page.get_by_test_id("note-status")).to_contain_text(re.compile(r"Saved at \d\d:\d\d"))
    assert Note.objects.get(owner__username="early-typist").body == "typed while the scripts were still loading"
