from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def notes_context(request: HttpRequest, concept_slug: str) -> dict[str, Any]:
    """Context for templates/notes/box.html on a concept page."""
    return {"notes_concept_slug": concept_slug}
