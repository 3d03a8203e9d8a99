"""axe-core finds nothing on the account pages and My notes, in light and dark, on desktop and phone."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from notes.models import Note

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-1"


def sign_in(page: Page, live_url: str) -> None:
    page.goto(live_url + "/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", ["/accounts/signup/", "/accounts/login/"])
def test_signed_out_account_pages_have_no_axe_violations(live_url, page: Page, axe, scheme, path):
    page.emulate_media(color_scheme=scheme)
    page.goto(live_url + path)
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert axe() == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_account_forms_showing_errors_have_no_axe_violations(live_url, page: Page, axe, scheme, alice):
    page.emulate_media(color_scheme=scheme)
    page.goto(live_url + "/accounts/signup/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill("123")
    page.get_by_label("Password confirmation").fill("124")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert axe() == []
    page.goto(live_url + "/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username and password")
    assert axe() == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/",
        "/notes/",
        "/notes/?q=lag",
        "/notes/?q=nothing",
        "/notes/concept/cqrs-event-sourcing/",
        "/notes/{pk}/",
        "/notes/{pk}/delete/",
    ],
)
def test_signed_in_pages_have_no_axe_violations(live_url, page: Page, axe, alice, scheme, path):
    note = Note.objects.create(owner=alice, concept_slug="cqrs-event-sourcing", body="## Lag\n\nprojections **lag**")
    page.emulate_media(color_scheme=scheme)
    sign_in(page, live_url)
    page.goto(live_url + path.format(pk=note.pk))
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert axe() == []


def test_my_notes_with_no_notes_yet_has_no_axe_violations(live_url, page: Page, axe, alice):
    sign_in(page, live_url)
    page.goto(live_url + "/notes/")
    expect(page.get_by_text("No notes yet.")).to_be_visible()
    assert axe() == []


def test_the_lockout_page_has_no_axe_violations(live_url, page: Page, axe, alice):
    for _ in range(5):
        page.goto(live_url + "/accounts/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in paused")
    assert axe() == []


def test_sign_in_works_on_a_phone_with_the_keyboard_alone(live_url, browser: Browser, alice):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(live_url + "/accounts/login/?next=/notes/")
        page.get_by_label("Username").focus()
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page).to_have_url(live_url + "/notes/")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
    finally:
        context.close()
