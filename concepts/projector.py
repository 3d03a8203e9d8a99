"""The asynchronous projector (filled in by the engine issue)."""

from __future__ import annotations


def start_embedded_projector() -> None:
    return None
