"""Which concepts a note can belong to: exactly the concept pages the content loader knows."""

from __future__ import annotations

from concepts import content


def concept_exists(slug: str) -> bool:
    return content.library().get(slug) is not None


def concept_title(slug: str) -> str:
    # A note outlives a concept file that was renamed or removed; it still needs a readable heading.
    concept = content.library().get(slug)
    return concept.title if concept else slug.replace("-", " ").capitalize()


def slugs_titled_like(query: str) -> list[str]:
    """Concepts whose title or slug contains the query, so "event sourcing" finds notes on that page."""
    wanted = query.casefold()
    return [
        concept.slug
        for concept in content.library().concepts.values()
        if wanted in concept.title.casefold() or wanted.replace(" ", "-") in concept.slug
    ]
