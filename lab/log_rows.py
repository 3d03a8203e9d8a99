"""The event log's rows as HTML, each rendered once per process and kept.

A stored event never changes, so neither does its row: every push after a command re-rendered the ten newest rows
(a fifth of the push's rendering time, and of a page's), and only one of them was new. A row depends on the event
and on two things the sandbox decides (whether stored/read-as pairs show, and the schema deposits are read as), so
those are its key, with the event's id (positions repeat in a test database that was emptied) and the time zone its
time is shown in (one per site today, but a row must not depend on that staying so). At most ROWS_KEPT
rows are kept (about 3 KB each), the least recently shown going first (lab.rendered_once).
"""

from __future__ import annotations

import json

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString

from lab.panel_text import event_amount, event_json
from lab.rendered_once import RenderedOnce
from lab.types import EventView

ROW_TEMPLATE = "lab/_event_row.html"
ROWS_KEPT = 2048

_rows = RenderedOnce(ROWS_KEPT)


def row_html(event: EventView, *, upcast_shown: bool, deposit_schema: int) -> SafeString:
    """The event's row, rendered now or earlier with the same key."""
    upcast_schema = deposit_schema if event.event_type == "Deposited" else event.schema_version
    key = (event.event_id, event.position, upcast_shown, upcast_schema, timezone.get_current_timezone_name())

    def render() -> SafeString:
        row = {
            "event": event,
            "json": event_json(event),
            "raw_json": json.dumps(event.raw_payload, default=str),
            "upcast_json": json.dumps(event.upcast_payload, default=str),
            "upcast_schema": upcast_schema,
            "amount": event_amount(event),
        }
        # safe: the template escaped it
        return render_to_string(ROW_TEMPLATE, {"row": row, "upcast_shown": upcast_shown})

    return _rows.get(key, render)
