"""The event log's rows as HTML, each rendered once per process and kept.

A stored event never changes, so neither does its row: every push after a command re-rendered the ten newest rows
(a fifth of the push's rendering time, and of a page's), and only one of them was new. A row depends on the event
and on two things the sandbox decides (whether stored/read-as pairs show, and the schema deposits are read as), so
those are its key, with the event's id (positions repeat in a test database that was emptied). At most ROWS_KEPT
rows are kept (about 3 KB each), the least recently shown going first.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from lab.panel_text import event_amount, event_json
from lab.types import EventView

ROW_TEMPLATE = "lab/_event_row.html"
ROWS_KEPT = 2048

_rows: OrderedDict[tuple[str, int, bool, int], SafeString] = OrderedDict()
_lock = threading.Lock()  # pushes and requests render on several threads


def row_html(event: EventView, *, upcast_shown: bool, deposit_schema: int) -> SafeString:
    """The event's row, rendered now or earlier with the same key."""
    upcast_schema = deposit_schema if event.event_type == "Deposited" else event.schema_version
    key = (event.event_id, event.position, upcast_shown, upcast_schema)
    with _lock:
        if (html := _rows.get(key)) is not None:
            _rows.move_to_end(key)
            return html
    row = {
        "event": event,
        "json": event_json(event),
        "raw_json": json.dumps(event.raw_payload, default=str),
        "upcast_json": json.dumps(event.upcast_payload, default=str),
        "upcast_schema": upcast_schema,
        "amount": event_amount(event),
    }
    html = render_to_string(ROW_TEMPLATE, {"row": row, "upcast_shown": upcast_shown})  # safe: the template escaped it
    with _lock:
        _rows[key] = html
        while len(_rows) > ROWS_KEPT:
            _rows.popitem(last=False)
    return html
