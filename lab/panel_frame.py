"""What the panel's frame shows: the key under which templates/lab/panel.html keeps it rendered once.

The panel is a frame (headings, forms, buttons, help text: about 60% of its template's work on a page view) around
the partials that change from view to view (versions, the log, the projector's track, the read model). The frame
is rendered once per key and kept (`{% same_for_everyone ... partials_vary %}`, reqflow/same_for_everyone.py);
the partials and the few `{% per_visitor %}` holes in the frame are rendered for every view.

So the key must hold every value the frame outside those holes reads: two panels with the same key must render
the same frame. tests/integration/test_panel_frame.py renders many different panels after one another, each both
through the kept frame and with the tag taken out, and fails on any difference. What changes with most commands
(versions, the chart, the time-travel slider) is a hole instead, so a returning learner's frame is already kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.panel import Panel


def frame_key(panel: Panel) -> tuple[Hashable, ...]:
    state = panel.state
    return (
        panel.next,
        panel.ws_path,
        panel.presets,
        panel.speeds,
        panel.replay_rates,
        panel.time_zone_name,
        panel.undo_seconds,
        panel.lag_s,
        panel.replay_rate,
        panel.log.event_type,
        panel.controls_slot,
        panel.query_waited_for is not None,
        bool(panel.replay_version),
        bool(panel.tt_at or panel.tt_requested),
        tuple(sorted(panel.locked.items())),
        tuple(sorted(state.unavailable.items())),
        state.state_only,
        state.snapshot_interval,
        bool(state.rebuild.running),
        bool(state.retro.progress.running),
    )
