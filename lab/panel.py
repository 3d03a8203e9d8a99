"""The panel: a lab state turned into HTML parts. Used by the views (full page, htmx answers) and by the
WebSocket consumer (pushes) alike, so every update path renders the same partials of templates/lab/panel.html.

A partial's name equals the DOM id it replaces. An htmx answer or a push sends the part that changed most
(`main`) and the others out of band (hx-swap-oob), so a page is current even when its WebSocket is down.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.template.context import make_context
from django.template.loader import get_template
from django.urls import reverse
from django.utils.safestring import SafeString

from lab import facts, forms, missions, predictions, queries, share, timeline
from lab.log_rows import row_html
from lab.models import Sandbox
from lab.panel_text import fold_text
from lab.sandboxes import UNDO_WINDOW_S, is_blank, sandbox_to_show, undo_offer
from lab.snapshot_rows import row_html as snapshot_row_html
from lab.tools import TOOLS
from lab.types import (
    EventPage,
    LabState,
    MissionProgress,
    QueryAnswer,
    Reasons,
    ReplayFrame,
    TemplateReadable,
    TimeTravelView,
)

PANEL = "lab/panel.html"
WS_PATH = "/ws/lab/"
LOG_PER_PAGE = 10
QUERY_WAIT_S = 5.0
CHART_WINDOW_S = 30  # the chart shows the last half minute: a learner's commands are seconds apart
TOKEN_LIMIT = 6  # in-flight tokens drawn on the projector's track; the rest are counted ("and 4 more")
REPLAY_RATES = (("2", "2 events a second"), ("10", "10 events a second"), ("50", "50 events a second"),
                ("0", "as fast as possible"))  # fmt: skip
STEP_PACES = (("0.5", "1 event every 2 s"), ("1", "1 event a second"), ("2", "2 events a second"),
              ("10", "10 events a second"), ("50", "50 events a second"))  # fmt: skip
FLASH_KEY = "lab_flash"  # a no-JavaScript form's outcome, kept in the session for the one render after it

# Partials every push and every htmx response refreshes out of band. Per-tab views (time travel, replay, query
# answer, a paged or filtered log) are not here: the consumer cannot know which one a tab is looking at.
LIVE_PARTS = (
    "lab-versions",
    "lab-missions",
    "lab-expected-version",
    "lab-summary",
    "lab-write-model",
    "lab-projection",
    "lab-read-model",
    "lab-read-history",
    "lab-event-log",
    "lab-snapshots",
    "lab-rebuild",
    "lab-retro",
    "lab-schema",
    "lab-predict-old-event",
)

# A push sends these after the rest, in a frame of their own. The log is most of a push's HTML (a row per event
# with its payload and ids); rendered, sent and swapped together with the versions, it held the read version
# back on the page by as long.
LATER_PARTS = ("lab-event-log", "lab-snapshots", "lab-schema", "lab-predict-old-event")

# What the projector changes: a push caused only by projector progress re-renders just these, so the page
# swaps (and the server renders) a small part of the HTML while the read model catches up.
READ_SIDE_PARTS = (
    "lab-versions",
    "lab-missions",
    "lab-summary",
    "lab-projection",
    "lab-read-model",
    "lab-read-history",
    "lab-rebuild",
    "lab-retro",
)

SHORT_ANSWER_PARTS = ("lab-command-result", "lab-command-id", "lab-expected-version")


@dataclass(frozen=True)
class CommandAnswer(TemplateReadable):
    """What the short answer to a command renders: its outcome, a fresh command id and the version it left."""

    result: dict[str, Any]
    expected_version: int
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Taken after the commit: any state read later is at least this new, and older pushes must not undo it.
    expected_version_stamp: int = field(default_factory=time.time_ns)


@dataclass
class Panel(TemplateReadable):
    """Everything templates/lab/panel.html renders; the concept page receives it as `lab`."""

    state: LabState
    next: str
    log_page: int = 1
    log_type: str = ""
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    result: dict[str, Any] | None = None  # the last command's outcome, for this tab only
    controls_message: dict[str, Any] | None = None  # {"ok": bool, "text": str}
    controls_slot: str = ""  # the id of the result slot beside the control that produced controls_message
    query: QueryAnswer | None = None
    query_waited_for: int | None = None
    tt_version: int = 0
    replay_version: int = 0
    errors: dict[str, str] = field(default_factory=Reasons)  # field -> its error; kept as Reasons, see below
    amount: str = ""
    ws_path: str = WS_PATH
    presets: tuple[str, ...] = forms.AMOUNT_PRESETS
    speeds: tuple[tuple[str, str], ...] = STEP_PACES
    replay_rates: tuple[tuple[str, str], ...] = REPLAY_RATES
    tt_at: str = ""  # the time of day the learner asked time travel for ("" = by version)
    tt_requested: bool = False  # the URL asked for a version (a no-JavaScript time travel): open that tool
    undo_due_ms: int | None = None  # until when a reset can be undone (epoch ms), None = nothing to undo
    reveal: predictions.Reveal | None = None  # the real answer to the prediction this tab just made
    shared: share.Landing | None = None  # a situation someone shared in this page's link, to confirm

    def __post_init__(self) -> None:
        # The templates ask for every field's error; as Reasons the fields without one answer "" directly
        # instead of through the template language's failed-lookup path. Callers may pass a plain dict.
        if not isinstance(self.errors, Reasons):
            self.errors = Reasons(self.errors)

    @property
    def expected_version(self) -> int:
        return self.state.write.version

    @property
    def expected_version_stamp(self) -> int:
        return self.state.stamp

    @property
    def lag_s(self) -> str:
        return f"{self.state.projector.lag_ms / 1000:.1f}"

    @property
    def replay_rate(self) -> str:
        return str(self.state.sandbox.replay_rate)

    # --- Missions (lab.missions): what to do next, and which tools the page shows so far --------------------------
    @cached_property
    def missions(self) -> MissionProgress:
        return missions.mission_progress(self.state.sandbox)

    @cached_property
    def revealed_tools(self) -> str:
        """The tools the missions have reached, space-separated: lab.js hides every other `data-tool`."""
        return " ".join(sorted(self.missions.revealed_tools))

    @cached_property
    def locked(self) -> dict[str, bool]:
        """tool name (with _ for -, for the template) -> hidden until its mission arrives. The first render sets the
        class; lab.js keeps it current from `revealed_tools` as missions are met."""
        return {name.replace("-", "_"): name not in self.missions.revealed_tools for name in TOOLS}

    @property
    def share_url(self) -> str:
        """ "Copy link": this situation (scenario, lag, time-travel position, mission) for another learner's own
        sandbox. lab.js puts the slider's current version in place of `tt`."""
        progress = self.missions
        state = share.SharedState(
            scenario=progress.scenario or None,
            lag_ms=self.state.projector.lag_ms,
            tt=self.tt_version if self.tt_requested else None,
            mission=progress.current.number if progress.current else 0,
        )
        return state.link(self.next)  # "" in a push: lab.js resolves it against the page's own address

    # The "Predict" questions, each asked only while the sandbox is in its situation (lab.predictions).
    @cached_property
    def predict_stale_query(self) -> predictions.Prediction | None:
        return predictions.ask(self.state, predictions.STALE_QUERY)

    @cached_property
    def predict_rebuild(self) -> predictions.Prediction | None:
        return predictions.ask(self.state, predictions.REBUILD)

    @cached_property
    def predict_old_event(self) -> predictions.Prediction | None:
        return predictions.ask(self.state, predictions.OLD_EVENT)

    @property
    def undo_seconds(self) -> int:
        return UNDO_WINDOW_S

    @property
    def undo_seconds_left(self) -> int:
        return max(0, -(-((self.undo_due_ms or 0) - int(time.time() * 1000)) // 1000))

    @property
    def upcast_shown(self) -> bool:
        """Stored v1 / read-as-v2 pairs only make sense once v2 has shipped; before, they are noise."""
        return self.state.deposit_schema_version >= 2

    @property
    def time_zone_name(self) -> str:
        return str(settings.TIME_ZONE)

    @property
    def time_travel_at(self) -> str:
        return self.tt_at

    @property
    def query_waited_s(self) -> str:
        return f"{self.query.waited_ms / 1000:.1f}" if self.query else "0.0"

    @property
    def max_version(self) -> int:
        return self.state.write.version

    @property
    def server_now_ms(self) -> int:
        now = self.state.server_now
        return int(now.timestamp() * 1000) if now else 0

    # The log page, time travel and replay frames are read only when a partial that shows them renders, so a
    # push of the read side alone never pays for them.
    @cached_property
    def log(self) -> EventPage:
        return timeline.event_page(self.state.sandbox, self.log_page, self.log_type or None, per_page=LOG_PER_PAGE)

    @cached_property
    def snapshot_rows(self) -> list[SafeString]:
        """The snapshots as rows of HTML, each rendered once per process (lab.snapshot_rows). Read only when the
        Snapshots tool renders, which a push of the read side alone leaves out."""
        sandbox = self.state.sandbox
        return [] if is_blank(sandbox) else [snapshot_row_html(s) for s in timeline.snapshots(sandbox)]

    @cached_property
    def time_travel(self) -> TimeTravelView:
        at = forms.time_travel_at({"at": self.tt_at})
        return timeline.time_travel(self.state.sandbox, self.tt_version, at, write=self.state.write)

    @cached_property
    def chart_series_json(self) -> str:
        """The chart's history (write and read versions over the last minute), so a reload keeps it."""
        return json.dumps(queries.chart_series(self.state.sandbox, window_s=CHART_WINDOW_S).as_json())

    @cached_property
    def replay(self) -> ReplayFrame:
        return timeline.replay_frame(self.state.sandbox, self.replay_version)

    @cached_property
    def in_flight(self) -> list[dict[str, Any]]:
        """Each event between the models with its due time, as text now and as epoch ms for lab.js's countdown."""
        now_ms = self.server_now_ms
        rows = []
        for event in self.state.in_flight:
            due_ms = int(event.due_at.timestamp() * 1000)
            rows.append({"event": event, "due_ms": due_ms, "remaining_s": f"{max(0, due_ms - now_ms) / 1000:.1f}"})
        return rows

    @cached_property
    def tokens(self) -> list[dict[str, Any]]:
        """The first events in flight, drawn as tokens on the projector's track (lab.js moves them with time)."""
        rows = self.in_flight[:TOKEN_LIMIT]
        for row in rows:
            row["recorded_ms"] = int(row["event"].recorded_at.timestamp() * 1000)
        return rows

    @property
    def tokens_more(self) -> int:
        return max(0, len(self.in_flight) - TOKEN_LIMIT)

    @property
    def last_applied(self) -> Any:
        """The newest event the read model has applied: its token sits on the read model."""
        return self.history[0] if self.history else None

    @property
    def replay_fold(self) -> str:
        """The step's arithmetic, "$35.00 + $50.00 = $85.00", from the balance after it and the event's amount."""
        frame = self.replay
        if frame.event is None or frame.amount is None:
            return ""
        return fold_text(frame.event.event_type, frame.amount, frame.state.balance)

    @property
    def chart_description(self) -> str:
        read = self.state.read
        behind = f"{read.behind} event{'s' if read.behind != 1 else ''} behind" if read.behind else "caught up"
        return (
            f"now the write model is at v={self.state.write.version} and the read model at v={read.version} ({behind})."
        )

    @property
    def crash_due_ms(self) -> int | None:
        until = self.state.projector.crashed_until
        return int(until.timestamp() * 1000) if until else None

    @property
    def crash_remaining_s(self) -> str:
        due = self.crash_due_ms
        return f"{max(0, (due or 0) - self.server_now_ms) / 1000:.1f}"

    @property
    def log_newer_page(self) -> int | None:
        return self.log.page - 1 if self.log.page > 1 else None

    @property
    def log_older_page(self) -> int | None:
        return self.log.page + 1 if self.log.page < self.log.pages else None

    @property
    def replay_prev(self) -> int:
        return max(0, self.replay_version - 1)

    @property
    def replay_next(self) -> int:
        return min(self.max_version, self.replay_version + 1)

    @cached_property
    def log_rows(self) -> list[SafeString]:
        """The log page's rows as HTML, each rendered once per process (lab.log_rows)."""
        shown, schema = self.upcast_shown, self.state.deposit_schema_version
        return [row_html(e, upcast_shown=shown, deposit_schema=schema) for e in self.log.events]

    @cached_property
    def history(self) -> list[Any]:
        """The read side's newest transactions first, at most ten (the full list is the event log's job)."""
        return list(reversed(self.state.read.history))[:10]


# --- Building the panel --------------------------------------------------------------------------------------


def _clamp(version: int | None, state: LabState, default: int) -> int:
    if version is None:
        return default
    return max(0, min(version, state.write.version))


def build_panel(
    request: HttpRequest | None,
    sandbox: Sandbox,
    *,
    params: QueryDict | None = None,
    next_url: str | None = None,
    sandbox_is_fresh: bool = False,
    **overrides: Any,
) -> Panel:
    """The panel for this request; `params` carries the per-tab views (log page and filter, time travel, replay)."""
    state = queries.lab_state(sandbox, sandbox_is_fresh=sandbox_is_fresh)
    params = params if params is not None else QueryDict()
    log_form = forms.LogForm({"page": params.get("log_page") or None, "type": params.get("log_type", "")})
    log_page, log_type = 1, ""
    if log_form.is_valid():
        log_page = log_form.cleaned_data["page"] or 1
        log_type = log_form.cleaned_data["type"] or ""
    tt_form = forms.VersionForm({"version": params.get("tt") or None})
    tt = _clamp(tt_form.cleaned_data["version"] if tt_form.is_valid() else None, state, state.write.version)
    rp_form = forms.VersionForm({"version": params.get("replay") or None})
    rp = _clamp(rp_form.cleaned_data["version"] if rp_form.is_valid() else None, state, 0)
    at = params.get("at", "")[:40]
    if state.state_only:  # no log to travel or replay through: the present only (lab.modes)
        tt, rp, at = state.write.version, 0, ""
    panel = Panel(
        state=state,
        log_page=log_page,
        log_type=log_type,
        next=next_url if next_url is not None else _default_next(request),
        tt_version=tt,
        tt_at=at,
        tt_requested="tt" in params,
        replay_version=rp,
    )
    for key, value in overrides.items():
        setattr(panel, key, value)
    return panel


def _default_next(request: HttpRequest | None) -> str:
    if request is None:
        return reverse("lab:page")
    # A lab endpoint is never a page to come back to; the standalone lab page is.
    if request.resolver_match and request.resolver_match.namespace == "lab":
        return reverse("lab:page")
    return request.path


def panel_for_page(request: HttpRequest) -> Panel:
    """The panel for a full page (the concept page or the standalone lab page): its per-tab views from the URL,
    the outcome a no-JavaScript form left in the session, and a query answer when the URL asks for one. A visitor
    without a sandbox sees a blank one: a page view creates nothing (lab.sandboxes.sandbox_to_show)."""
    sandbox = sandbox_to_show(request)  # the row, read just now: lab_state need not read it again
    flash = request.session.pop(FLASH_KEY, None) or {}
    panel = build_panel(
        request,
        sandbox,
        params=request.GET,
        next_url=request.path,
        sandbox_is_fresh=True,
        result=flash.get("result"),
        controls_message=flash.get("controls"),
        controls_slot=flash.get("slot", "lab-reset-result" if flash.get("controls") else ""),
        undo_due_ms=offer.until_ms if (offer := undo_offer(request.session)) else None,
    )
    panel.shared = share.landing(request.GET)
    if request.GET.get("tt") and panel.shared is None:
        facts.note_time_travel(sandbox, panel.tt_version)  # a no-JavaScript time travel counts for its mission
    if request.GET.get("lab_query"):
        if request.GET.get("read_your_writes"):
            panel.query_waited_for = queries.write_version(sandbox)
            panel.query = async_to_sync(queries.aquery)(sandbox, panel.query_waited_for, QUERY_WAIT_S)
        else:
            panel.query = queries.query(sandbox)
    return panel


# --- Rendering -----------------------------------------------------------------------------------------------


def render_parts(
    panel: Panel | CommandAnswer,
    names: tuple[str, ...] | list[str],
    *,
    main: str | None = None,
    request: HttpRequest | None = None,
) -> str:
    """The main partial (swapped into the element htmx targets) followed by out-of-band partials."""
    chunks = [render_panel(f"{PANEL}#{main}", {"lab": panel, "oob": False}, request)] if main else []
    for name in names:
        if name != main:
            chunks.append(render_panel(f"{PANEL}#{name}", {"lab": panel, "oob": True}, request))
    return "\n".join(chunks)


def render_panel(name: str, context: dict[str, Any], request: HttpRequest | None = None) -> SafeString:
    """The panel or one partial, numbers not localized (as `{% localize off %}` does in its template): in our locale
    that changes no character (tests/integration/test_panel_localization.py) and saves about 5% of a push."""
    engine_template: Any = get_template(name).template  # type: ignore[attr-defined]  # the backend's wraps it
    rendered: SafeString = engine_template.render(make_context(context, request, autoescape=True, use_l10n=False))
    return rendered
