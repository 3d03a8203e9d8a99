"""Concept pages as content files: one Markdown file with YAML front matter per concept.

A file is ``concepts/content/<slug>.md``::

    ---
    slug: cqrs-event-sourcing          # the URL: /concepts/<slug>/ (by habit also the file name)
    title: CQRS & Event Sourcing
    category: Data                     # the catalog groups by this
    summary: One sentence.
    related: [idempotency-keys]        # slugs of other concept files (may be [])
    lab: account                       # optional: the concept has a live lab
    ---

    ## Try it
    Text before the panel.
    ::: lab
    Text after the panel.

    ## First time reading this? Start here {#start-here .collapsible}
    ...
    ## Where it shows up in our architectures {#architectures .cards}
    ### Payment Gateway
    One card per `###` heading.

Every ``## Heading`` is a section, in file order, with a stable anchor (the heading slugified, or ``{#id}``).
``.collapsible`` renders the section as a closed ``<details>``; ``.cards`` renders each ``###`` as a card.
A line ``::: lab`` marks where the live lab panel goes. Markdown is rendered with raw HTML disabled.

The whole folder is read once per process and cached. Any problem is a ContentError naming the file, and
``manage.py check`` reports every problem in every file (see concepts.checks).
"""

from __future__ import annotations

import functools
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings
from django.utils.html import strip_tags
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from markdown_it import MarkdownIt

from concepts import search

DEFAULT_CONTENT_DIR = Path(__file__).resolve().parent / "content"

# Brysbaert (2019): adults read English non-fiction silently at about 238 words a minute.
WORDS_PER_MINUTE = 238

REQUIRED_KEYS = ("slug", "title", "category", "summary", "related")
OPTIONAL_KEYS = ("lab", "quiz")
QUIZ_KEYS = {"question", "answer"}
KNOWN_CLASSES = {"collapsible", "cards"}
LAB_MARKER = "::: lab"

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*(?:\{([^{}]*)\})?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


