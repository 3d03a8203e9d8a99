"""Markdown notes are rendered, then cleaned against an allow-list: nothing a browser or htmx could run survives."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from notes.rendering import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    ALLOWED_URL_SCHEMES,
    plain_excerpt,
    render_markdown,
    sanitise,
)

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<template><script>alert(1)</script></template>",
    "<img src=x onerror=alert(1)>",
    '<img src="x" srcset="javascript:alert(1)">',
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<!--<img src=x onerror=alert(1)>-->",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="&#1;javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](<javascript:alert(1)>)",
    "<javascript:alert(1)>",
    "[x][1]\n\n[1]: javascript:alert(1)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    '<a hx-get="/accounts/logout/" hx-trigger="load">x</a>',
    '<div hx-get="/notes/export.md" hx-target="body" hx-swap="outerHTML" hx-trigger="every 1s">x</div>',
    '<div hx-on:click="alert(1)">x</div>',
    '<div hx-on::load="alert(1)">x</div>',
    '<div data-hx-post="/notes/" data-hx-trigger="load">x</div>',
    '<button hx-post="/accounts/logout/" hx-trigger="load" hx-vals=\'{"a": 1}\'>x</button>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    "<style>body{display:none}</style>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<object data="javascript:alert(1)"></object>',
    "<embed src=javascript:alert(1)>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "<input autofocus onfocus=alert(1)>",
    "<details open ontoggle=alert(1)><summary>x</summary></details>",
    "<body onload=alert(1)>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:/">',
    "<link rel=stylesheet href=//evil.example/x.css>",
    "<xss id=x tabindex=1 onfocusin=alert(1)></xss>",
    '<a href="https://ok.example" class="skip-link" id="main" data-theme-toggle>x</a>',
    "`<img src=x onerror=alert(1)>` and ```\n<script>alert(1)</script>\n```",
    "\x00<script>alert(1)</script>",
    "> <img src=x onerror=alert(1)>\n\n- <svg onload=alert(1)>",
]

FORBIDDEN_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _problems(html: str) -> list[str]:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    problems = []
    for tag, attrs in collector.tags:
        if tag not in ALLOWED_TAGS:
            problems.append(f"tag <{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, set()) and not (tag == "a" and name == "rel"):
                problems.append(f"attribute {name} on <{tag}>")
            if name == "href" and value is not None:
                # What a browser would see: entities decoded (the parser did that), whitespace and controls dropped.
                squeezed = "".join(ch for ch in value if ord(ch) > 0x20).lower()
                scheme = FORBIDDEN_SCHEME.match(squeezed)
                if scheme and scheme.group(0)[:-1] not in ALLOWED_URL_SCHEMES:
                    problems.append(f"href {value!r}")
    return problems


def test_the_corpus_has_at_least_forty_payloads():
    assert len(set(XSS_PAYLOADS)) >= 40


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_no_payload_survives_markdown_rendering(payload):
    html = render_markdown(payload)
    assert _problems(html) == []
    assert sanitise(html) == html


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_no_payload_survives_the_allow_list_even_as_raw_html(payload):
    # If the renderer ever let raw HTML through (a plugin, html=True), nh3 alone must still hold the line.
    html = sanitise(payload)
    assert _problems(html) == []
    assert sanitise(html) == html


def test_the_checker_itself_flags_what_it_should():
    assert _problems('<a href="javascript:alert(1)">x</a>') == ["href 'javascript:alert(1)'"]
    assert _problems('<a href=" JaVa&#x09;script:x">x</a>') != []
    assert _problems('<p onclick="x" hx-get="/">x</p>') == ["attribute onclick on <p>", "attribute hx-get on <p>"]
    assert _problems("<script>x</script>") == ["tag <script>"]


def test_raw_html_typed_into_a_note_is_shown_as_text():
    assert render_markdown("<b>bold?</b>") == "<p>&lt;b&gt;bold?&lt;/b&gt;</p>\n"


def test_everyday_markdown_still_renders():
    html = render_markdown(
        "## Summary\n\n**Events** are *facts*; `append` only.\n\n"
        "1. decide\n2. evolve\n\n> quote\n\n```\ncode\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~"
    )
    for fragment in ["<h2>Summary</h2>", "<strong>Events</strong>", "<em>facts</em>", "<code>append</code>",
                     "<ol>", "<blockquote>", "<pre><code>code", "<table>", "<td>1</td>", "<s>old</s>"]:  # fmt: skip
        assert fragment in html


def test_safe_links_keep_their_address_and_open_without_referrer():
    html = render_markdown("[docs](https://docs.djangoproject.com/en/5.2/) and [mail](mailto:me@example.org)")
    assert '<a href="https://docs.djangoproject.com/en/5.2/" rel="nofollow noopener noreferrer">docs</a>' in html
    assert 'href="mailto:me@example.org"' in html


def test_an_empty_note_renders_to_nothing():
    assert render_markdown("") == ""


def test_list_excerpts_are_the_words_without_markup_and_never_html():
    assert plain_excerpt("## Summary\n\n**Events** are `facts` <b>x</b>") == "Summary Events are facts <b>x</b>"
    assert plain_excerpt("word " * 100).endswith("…")
    assert len(plain_excerpt("word " * 100)) <= 181
