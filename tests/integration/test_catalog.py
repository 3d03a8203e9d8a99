"""The catalog at /: concepts grouped by category, and a search that works with and without JavaScript."""

from __future__ import annotations

import re
import textwrap

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

CATALOG = reverse("concepts:catalog")


def concept(slug: str, title: str, category: str, summary: str, body: str) -> str:
    return textwrap.dedent(
        f"""\
        ---
        slug: {slug}
        title: {title}
        category: {category}
        summary: {summary}
        related: []
        ---

        ## What it is

        {body}
        """
    )


@pytest.fixture
def library_dir(tmp_path, settings):
    files = {
        "sharding": concept("sharding", "Sharding", "Scaling", "Split data across databases.", "Pick a shard key."),
        "caching": concept("caching", "Caching", "Scaling", "Keep hot data close.", "Invalidation is hard."),
        "outbox": concept("outbox", "Transactional Outbox", "Data", "Publish events reliably.", "Relay the rows."),
    }
    for slug, text in files.items():
        (tmp_path / f"{slug}.md").write_text(text)
    settings.CONCEPTS_CONTENT_DIR = tmp_path
    return tmp_path


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_catalog_lists_the_real_cqrs_page_with_summary_and_read_time(client):
    response = client.get(CATALOG)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>All concepts</h1>" in page
    assert 'href="/concepts/cqrs-event-sourcing/"' in page
    assert "CQRS &amp; Event Sourcing" in page
    assert "Split the write model from the read model (CQRS)" in page
    assert "3 min read" in page


def test_concepts_are_grouped_by_category_in_alphabetical_order(client, library_dir):
    text = text_of(client.get(CATALOG).content.decode())
    order = [text.index(word) for word in ("Data", "Transactional Outbox", "Scaling", "Caching", "Sharding")]
    assert order == sorted(order)
    assert "1 min read" in text


def test_search_matches_the_title_the_summary_and_the_body(client, library_dir):
    for query, expected in [("sharding", "Sharding"), ("hot data", "Caching"), ("invalidation", "Caching")]:
        text = text_of(client.get(CATALOG, {"q": query}).content.decode())
        assert expected in text
        assert f"1 of 3 concepts match “{query}”." in text
        others = {"Sharding", "Caching", "Transactional Outbox"} - {expected}
        assert not any(f">{title}</a>" in client.get(CATALOG, {"q": query}).content.decode() for title in others)


def test_a_search_without_javascript_returns_the_whole_page_with_the_query_kept(client, library_dir):
    response = client.get(CATALOG, {"q": "relay"})
    page = response.content.decode()
    assert page.lstrip().startswith("<!doctype html>")
    assert 'name="q" value="relay"' in page
    assert 'method="get"' in page and 'action="/"' in page
    assert ">Transactional Outbox</a>" in page and ">Sharding</a>" not in page


def test_a_search_with_no_match_says_so(client, library_dir):
    text = text_of(client.get(CATALOG, {"q": "blockchain"}).content.decode())
    assert "No concepts match “blockchain”." in text
    assert "Nothing here matches “blockchain”." in text
    assert "Show all concepts" in text


def test_the_search_box_asks_htmx_for_results_as_you_type(client, library_dir):
    page = client.get(CATALOG).content.decode()
    box = re.search(r"<input type=\"search\"[^>]*>", page, re.S).group(0)
    assert 'hx-get="/"' in box
    assert 'hx-trigger="input changed delay:250ms, search"' in box
    assert 'hx-target="#results"' in box
    assert 'id="results"' in page and 'id="search-status"' in page


def test_an_htmx_search_gets_only_the_results_partial_and_the_status_line(client, library_dir):
    response = client.get(CATALOG, {"q": "shard"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert "<html" not in page and "<h1>" not in page
    assert ">Sharding</a>" in page and ">Caching</a>" not in page
    assert '<p id="search-status" hx-swap-oob="innerHTML">1 of 3 concepts match “shard”.</p>' in page
    assert "HX-Request" in response["Vary"]


def test_an_htmx_history_restore_gets_the_whole_page(client, library_dir):
    headers = {"HX-Request": "true", "HX-History-Restore-Request": "true"}
    page = client.get(CATALOG, {"q": "shard"}, headers=headers).content.decode()
    assert "<h1>All concepts</h1>" in page


def test_a_search_query_is_escaped(client, library_dir):
    page = client.get(CATALOG, {"q": "<b>x</b>"}).content.decode()
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_a_new_concept_file_gets_a_catalog_entry_and_its_own_page_with_no_code(client, library_dir):
    (library_dir / "backpressure.md").write_text(
        concept("backpressure", "Backpressure", "Reliability", "Slow the sender down.", "Bounded queues push back.")
    )
    page = client.get(CATALOG).content.decode()
    assert 'href="/concepts/backpressure/"' in page and '<h2 id="category-reliability">Reliability</h2>' in page
    response = client.get(reverse("concepts:detail", args=["backpressure"]))
    assert response.status_code == 200
    detail = response.content.decode()
    assert '<h1 id="concept-title">Backpressure</h1>' in detail
    assert '<section id="what-it-is"' in detail and "Bounded queues push back." in detail
    assert 'data-testid="lab"' not in detail  # no `lab:` in its front matter, so no panel
    assert '<section id="your-notes"' in detail


def test_eventual_consistency_finds_the_page_that_says_eventually_consistent(client):
    # The real CQRS page says "eventually consistent", never "eventual consistency": the words match by form.
    page = client.get(CATALOG, {"q": "eventual consistency"}).content.decode()
    assert "match “eventual consistency”." in text_of(page) and "No concepts match" not in text_of(page)
    assert 'href="/concepts/cqrs-event-sourcing/"' in page


def test_search_matches_other_forms_of_a_word_both_ways_and_nothing_unrelated(client, library_dir):
    (library_dir / "consistency.md").write_text(
        concept("consistency", "Read Models", "Data", "Reads lag writes.", "Replicas are eventually consistent.")
    )
    for query in ("eventual consistency", "consistently", "lagging", "replica eventual"):
        text = text_of(client.get(CATALOG, {"q": query}).content.decode())
        assert f"1 of 4 concepts match “{query}”." in text, query
        assert ">Read Models</a>" in client.get(CATALOG, {"q": query}).content.decode()
    for query, title in [("shards", "Sharding"), ("cached", "Caching"), ("relaying", "Transactional Outbox")]:
        page = client.get(CATALOG, {"q": query}).content.decode()
        assert f">{title}</a>" in page and "1 of 4 concepts match" in text_of(page), query
    assert "No concepts match “consistent hashing”." in text_of(
        client.get(CATALOG, {"q": "consistent hashing"}).content.decode()
    )