class ContentError(Exception):
    """A concept file that cannot be used; the message starts with the file name."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path.name}: {problem}")


@dataclass(frozen=True)
class Card:
    title: str
    html: SafeString


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    kind: str  # "prose" | "collapsible" | "cards"
    html: SafeString  # the whole section (before the lab marker when there is one)
    html_after_lab: SafeString | None = None  # set when the section holds the lab panel
    cards: tuple[Card, ...] = ()

    @property
    def has_lab(self) -> bool:
        return self.html_after_lab is not None


@dataclass(frozen=True)
class QuizItem:
    """A "Check yourself" question; the answer is Markdown, revealed on demand."""

    question: str
    answer_html: SafeString


@dataclass(frozen=True)
class Concept:
    slug: str
    title: str
    category: str
    summary: str
    related: tuple[str, ...]
    lab: str | None
    sections: tuple[Section, ...]
    body_text: str  # plain text of every section, for search
    source: Path = field(compare=False)
    quiz: tuple[QuizItem, ...] = ()

    @property
    def words(self) -> int:
        return len(f"{self.summary} {self.body_text}".split())

    @property
    def read_minutes(self) -> int:
        return max(1, math.floor(self.words / WORDS_PER_MINUTE + 0.5))

    @functools.cached_property
    def _haystack(self) -> tuple[str, frozenset[str]]:
        """The searchable text, casefolded, and the stems of its words (computed once per process)."""
        text = f"{self.title}\n{self.summary}\n{self.body_text}".casefold()
        return text, search.stems(text)

    def matches(self, query: str) -> bool:
        """Every word of the query appears in the title, summary or body (case-insensitive), as typed or in another
        form of the same word (concepts.search: "eventual consistency" finds "eventually consistent")."""
        text, stems = self._haystack
        return all(search.term_matches(term, text, stems) for term in query.casefold().split())


@dataclass(frozen=True)
class Library:
    concepts: dict[str, Concept]  # by slug, in title order

    def get(self, slug: str) -> Concept | None:
        return self.concepts.get(slug)

    def search(self, query: str) -> list[Concept]:
        query = query.strip()
        return [c for c in self.concepts.values() if not query or c.matches(query)]

    @staticmethod
    def group(concepts: list[Concept]) -> list[tuple[str, list[Concept]]]:
        """(category, concepts) pairs, categories and titles in alphabetical order."""
        groups: dict[str, list[Concept]] = {}
        for concept in sorted(concepts, key=lambda c: (c.category.casefold(), c.title.casefold())):
            groups.setdefault(concept.category, []).append(concept)
        return list(groups.items())


def content_dir() -> Path:
    return Path(getattr(settings, "CONCEPTS_CONTENT_DIR", DEFAULT_CONTENT_DIR))


def library() -> Library:
    """The concepts in the configured folder, read once per process (raises ContentError on a bad file)."""
    return _cached_library(content_dir())


@functools.cache
def _cached_library(directory: Path) -> Library:
    concepts, errors = load_dir(directory)
    if errors:
        raise errors[0]
    return Library(concepts)


def load_dir(directory: Path) -> tuple[dict[str, Concept], list[ContentError]]:
    """Parse every ``*.md`` in the folder; return the good concepts and every problem found."""
    errors: list[ContentError] = []
    if not directory.is_dir():
        return {}, [ContentError(directory, "the concepts content folder does not exist")]
    parsed: list[Concept] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.md")):
        try:
            concept = parse_file(path)
        except ContentError as exc:
            errors.append(exc)
            continue
        if concept.slug in seen:
            errors.append(ContentError(path, f"duplicate slug {concept.slug!r} (also in {seen[concept.slug].name})"))
            continue
        seen[concept.slug] = path
        parsed.append(concept)
    if not parsed and not errors:
        errors.append(ContentError(directory, "no concept files (*.md) found"))
    for concept in parsed:
        unknown = [slug for slug in concept.related if slug not in seen]
        if unknown:
            errors.append(ContentError(concept.source, f"related names unknown slug(s): {', '.join(unknown)}"))
    ordered = sorted(parsed, key=lambda c: c.title.casefold())
    return {c.slug: c for c in ordered}, errors


def parse_file(path: Path) -> Concept:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ContentError(path, "not valid UTF-8") from None
    meta, body = _split_front_matter(path, text)
    _check_meta(path, meta)
    lab = meta.get("lab")
    sections = _parse_sections(path, body, has_lab=lab is not None)
    body_text = " ".join(_plain(s) for s in sections)
    return Concept(
        slug=meta["slug"],
        title=meta["title"].strip(),
        category=meta["category"].strip(),
        summary=meta["summary"].strip(),
        related=tuple(meta["related"]),
        lab=lab,
        sections=tuple(sections),
        body_text=body_text,
        source=path,
        quiz=_parse_quiz(path, meta.get("quiz")),
    )


def _parse_quiz(path: Path, raw: object) -> tuple[QuizItem, ...]:
    """The front matter's `quiz:` list of {question, answer} mappings (absent: no quiz)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ContentError(path, "front matter key 'quiz' must be a non-empty list of {question, answer} items")
    items = []
    for n, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or set(item) != QUIZ_KEYS:
            raise ContentError(path, f"quiz item {n} must have exactly the keys question and answer")
        if not all(isinstance(item[k], str) and item[k].strip() for k in QUIZ_KEYS):
            raise ContentError(path, f"quiz item {n}: question and answer must be non-empty text")
        items.append(QuizItem(question=item["question"].strip(), answer_html=_render(item["answer"])))
    return tuple(items)


