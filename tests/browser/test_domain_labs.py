"""The domain labs of "Where it shows up" in Debian's chromium against a live daphne with the embedded projector:
each card's Try it opens its lab, a command appends and the projection applies it, the exchange restarts into the
same book, and two tabs editing one document converge. axe-core finds nothing on any of them.

Waits are generous and nothing asserts a tight timing: the machine is a busy 2-core box.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import AXE_JS
from tests.browser.test_lab import set_range

CONCEPT = "/concepts/cqrs-event-sourcing/"
SLOW = 15_000  # ms: the projection's lag (2 s by default) plus a busy machine

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_from_card(page: Page, live_url: str, domain: str) -> Locator:
    """The concept page, then its card's Try it: the domain's lab."""
    page.goto(live_url + CONCEPT)
    link = page.locator("#architectures").locator(f'[data-testid="architecture-try-it"][data-domain="{domain}"]')
    expect(link).to_be_visible()
    link.click()
    lab = page.get_by_test_id("architecture-lab")
    expect(lab).to_have_attribute("data-domain", domain)
    expect(lab.get_by_test_id("write-version")).to_have_text("0")
    return lab


def caught_up(lab: Locator, version: int) -> None:
    """The command's events are in the log and the read side has applied them (the version counter caught up)."""
    expect(lab.get_by_test_id("write-version")).to_have_text(str(version), timeout=SLOW)
    expect(lab.get_by_test_id("event-log").get_by_test_id("event-row")).to_have_count(version, timeout=SLOW)
    expect(lab.get_by_test_id("read-version")).to_have_text(str(version), timeout=SLOW)


def assert_axe_clean(axe) -> None:
    violations = axe()
    assert violations == [], violations


def test_the_ledger_card_opens_its_lab_and_a_deposit_appends_then_projects(page: Page, live_url, axe):
    lab = open_from_card(page, live_url, "ledger")
    assert_axe_clean(axe)  # the first visit: the blank lab with what to do
    lab.get_by_test_id("cmd-open").click()  # the name is offered: alice
    expect(lab.get_by_test_id("command-result")).to_contain_text("✓", timeout=SLOW)
    caught_up(lab, 1)
    lab.get_by_test_id("deposit-account").fill("alice")
    lab.get_by_test_id("deposit-amount").fill("100")
    lab.get_by_test_id("cmd-deposit").click()
    caught_up(lab, 2)
    expect(lab.get_by_test_id("ledger-total")).to_have_text("100.00", timeout=SLOW)
    # Time travel answers "what was the balance of alice at <the deposit's time>?" from the log alone.
    deposited_at = lab.locator('[data-testid="event-row"][data-seq="2"] time').inner_text()
    lab.get_by_test_id("time-travel-at").fill(deposited_at)
    lab.get_by_test_id("time-travel-account").fill("alice")
    lab.get_by_test_id("time-travel-account").press("Enter")
    expect(lab.get_by_test_id("balance-then")).to_contain_text(f"alice had 100.00 at {deposited_at}", timeout=SLOW)
    # An overdraw is refused whole, beside the form that sent it, and nothing is appended.
    lab.get_by_test_id("open-account").fill("bob")
    lab.get_by_test_id("cmd-open").click()
    caught_up(lab, 3)
    lab.get_by_test_id("transfer-from").fill("alice")
    lab.get_by_test_id("transfer-to").fill("bob")
    lab.get_by_test_id("transfer-amount").fill("500")
    lab.get_by_test_id("cmd-transfer").click()
    expect(lab.get_by_test_id("command-result")).to_contain_text("✗", timeout=SLOW)
    expect(lab.get_by_test_id("write-version")).to_have_text("3")
    # The auditor, added after the fact, folds the whole log and reconciles every account to zero.
    lab.get_by_test_id("add-auditor").click()
    expect(lab.get_by_test_id("late-result")).to_contain_text("✓", timeout=SLOW)
    expect(lab.get_by_test_id("auditor")).to_contain_text("✓ Reconciled", timeout=SLOW)
    expect(lab.get_by_test_id("auditor")).to_contain_text("sums to 0.00")
    assert_axe_clean(axe)


def test_the_order_book_card_opens_its_lab_and_an_order_rests_in_the_projected_book(page: Page, live_url, axe):
    lab = open_from_card(page, live_url, "orderbook")
    lab.get_by_test_id("order-quantity").fill("5")
    lab.get_by_test_id("order-price").fill("99")
    lab.get_by_test_id("cmd-place").click()
    caught_up(lab, 2)  # OrderPlaced, then OrderRested: nothing to match
    level = lab.get_by_test_id("order-book").locator('[data-testid="book-level"][data-side="buy"]')
    expect(level).to_have_attribute("data-price", "99", timeout=SLOW)
    expect(level).to_have_attribute("data-quantity", "5")
    assert_axe_clean(axe)


def test_the_document_card_opens_its_lab_and_an_insert_appends_then_projects(page: Page, live_url, axe):
    lab = open_from_card(page, live_url, "document")
    lab.get_by_test_id("insert-text").fill("Hello")
    lab.get_by_test_id("insert-position").fill("0")
    lab.get_by_test_id("cmd-insert").click()
    caught_up(lab, 1)
    expect(lab.get_by_test_id("document-text")).to_have_text("Hello", timeout=SLOW)
    assert_axe_clean(axe)


def place(lab: Locator, side: str, quantity: str, price: str, version: int) -> None:
    """Place an order and wait for its own answer (the stream at `version`), so the next one starts after it."""
    lab.get_by_test_id(f"side-{side}").check()
    lab.get_by_test_id("order-quantity").fill(quantity)
    lab.get_by_test_id("order-price").fill(price)
    lab.get_by_test_id("cmd-place").click()
    expect(lab.get_by_test_id("command-result")).to_contain_text(f"→ v={version}", timeout=SLOW)


