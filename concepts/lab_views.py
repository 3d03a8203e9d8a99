"""Lab endpoints (commands, queries, controls). Filled in by the lab issue."""

from __future__ import annotations

urlpatterns: list = []