def _split_front_matter(path: Path, text: str) -> tuple[dict, str]:
    text = text.lstrip("\ufeff")
    if not text.startswith("---\n"):
        raise ContentError(path, "missing front matter: the file must start with a '---' line")
    end = text.find("\n---\n", 3)
    if end == -1 and text.endswith("\n---"):
        end = len(text) - 4
    if end == -1:
        raise ContentError(path, "front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load(text[4:end])
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 2}" if where is not None else ""
        raise ContentError(path, f"bad YAML in front matter{line}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(meta, dict):
        raise ContentError(path, "front matter must be a YAML mapping (key: value lines)")
    return meta, text[end + 5 :]


def _check_meta(path: Path, meta: dict) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in meta]
    if missing:
        raise ContentError(path, f"missing front matter key(s): {', '.join(missing)}")
    unknown = sorted(set(meta) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise ContentError(path, f"unknown front matter key(s): {', '.join(map(str, unknown))}")
    for key in ("slug", "title", "category", "summary"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise ContentError(path, f"front matter key {key!r} must be non-empty text")
    if not _SLUG.match(meta["slug"]):
        raise ContentError(path, f"slug {meta['slug']!r} must be lowercase words joined by hyphens")
    related = meta["related"]
    if not isinstance(related, list) or not all(isinstance(s, str) for s in related):
        raise ContentError(path, "front matter key 'related' must be a list of slugs (use [] for none)")
    if meta["slug"] in related:
        raise ContentError(path, "related must not name the concept itself")
    if "lab" in meta and (not isinstance(meta["lab"], str) or not meta["lab"].strip()):
        raise ContentError(path, "front matter key 'lab' must be non-empty text when present")


def _parse_sections(path: Path, body: str, *, has_lab: bool) -> list[Section]:
    if not body.strip():
        raise ContentError(path, "empty body: add at least one '## Heading' section")
    raw: list[tuple[str, str, list[str]]] = []  # (heading, attrs, lines)
    in_fence = False
    for number, line in enumerate(body.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading and heading.group(1) == "##":
            raw.append((heading.group(2), heading.group(3) or "", []))
        elif raw:
            raw[-1][2].append(line)
        elif line.strip():
            raise ContentError(path, f"text before the first '## Heading' (body line {number}): {line.strip()[:40]!r}")
    if not raw:
        raise ContentError(path, "empty body: add at least one '## Heading' section")

    sections: list[Section] = []
    anchors: set[str] = set()
    lab_sections = 0
    for title, attrs, lines in raw:
        anchor, classes = _parse_attrs(path, title, attrs)
        if anchor in anchors or anchor == "your-notes":
            raise ContentError(path, f"two sections share the anchor {anchor!r}")
        anchors.add(anchor)
        source = "\n".join(lines).strip()
        if not source:
            raise ContentError(path, f"section {title!r} is empty")
        kind = "cards" if "cards" in classes else "collapsible" if "collapsible" in classes else "prose"
        marker_lines = [i for i, line in enumerate(lines) if line.strip() == LAB_MARKER]
        if len(marker_lines) > 1:
            raise ContentError(path, f"section {title!r} has more than one '{LAB_MARKER}' line")
        if marker_lines:
            if not has_lab:
                problem = f"section {title!r} has a '{LAB_MARKER}' line but the front matter has no 'lab'"
                raise ContentError(path, problem)
            lab_sections += 1
            cut = marker_lines[0]
            before, after = "\n".join(lines[:cut]), "\n".join(lines[cut + 1 :])
            sections.append(Section(anchor, title, kind, _render(before), html_after_lab=_render(after)))
        elif kind == "cards":
            sections.append(Section(anchor, title, kind, _render(""), cards=_parse_cards(path, title, lines)))
        else:
            sections.append(Section(anchor, title, kind, _render(source)))
    if has_lab and lab_sections == 0:
        raise ContentError(path, f"the front matter names a lab but no section has a '{LAB_MARKER}' line")
    if lab_sections > 1:
        raise ContentError(path, f"only one section may hold the '{LAB_MARKER}' panel")
    return sections


def _parse_attrs(path: Path, title: str, attrs: str) -> tuple[str, set[str]]:
    anchor = slugify(title)
    classes: set[str] = set()
    for token in attrs.split():
        if token.startswith("#") and _SLUG.match(token[1:]):
            anchor = token[1:]
        elif token.startswith(".") and token[1:] in KNOWN_CLASSES:
            classes.add(token[1:])
        else:
            known = ", ".join(f".{c}" for c in sorted(KNOWN_CLASSES))
            raise ContentError(path, f"section {title!r}: unknown attribute {token!r} (use #anchor, {known})")
    if not anchor:
        raise ContentError(path, f"section {title!r} needs an anchor: add {{#some-name}}")
    return anchor, classes


def _parse_cards(path: Path, title: str, lines: list[str]) -> tuple[Card, ...]:
    cards: list[tuple[str, list[str]]] = []
    for line in lines:
        heading = _HEADING.match(line)
        if heading and heading.group(1) == "###":
            cards.append((heading.group(2), []))
        elif cards:
            cards[-1][1].append(line)
        elif line.strip():
            raise ContentError(path, f"section {title!r} is .cards: start each card with a '### Title' line")
    if not cards:
        raise ContentError(path, f"section {title!r} is .cards but has no '### Title' cards")
    for card_title, card_lines in cards:
        if not "\n".join(card_lines).strip():
            raise ContentError(path, f"card {card_title!r} in section {title!r} is empty")
    return tuple(Card(t, _render("\n".join(body))) for t, body in cards)


def _render(source: str) -> SafeString:
    # html=False escapes any raw HTML in the file, so the output is safe to mark as such.
    return mark_safe(_markdown.render(source))  # noqa: S308  # nosec B308, B703


def _plain(section: Section) -> str:
    parts = [section.title, section.html, section.html_after_lab or ""]
    for card in section.cards:
        parts += [card.title, card.html]
    return " ".join(" ".join(html.unescape(strip_tags(p)).split()) for p in parts if p)
