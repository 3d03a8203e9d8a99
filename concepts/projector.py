"""The asynchronous projector (filled in by the engine issue)."""

from __future__ import annotations


def start_embedded_projector() -> None:
    """Called once per process from inside the running event loop (reqflow.asgi)."""
    return None


def notify_appended(sandbox_id: object) -> None:
    """Wake the projector after an append committed. Thread-safe; a no-op when none runs in this process."""
    return None
