"""The Snapshots tool's rows as HTML, each rendered once per process and kept (lab.rendered_once).

Every command's push and every page view re-rendered the whole snapshot list (about an eighth of a command push's
rendering), though a row changes only when its snapshot does. The key is everything the row shows: its version,
balance, reason, time (and the time zone it is shown in) and whether the current code would use it.
"""

from __future__ import annotations

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString

from lab.rendered_once import RenderedOnce
from lab.types import SnapshotView

ROW_TEMPLATE = "lab/_snapshot_row.html"
ROWS_KEPT = 1024  # a sandbox shows at most 100 (lab.timeline.snapshots); each row is about 300 bytes

_rows = RenderedOnce(ROWS_KEPT)


def row_html(snapshot: SnapshotView) -> SafeString:
    """The snapshot's row, rendered now or earlier from the same values."""
    balance = snapshot.state.get("balance") if isinstance(snapshot.state, dict) else None
    key = (snapshot.version, repr(balance), snapshot.reason, snapshot.taken_at, timezone.get_current_timezone_name(),
           snapshot.valid)  # fmt: skip
    return _rows.get(key, lambda: render_to_string(ROW_TEMPLATE, {"s": snapshot}))
