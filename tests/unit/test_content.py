"""The content loader: what a concept file may look like, and how each mistake is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from concepts import content
from concepts.content import ContentError, load_dir, parse_file

# The product owner's seed text, copied into the repo so a fresh clone can test against it.
SEED = Path(__file__).resolve().parents[1] / "data" / "cqrs-event-sourcing.seed.txt"
REAL_DIR = content.DEFAULT_CONTENT_DIR


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def concept_file(slug: str = "sharding", *, related: str = "[]", body: str | None = None, extra: str = "") -> str:
    if body is None:
        body = "## What it is\n\nSplitting one dataset across many databases by a shard key.\n"
    return (
        f"---\nslug: {slug}\ntitle: {slug.replace('-', ' ').title()}\ncategory: Scaling\n"
        f"summary: A one-line summary of {slug}.\nrelated: {related}\n{extra}---\n\n{body}"
    )


def only_problem(directory: Path) -> str:
    _, problems = load_dir(directory)
    assert len(problems) == 1, [str(p) for p in problems]
    return str(problems[0])


def test_the_cqrs_file_has_the_seed_sections_in_the_seed_order():
    concept = parse_file(REAL_DIR / "cqrs-event-sourcing.md")
    assert [s.title for s in concept.sections] == [
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
    ]
    assert [s.anchor for s in concept.sections][:2] == ["try-it", "start-here"]
    assert concept.sections[1].kind == "collapsible"
    cards = concept.sections[7].cards
    assert [c.title for c in cards] == [
        "Payment Gateway",
        "Stock Exchange (Matching Engine)",
        "Google Docs (Realtime Collab)",
    ]
    assert concept.sections[0].has_lab and concept.lab == "account"


def test_the_cqrs_read_time_is_the_3_minutes_the_seed_page_shows():
    concept = parse_file(REAL_DIR / "cqrs-event-sourcing.md")
    assert "3 min read" in SEED.read_text()
    assert concept.read_minutes == 3


def test_read_time_is_computed_from_the_words(tmp_path):
    words = " ".join(["word"] * (content.WORDS_PER_MINUTE * 5))
    write(tmp_path, "long-read.md", concept_file("long-read", body=f"## What it is\n\n{words}\n"))
    write(tmp_path, "short-read.md", concept_file("short-read"))
    concepts, problems = load_dir(tmp_path)
    assert problems == []
    assert concepts["long-read"].read_minutes == 5
    assert concepts["short-read"].read_minutes == 1


def test_the_real_content_folder_loads_without_problems():
    concepts, problems = load_dir(REAL_DIR)
    assert problems == []
    assert "cqrs-event-sourcing" in concepts


def test_a_valid_file_gives_its_front_matter_sections_and_related_slugs(tmp_path):
    write(tmp_path, "sharding.md", concept_file("sharding", related="[replication]"))
    write(
        tmp_path,
        "replication.md",
        concept_file(
            "replication",
            body="## How it works {#how .collapsible}\n\nCopies of the data on several nodes.\n\n"
            "## Where it shows up {.cards}\n\n### Chat\n\nMessages are replicated.\n\n### Feed\n\nPosts are too.\n",
        ),
    )
    concepts, problems = load_dir(tmp_path)
    assert problems == []
    sharding, replication = concepts["sharding"], concepts["replication"]
    assert (sharding.title, sharding.category, sharding.related) == ("Sharding", "Scaling", ("replication",))
    assert [(s.anchor, s.kind) for s in replication.sections] == [
        ("how", "collapsible"),
        ("where-it-shows-up", "cards"),
    ]
    assert [c.title for c in replication.sections[1].cards] == ["Chat", "Feed"]
    assert "<p>Copies of the data on several nodes.</p>" in replication.sections[0].html


def test_raw_html_in_a_file_is_shown_as_text_not_run(tmp_path):
    write(tmp_path, "xss.md", concept_file("xss", body="## What it is\n\n<script>alert(1)</script> and *emphasis*\n"))
    concept = load_dir(tmp_path)[0]["xss"]
    assert "<script>" not in concept.sections[0].html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in concept.sections[0].html
    assert "<em>emphasis</em>" in concept.sections[0].html


def test_the_lab_marker_splits_its_section_around_the_panel(tmp_path):
    body = "## Try it\n\nBefore the panel.\n\n::: lab\n\nAfter the panel.\n"
    write(tmp_path, "lab-demo.md", concept_file("lab-demo", body=body, extra="lab: account\n"))
    section = load_dir(tmp_path)[0]["lab-demo"].sections[0]
    assert section.has_lab
    assert "Before the panel." in section.html and "After" not in section.html
    assert "After the panel." in section.html_after_lab


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("no-front.md", "## What it is\n\nText.\n", "missing front matter"),
        ("unclosed.md", "---\nslug: unclosed\n\n## What it is\n", "not closed"),
        ("bad-yaml.md", "---\nslug: bad-yaml\ntitle: [unclosed\n---\n\n## A\n\nB\n", "bad YAML in front matter"),
        ("list-yaml.md", "---\n- just\n- a list\n---\n\n## A\n\nB\n", "must be a YAML mapping"),
        (
            "missing-summary.md",
            "---\nslug: missing-summary\ntitle: T\ncategory: C\nrelated: []\n---\n\n## A\n\nB\n",
            "missing front matter key(s): summary",
        ),
        ("typo-key.md", concept_file("typo-key", extra="catgory: Oops\n"), "unknown front matter key(s): catgory"),
        (
            "blank-title.md",
            concept_file("blank-title").replace("title: Blank Title", "title: ''"),
            "'title' must be non-empty text",
        ),
        ("Bad_Slug.md", concept_file("Bad_Slug"), "must be lowercase words joined by hyphens"),
        ("related-str.md", concept_file("related-str", related="sharding"), "'related' must be a list of slugs"),
        ("self-related.md", concept_file("self-related", related="[self-related]"), "must not name the concept itself"),
        ("empty-body.md", concept_file("empty-body", body="\n\n"), "empty body"),
        ("no-heading.md", concept_file("no-heading", body="Just a paragraph.\n"), "text before the first '## Heading'"),
        (
            "empty-section.md",
            concept_file("empty-section", body="## What it is\n\n## Gotchas\n\nOne.\n"),
            "section 'What it is' is empty",
        ),
        (
            "same-anchor.md",
            concept_file("same-anchor", body="## Gotchas\n\nA\n\n## Gotchas\n\nB\n"),
            "two sections share the anchor 'gotchas'",
        ),
        ("odd-attr.md", concept_file("odd-attr", body="## Gotchas {.shiny}\n\nA\n"), "unknown attribute '.shiny'"),
        (
            "no-cards.md",
            concept_file("no-cards", body="## Systems {.cards}\n\nNo card headings.\n"),
            "start each card with a '### Title' line",
        ),
        (
            "marker-only.md",
            concept_file("marker-only", body="## Try it\n\nA\n\n::: lab\n\nB\n"),
            "front matter has no 'lab'",
        ),
        ("lab-no-marker.md", concept_file("lab-no-marker", extra="lab: account\n"), "no section has a '::: lab' line"),
    ],
)
def test_each_malformed_file_is_reported_with_its_name_and_problem(tmp_path, name, text, problem):
    write(tmp_path, name, text)
    message = only_problem(tmp_path)
    assert message.startswith(f"{name}: ")
    assert problem in message


def test_a_duplicate_slug_names_both_files(tmp_path):
    write(tmp_path, "sharding.md", concept_file("sharding"))
    write(tmp_path, "sharding-v2.md", concept_file("sharding"))
    # Files are read in name order, so the second one read is the one reported.
    assert only_problem(tmp_path) == "sharding.md: duplicate slug 'sharding' (also in sharding-v2.md)"


def test_a_related_slug_that_no_file_has_is_named(tmp_path):
    write(tmp_path, "sharding.md", concept_file("sharding", related="[replication, gossip]"))
    write(tmp_path, "replication.md", concept_file("replication"))
    assert only_problem(tmp_path) == "sharding.md: related names unknown slug(s): gossip"


def test_an_empty_or_missing_folder_is_a_problem(tmp_path):
    assert "no concept files" in only_problem(tmp_path)
    assert "does not exist" in only_problem(tmp_path / "nowhere")


def test_manage_py_check_fails_naming_the_file_and_the_problem(tmp_path, settings):
    write(tmp_path, "sharding.md", concept_file("sharding"))
    write(tmp_path, "broken.md", concept_file("broken").replace("category: Scaling\n", ""))
    settings.CONCEPTS_CONTENT_DIR = tmp_path
    with pytest.raises(SystemCheckError) as failure:
        call_command("check")
    assert "broken.md: missing front matter key(s): category" in str(failure.value)
    assert "sharding.md" not in str(failure.value)


def test_manage_py_check_passes_on_the_real_content():
    call_command("check")


def test_the_library_is_read_once_and_cached_per_folder(tmp_path, settings):
    write(tmp_path, "sharding.md", concept_file("sharding"))
    settings.CONCEPTS_CONTENT_DIR = tmp_path
    first = content.library()
    write(tmp_path, "replication.md", concept_file("replication"))
    assert content.library() is first
    assert list(first.concepts) == ["sharding"]


def test_the_library_raises_the_first_problem_instead_of_serving_a_broken_catalog(tmp_path, settings):
    write(tmp_path, "empty-body.md", concept_file("empty-body", body=""))
    settings.CONCEPTS_CONTENT_DIR = tmp_path
    with pytest.raises(ContentError, match=r"^empty-body\.md: empty body"):
        content.library()


def test_search_needs_every_word_somewhere_in_title_summary_or_body(tmp_path):
    write(tmp_path, "sharding.md", concept_file("sharding", body="## What it is\n\nThe shard KEY picks a database.\n"))
    write(tmp_path, "replication.md", concept_file("replication"))
    library = content.Library(load_dir(tmp_path)[0])
    assert [c.slug for c in library.search("key picks")] == ["sharding"]  # body, any case
    assert [c.slug for c in library.search("REPLICATION")] == ["replication"]  # title
    assert [c.slug for c in library.search("one-line summary")] == ["replication", "sharding"]  # summary
    assert library.search("picks replication") == []
    assert len(library.search("   ")) == 2


def test_the_cqrs_page_has_five_check_yourself_questions_with_answers():
    concept = parse_file(content.content_dir() / "cqrs-event-sourcing.md")
    assert len(concept.quiz) == 5
    assert all(item.question.endswith("?") and "<p>" in item.answer_html for item in concept.quiz)


@pytest.mark.parametrize(
    ("quiz", "problem"),
    [
        ("quiz: []", "must be a non-empty list"),
        ("quiz: just text", "must be a non-empty list"),
        ("quiz:\n  - question: Why?", "quiz item 1 must have exactly the keys question and answer"),
        ("quiz:\n  - question: Why?\n    answer: ''", "quiz item 1: question and answer must be non-empty text"),
        ("quiz:\n  - question: Why?\n    answer: Because.\n    hint: no", "quiz item 1 must have exactly the keys"),
    ],
)
def test_a_malformed_quiz_names_the_file_and_the_problem(tmp_path, quiz, problem):
    write(tmp_path, "sharding.md", concept_file("sharding", extra=quiz + "\n"))
    message = only_problem(tmp_path)
    assert message.startswith("sharding.md: ") and problem in message
