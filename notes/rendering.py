"""Markdown for private notes: rendered by markdown-it, then cleaned by nh3 against a small allow-list.

Two layers on purpose. markdown-it runs with raw HTML off, so typed tags come out as text; nh3 then keeps
only the tags and attributes below, whatever the renderer (or a future plugin) produced. Anything htmx or a
browser could act on (hx-*, on*, style, class, id, forms, media, javascript:/data: URLs) is not on the list.
The template still wraps the result in `hx-disable`, and the CSP forbids inline script: three locks, not one.
"""

from __future__ import annotations

import html

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "em", "strong",
        "del", "s", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """Safe HTML for a learner's Markdown; the only function templates should mark safe."""
    return sanitise(_markdown.render(text))


def plain_excerpt(text: str, limit: int = 180) -> str:
    """A one-line taste of a note for lists: the rendered words without markup, squeezed, cut at a word.

    Plain text, so the template escapes it like any other string."""
    squeezed = " ".join(html.unescape(nh3.clean(_markdown.render(text), tags=set())).split())
    if len(squeezed) <= limit:
        return squeezed
    return squeezed[:limit].rsplit(" ", 1)[0] + "…"
