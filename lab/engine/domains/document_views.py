"""The document log's read model, as a pure fold over its operations (the editing rules are in document.py).

- text: the document as readers see it, with how many inserts and deletes made it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lab.engine.domains.document import Event, Inserted, apply
from lab.engine.domains.spec import ReadModel


@dataclass(frozen=True)
class Text:
    version: int = 0
    text: str = ""
    inserts: int = 0
    deletes: int = 0


def apply_text(state: Text, event: Event) -> Text:
    inserted = isinstance(event, Inserted)
    return replace(
        state,
        text=apply(state.text, event),
        inserts=state.inserts + inserted,
        deletes=state.deletes + (not inserted),
    )


READ_MODELS = {"text": ReadModel("text", Text, Text, apply_text)}
