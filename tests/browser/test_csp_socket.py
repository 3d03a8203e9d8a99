"""The Content-Security-Policy names the site's own socket origin only (connect-src 'self'), and in chromium the
lab's WebSocket still connects under it, with no CSP violation reported; a socket to any other origin is blocked."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

CONCEPT = "/concepts/cqrs-event-sourcing/"
SLOW = 15_000

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_labs_socket_connects_under_connect_src_self_and_nothing_is_reported(page: Page, live_url):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    response = page.goto(live_url + CONCEPT)
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "connect-src 'self';" in policy + ";" and "ws:" not in policy and "wss:" not in policy
    expect(page.locator("[data-live-status]")).to_have_attribute("data-state", "live", timeout=SLOW)
    page.evaluate("() => new Promise(r => setTimeout(r, 300))")
    assert violations == []


def test_a_socket_to_another_port_of_the_same_host_is_blocked_by_the_policy(page: Page, live_url):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(live_url + CONCEPT)
    port = int(live_url.rsplit(":", 1)[1])
    blocked = page.evaluate(
        """(url) => { try { new WebSocket(url); return false; } catch (e) { return e.name; } }""",
        f"ws://127.0.0.1:{port + 1}/ws/lab/",
    )
    # Chromium refuses the connection (a SecurityError, or a violation report) before any packet is sent.
    page.evaluate("() => new Promise(r => setTimeout(r, 300))")
    assert blocked == "SecurityError" or any("connect-src" in v for v in violations), (blocked, violations)
