"""The CQRS & Event Sourcing page shows every part of the product owner's seed text, in the seed's order."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

# The product owner's seed text, copied into the repo so a fresh clone can test against it.
SEED = Path(__file__).resolve().parents[1] / "data" / "cqrs-event-sourcing.seed.txt"
PAGE = reverse("concepts:detail", args=["cqrs-event-sourcing"])

# The seed was copied from a rendered page, so a few lines run separate elements together.
GLUED = {
    "Data·3 min read": ["Data", "·", "3 min read"],
    "Write modelcommandsv=0": ["Write model", "commands", "v=0"],
    "Read modelqueriesv=0": ["Read model", "queries", "v=0"],
}


def seed_parts() -> list[str]:
    parts: list[str] = []
    for line in SEED.read_text(encoding="utf-8").splitlines():
        line = line.strip().removeprefix("• ")  # a list marker, drawn by the page's <ul>, not text
        if line:
            parts += GLUED.get(line, [line])
    return parts


def visible_text(page: str) -> str:
    """The page's text as a reader meets it, without the table of contents (it repeats the headings)."""
    page = re.sub(r"<nav [^>]*data-toc.*?</nav>", " ", page, flags=re.S)
    page = re.sub(r"<(script|style|head)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_the_seed_has_the_parts_this_test_expects():
    parts = seed_parts()
    assert parts[:3] == ["Reqflow", "← All concepts", "Data"]
    assert parts[-2:] == ["Your notes", "Private to you"]
    assert len(parts) > 40
    assert "Payment Gateway" in parts and not any(part.startswith("•") for part in parts)


def test_every_part_of_the_seed_text_is_on_the_page_in_order(client):
    response = client.get(PAGE)
    assert response.status_code == 200
    text = visible_text(response.content.decode())
    position = 0
    for part in seed_parts():
        found = text.find(" ".join(part.split()), position)
        assert found != -1, f"missing or out of order: {part!r}\nafter: {text[position : position + 200]!r}"
        position = found + len(part)


def test_the_sections_have_stable_anchors_listed_in_the_table_of_contents(client):
    page = client.get(PAGE).content.decode()
    anchors = [
        "try-it",
        "start-here",
        "what-it-is",
        "the-problem-it-solves",
        "how-it-works",
        "why-use-it",
        "what-it-costs-you",
        "architectures",
        "gotchas",
        "interview-angle",
        "check-yourself",
        "your-notes",
    ]
    toc = re.search(r"<nav [^>]*data-toc.*?</nav>", page, re.S).group(0)
    assert re.findall(r'href="#([a-z-]+)"', toc) == anchors
    assert re.findall(r'<section id="([a-z-]+)" class="concept-section', page) == anchors


def test_start_here_is_a_closed_details_box(client):
    page = client.get(PAGE).content.decode()
    start = re.search(r'<section id="start-here".*?</section>', page, re.S).group(0)
    assert '<details class="start-here">' in start
    assert "<summary><h2" in start and "First time reading this? Start here" in start


def test_the_lists_are_lists_and_each_system_is_a_card(client):
    page = client.get(PAGE).content.decode()

    def section(anchor: str) -> str:
        return re.search(rf'<section id="{anchor}".*?</section>', page, re.S).group(0)

    for anchor, items in (("why-use-it", 3), ("what-it-costs-you", 3), ("gotchas", 4)):
        html = section(anchor)
        assert len(re.findall(r"<li[ >]", html)) == items, anchor
        # Each claim has its "Try it" beside it, loading a scenario of its own.
        assert len(set(re.findall(r'data-testid="scenario-link" data-scenario="([a-z-]+)"', html))) == items, anchor
    cards = re.findall(r'<li class="card system-card"><h3>(.*?)</h3>', section("architectures"))
    assert cards == ["Payment Gateway", "Stock Exchange (Matching Engine)", "Google Docs (Realtime Collab)"]


def test_the_try_it_section_holds_the_lab_panel_between_the_seed_texts(client):
    page = client.get(PAGE).content.decode()
    try_it = re.search(r'<section id="try-it".*?<section id="start-here"', page, re.S).group(0)
    intro = try_it.index("Send a command (write), then a query (read). Two separate models.")
    panel = try_it.index('data-testid="lab"')
    caption = try_it.index("CQRS splits writes and reads into separate models.")
    assert intro < panel < caption


def test_the_page_links_the_lab_and_notes_assets_and_includes_the_notes_box(client):
    page = client.get(PAGE).content.decode()
    for asset in ("css/lab.css", "css/notes.css", "js/lab.js", "js/notes.js"):
        assert f"/static/{asset}" in page
    notes = re.search(r'<section id="your-notes".*?</section>', page, re.S).group(0)
    assert 'data-testid="notes"' in notes


def test_the_title_and_description_come_from_the_file(client):
    page = client.get(PAGE).content.decode()
    assert "<title>CQRS &amp; Event Sourcing · Reqflow</title>" in page
    assert '<meta name="description" content="Split the write model from the read model (CQRS)' in page


def test_an_unknown_slug_is_a_styled_404(client):
    response = client.get(reverse("concepts:detail", args=["no-such-concept"]))
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Page not found</h1>" in page
    assert "/static/css/site.css" in page
    assert 'href="/"' in page and "All concepts" in page


@pytest.mark.parametrize("signed_in", [False, True])
def test_no_template_syntax_leaks_into_the_page(client, alice, signed_in):
    """A `{# ... #}` comment spanning lines is not a comment in Django: it prints. Nothing of the kind may show."""
    if signed_in:
        client.force_login(alice)
    client.post("/lab/command/", {"kind": "deposit", "amount": "5"}, HTTP_HX_REQUEST="true")
    for url in ("/", PAGE, "/lab/", "/accounts/login/", "/accounts/signup/"):
        html = client.get(url).content.decode()
        for marker in ("{#", "#}", "{%", "%}", "{{", "}}"):
            assert marker not in html, (url, marker, html[max(0, html.find(marker) - 200) : html.find(marker) + 200])


def test_check_yourself_asks_five_questions_with_answers_behind_a_click(client):
    page = client.get(PAGE).content.decode()
    section = re.search(r'<section id="check-yourself".*?</section>', page, re.S).group(0)
    items = re.findall(r'data-testid="quiz-question">\s*<details class="quiz__details">\s*<summary', section)
    assert len(items) == 5
    assert "Do you need event sourcing to do CQRS?" in section and "read your writes" in section.lower()
