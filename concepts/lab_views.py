"""Lab endpoints (commands, queries, controls). Filled in by the lab issue."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

urlpatterns: list = []


def lab_context(request: HttpRequest) -> dict[str, Any]:
    """Context for templates/lab/panel.html on the concept page."""
    return {}