def test_restarting_the_exchange_rebuilds_the_same_book_by_replay(page: Page, live_url, axe):
    lab = open_from_card(page, live_url, "orderbook")
    place(lab, "sell", "10", "101", 2)  # OrderPlaced, OrderRested
    place(lab, "buy", "5", "99", 4)
    place(lab, "buy", "4", "102", 6)  # OrderPlaced, TradeExecuted: 4 at 101, the resting order's price
    caught_up(lab, 6)
    expect(lab.get_by_test_id("last-price")).to_have_text("101", timeout=SLOW)
    book = lab.get_by_test_id("order-book")
    before = book.inner_text()
    assert "101" in before and "99" in before

    lab.get_by_test_id("restart-exchange").click()
    report = lab.get_by_test_id("restart-report")
    expect(report).to_have_attribute("data-equal", "true", timeout=SLOW)
    expect(report).to_have_attribute("data-used-snapshot", "false")  # no snapshot yet: replayed from event #1
    expect(report).to_contain_text("ms")
    expect(report).to_contain_text("6")  # events replayed
    assert book.inner_text() == before

    # With a snapshot, the restart starts from it and replays only what came after.
    lab.get_by_test_id("take-snapshot").click()
    expect(lab.get_by_test_id("snapshot-result")).to_contain_text("✓", timeout=SLOW)
    place(lab, "sell", "2", "103", 8)
    caught_up(lab, 8)
    lab.get_by_test_id("restart-exchange").click()
    expect(report).to_have_attribute("data-used-snapshot", "true", timeout=SLOW)
    expect(report).to_have_attribute("data-equal", "true")
    expect(report).to_contain_text("snapshot v=6")
    assert_axe_clean(axe)


def insert(page: Page, text: str, position: str) -> None:
    page.get_by_test_id("insert-text").fill(text)
    page.get_by_test_id("insert-position").fill(position)
    page.get_by_test_id("cmd-insert").click()


def test_two_tabs_editing_the_same_version_of_the_document_converge(browser, live_url):
    context = browser.new_context()  # one browser: the two tabs share the session, so the sandbox
    first, second = context.new_page(), context.new_page()
    first.goto(live_url + "/lab/document/")
    insert(first, "abc", "0")
    expect(first.get_by_test_id("document-text")).to_have_text("abc", timeout=SLOW)
    second.goto(live_url + "/lab/document/")
    expect(second.get_by_test_id("document-text")).to_have_text("abc", timeout=SLOW)
    assert first.get_by_test_id("tab-name").inner_text() != second.get_by_test_id("tab-name").inner_text()

    # A long lag: both tabs keep seeing v=1 for 5 s, so the second tab's edit names v=1 although v=2 exists.
    set_range(first, "lag", "5")
    expect(first.get_by_test_id("lag-result")).to_contain_text("✓", timeout=SLOW)
    expect(second.get_by_test_id("lag")).to_have_value("5", timeout=SLOW)  # the other tab follows the setting
    expect(second.get_by_test_id("base-version")).to_have_attribute("value", "1")
    insert(first, "X", "0")
    expect(first.get_by_test_id("command-result")).to_contain_text("✓", timeout=SLOW)
    expect(second.get_by_test_id("base-version")).to_have_attribute("value", "1")
    insert(second, "Y", "3")  # after "abc" as the second tab saw it
    expect(second.get_by_test_id("command-result")).to_contain_text("✓", timeout=SLOW)
    expect(second.get_by_test_id("rebase-note")).to_contain_text("rebased over it")  # the answer says so

    # The later edit was rebased over the earlier one: both tabs end with the same text, both edits in it.
    for tab in (first, second):
        expect(tab.get_by_test_id("write-version")).to_have_text("3", timeout=SLOW)
        expect(tab.get_by_test_id("document-text")).to_have_text("XabcY", timeout=SLOW)
    context.close()


@pytest.mark.parametrize("domain", ["ledger", "orderbook", "document"])
def test_each_lab_is_axe_clean_on_a_phone_in_dark_mode(browser, live_url, domain):
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{live_url}/lab/{domain}/")
    lab = page.get_by_test_id("architecture-lab")
    first_command = {"ledger": "cmd-open", "orderbook": "cmd-place", "document": "cmd-insert"}[domain]
    lab.get_by_test_id(first_command).click()
    expect(lab.get_by_test_id("command-result")).to_contain_text("✓", timeout=SLOW)
    expect(lab.get_by_test_id("read-version")).not_to_have_text("0", timeout=SLOW)
    page.evaluate(AXE_JS.read_text())
    result = page.evaluate(
        "() => axe.run(document, {runOnly: ['wcag2a','wcag2aa','wcag21a','wcag21aa','best-practice']})"
    )
    assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]] == []
    # Nothing is wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_a_keyboard_alone_sends_a_command_and_keeps_its_place(page: Page, live_url):
    page.goto(live_url + "/lab/ledger/")
    field = page.get_by_test_id("open-account")
    field.focus()
    field.press("Enter")  # the form's own submit: no mouse
    result = page.get_by_test_id("command-result")
    expect(result).to_contain_text("✓ ", timeout=SLOW)
    assert result.locator("xpath=..").get_attribute("aria-live") == "polite"  # read out where it lands
    expect(page.get_by_test_id("write-version")).to_have_text("1", timeout=SLOW)
    # The forms came back with the next name to open; the focus is still in them, not thrown to the page's top.
    expect(page.get_by_test_id("open-account")).to_have_value("bob")
    assert page.evaluate("document.activeElement.closest('#dlab-commands') !== null")
