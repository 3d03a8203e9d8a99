"""Lab endpoints: commands, queries and controls as ordinary forms, enhanced by htmx.

Every endpoint answers three ways from the same partials in templates/lab/panel.html:
- htmx (HX-Request): the partial the form targets, plus out-of-band partials so the page is current even when
  its WebSocket is down;
- a plain browser POST (no JavaScript): redirect back to the page's lab anchor with the outcome kept in the session
  for one render (post/redirect/get), or, on bad input, the lab page re-rendered with the message and a 4xx;
- a plain browser GET of a partial endpoint: the standalone lab page.

The sandbox always comes from the session (concepts.sandboxes); nothing in a request names one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from concepts import forms
from concepts.lab import EventPage, LabState, QueryAnswer, lab_state
from concepts.live import publish
from concepts.models import Sandbox

log = logging.getLogger("concepts.lab")

PANEL = "lab/panel.html"
PAGE = "lab/page.html"
WS_PATH = "/ws/lab/"
LOG_PER_PAGE = 10
QUERY_WAIT_S = 5.0
FLASH_KEY = "lab_flash"

# Partials every push and every htmx response refreshes out of band. Per-tab views (time travel, replay, query
# answer, a paged or filtered log) are not here: the consumer cannot know which one a tab is looking at.
LIVE_PARTS = (
    "lab-versions",
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
)


@dataclass
class Panel:
    """Everything templates/lab/panel.html renders; the concept page receives it as `lab`."""

    state: LabState
    next: str
    log_page: int = 1
    log_type: str = ""
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    result: dict[str, Any] | None = None  # the last command's outcome, for this tab only
    controls_message: dict[str, Any] | None = None  # {"ok": bool, "text": str}
    query: QueryAnswer | None = None
    query_waited_for: int | None = None
    tt_version: int = 0
    replay_version: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    amount: str = ""
    ws_path: str = WS_PATH
    presets: tuple[str, ...] = forms.AMOUNT_PRESETS
    speeds: tuple[str, ...] = ("0.25", "0.5", "1", "2", "4")

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
        return _event_page(self.state.sandbox, self.log_page, self.log_type)

    @cached_property
    def time_travel(self) -> Any:
        return _time_travel(self.state.sandbox, self.tt_version)

    @cached_property
    def replay(self) -> Any:
        return _replay_frame(self.state.sandbox, self.replay_version)

    @cached_property
    def in_flight(self) -> list[dict[str, Any]]:
        """Each event between the models with its due time, as text now and as epoch ms for lab.js's countdown."""
        now_ms = self.server_now_ms
        rows = []
        for event in self.state.in_flight:
            due_ms = int(event.due_at.timestamp() * 1000)
            rows.append({"event": event, "due_ms": due_ms, "remaining_s": f"{max(0, due_ms - now_ms) / 1000:.1f}"})
        return rows

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
    def log_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "event": e,
                "json": _event_json(e),
                "raw_json": json.dumps(e.raw_payload, default=str),
                "upcast_json": json.dumps(e.upcast_payload, default=str),
            }
            for e in self.log.events
        ]

    @cached_property
    def history(self) -> list[Any]:
        """The read side's newest transactions first, at most ten (the full list is the event log's job)."""
        return list(reversed(self.state.read.history))[:10]


def _event_json(event: Any) -> str:
    return json.dumps(
        {
            "position": event.position,
            "version": event.version,
            "type": event.event_type,
            "schema_version": event.schema_version,
            "recorded_at": event.recorded_at.isoformat(),
            "payload": event.raw_payload,
            "upcast_payload": event.upcast_payload,
            "event_id": event.event_id,
            "command_id": event.command_id,
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
        },
        indent=2,
        default=str,
    )


# --- building the panel ---------------------------------------------------------------------------


def _sandbox(request: HttpRequest) -> Sandbox:
    from concepts import sandboxes

    return sandboxes.sandbox_for_request(request)


def _event_page(sandbox: Sandbox, page: int, event_type: str | None) -> EventPage:
    from concepts import writeside

    return writeside.event_page(sandbox, page=page, event_type=event_type or None, per_page=LOG_PER_PAGE)


def _clamp(version: int | None, state: LabState, default: int) -> int:
    if version is None:
        return default
    return max(0, min(version, state.write.version))


def _time_travel(sandbox: Sandbox, version: int) -> Any:
    from concepts import writeside

    return writeside.state_at(sandbox, version)


def _replay_frame(sandbox: Sandbox, version: int) -> Any:
    from concepts import writeside

    return writeside.replay_frame(sandbox, version)


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
    state = lab_state(sandbox, sandbox_is_fresh=sandbox_is_fresh)
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
    panel = Panel(
        state=state,
        log_page=log_page,
        log_type=log_type,
        next=next_url if next_url is not None else _default_next(request),
        tt_version=tt,
        replay_version=rp,
    )
    for key, value in overrides.items():
        setattr(panel, key, value)
    return panel


def _default_next(request: HttpRequest | None) -> str:
    if request is None:
        return reverse("concepts:lab-page")
    # A lab endpoint is never a page to come back to; the standalone lab page is.
    if request.resolver_match and (request.resolver_match.url_name or "").startswith("lab-"):
        return reverse("concepts:lab-page")
    return request.path


def lab_context(request: HttpRequest) -> dict[str, Any]:
    """Context for templates/lab/panel.html on the concept page: {"lab": Panel}."""
    sandbox = _sandbox(request)
    flash = request.session.pop(FLASH_KEY, None) or {}
    panel = build_panel(
        request,
        sandbox,
        params=request.GET,
        next_url=request.path,
        result=flash.get("result"),
        controls_message=flash.get("controls"),
    )
    if request.GET.get("lab_query"):
        _answer_into(request, panel, sandbox, read_your_writes=bool(request.GET.get("read_your_writes")))
    return {"lab": panel}


def _answer_into(request: HttpRequest, panel: Panel, sandbox: Sandbox, *, read_your_writes: bool) -> None:
    from concepts import readside

    if read_your_writes:
        wait_for = readside.write_version(sandbox)
        panel.query = async_to_sync(readside.aquery)(sandbox, wait_for, QUERY_WAIT_S)
        panel.query_waited_for = wait_for
    else:
        panel.query = readside.query(sandbox)


# --- rendering --------------------------------------------------------------------------------------


def render_parts(
    panel: Panel | CommandAnswer,
    names: tuple[str, ...] | list[str],
    *,
    main: str | None = None,
    request: HttpRequest | None = None,
) -> str:
    """The main partial (swapped into the element htmx targets) followed by out-of-band partials."""
    chunks = []
    if main:
        chunks.append(render_to_string(f"{PANEL}#{main}", {"lab": panel, "oob": False}, request=request))
    for name in names:
        if name != main:
            chunks.append(render_to_string(f"{PANEL}#{name}", {"lab": panel, "oob": True}, request=request))
    return "\n".join(chunks)


def _htmx_response(request: HttpRequest, panel: Panel, main: str, *, status: int = 200, extra=()) -> HttpResponse:  # type: ignore[no-untyped-def]
    response = HttpResponse(render_parts(panel, (*LIVE_PARTS, *extra), main=main, request=request), status=status)
    # The response names its own target, so an error answer never lands where the success one would have.
    response["HX-Retarget"] = f"#{main}"
    response["HX-Reswap"] = "outerHTML"
    return response


def _page(request: HttpRequest, panel: Panel, *, status: int = 200) -> HttpResponse:
    return HttpResponse(render_to_string(PAGE, {"lab": panel}, request=request), status=status)


def _back(request: HttpRequest, anchor: str, flash: dict[str, Any]) -> HttpResponse:
    request.session[FLASH_KEY] = flash
    target = forms.safe_next(request.POST.get("next"), request, reverse("concepts:lab-page"))
    return HttpResponseRedirect(f"{target}#{anchor}", status=303)


def _next(request: HttpRequest) -> str:
    return forms.safe_next(request.POST.get("next") or request.GET.get("next"), request, reverse("concepts:lab-page"))


def _first_error(form: Any) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "That input is not valid."


def _changed(sandbox: Sandbox, reason: str) -> None:
    """Tell the sandbox's other tabs; a duplicate of the engine's own hint is harmless (pushes coalesce)."""
    publish(sandbox.pk, reason)


# --- commands ---------------------------------------------------------------------------------------


def _result(outcome: Any) -> dict[str, Any]:
    return {
        "accepted": outcome.accepted,
        "message": outcome.message,
        "rule": outcome.rule,
        "replayed": outcome.replayed,
        "write_version": outcome.write_version,
        "events": [{"position": e.position, "version": e.version, "event_type": e.event_type} for e in outcome.events],
    }


# A push sends these after the rest, in a frame of their own. The log is most of a push's HTML (a row per event
# with its payload and ids); rendered, sent and swapped together with the versions, it held the read version
# back on the page by as long.
LATER_PARTS = ("lab-event-log", "lab-snapshots", "lab-schema")

# What the projector changes: a push caused only by projector progress re-renders just these, so the page
# swaps (and the server renders) about a third of the HTML while the read model catches up.
READ_SIDE_PARTS = (
    "lab-versions",
    "lab-summary",
    "lab-projection",
    "lab-read-model",
    "lab-read-history",
    "lab-rebuild",
    "lab-retro",
)

# Sent by lab.js on a command while the page's WebSocket is open.
LIVE_HEADER = "X-Lab-Live"
SHORT_ANSWER_PARTS = ("lab-command-result", "lab-command-id", "lab-expected-version")


@dataclass(frozen=True)
class CommandAnswer:
    """What the short answer to a command renders: its outcome, a fresh command id and the version it left."""

    result: dict[str, Any]
    expected_version: int
    command_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Taken after the commit: any state read later is at least this new, and older pushes must not undo it.
    expected_version_stamp: int = field(default_factory=time.time_ns)


@require_POST
def command(request: HttpRequest) -> HttpResponse:
    from concepts import writeside

    sandbox = _sandbox(request)
    form = forms.CommandForm(request.POST)
    if not form.is_valid():
        message = _first_error(form)
        field_name = next(iter(form.errors), "amount")
        result = {"accepted": False, "message": message, "rule": "input", "events": [], "invalid": True}
        panel = build_panel(
            request,
            sandbox,
            next_url=_next(request),
            result=result,
            errors={field_name: message},
            amount=request.POST.get("amount", "")[:32],
        )
        if request.htmx:
            return HttpResponse(render_parts(panel, (), main="lab-command-result", request=request), status=400)
        return _page(request, panel, status=400)

    data = form.cleaned_data
    outcome = writeside.send_command(
        sandbox,
        data["kind"],
        data["amount"],
        command_id=data["command_id"],
        expected_version=data["expected_version"],
    )
    result = _result(outcome)
    status = {"concurrency": 409, "limit": 422}.get(outcome.rule or "", 200)
    if status == 409:
        result["message"] = f"The account changed meanwhile (it is now at v={outcome.write_version}); retry."
    if request.htmx and request.headers.get(LIVE_HEADER) == "1" and status == 200 and not outcome.replayed:
        # The page's socket is open and the push after this commit brings every other part; answering with just
        # the outcome keeps this request (and the push competing with it for the CPU) short.
        answer = CommandAnswer(result=result, expected_version=outcome.write_version)
        return HttpResponse(render_parts(answer, SHORT_ANSWER_PARTS, main="lab-command-result"), status=status)
    if request.htmx:
        panel = build_panel(request, sandbox, next_url=_next(request), result=result)
        return _htmx_response(request, panel, "lab-command-result", status=status, extra=("lab-command-id",))
    if status != 200:
        panel = build_panel(request, sandbox, next_url=_next(request), result=result)
        return _page(request, panel, status=status)
    return _back(request, "lab-write", {"result": result})


# --- controls ---------------------------------------------------------------------------------------


def _control(request: HttpRequest, form: Any, apply: Any, anchor: str = "lab-controls") -> HttpResponse:
    """Validate, apply, tell other tabs, answer. `apply(sandbox, cleaned_data)` returns the message to show."""
    sandbox = _sandbox(request)
    if form.is_valid():
        try:
            message = {"ok": True, "text": apply(sandbox, form.cleaned_data)}
            status = 200
        except ValueError as exc:  # the engine's own range checks speak for themselves
            message, status = {"ok": False, "text": str(exc)}, 400
    else:
        message, status = {"ok": False, "text": _first_error(form)}, 400
    if status == 200:
        _changed(sandbox, "settings")
    if request.htmx:
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message)
        return _htmx_response(request, panel, "lab-controls-result", status=status)
    if status != 200:
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message)
        return _page(request, panel, status=status)
    return _back(request, anchor, {"controls": message})


@require_POST
def set_lag(request: HttpRequest) -> HttpResponse:
    from concepts import writeside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        ms = writeside.set_lag(sandbox, data["lag"])
        return f"Projection lag set to {ms / 1000:.1f} s."

    return _control(request, forms.LagForm(request.POST), apply)


@require_POST
def set_snapshot_interval(request: HttpRequest) -> HttpResponse:
    from concepts import writeside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        writeside.set_snapshot_interval(sandbox, data["interval"])
        n = data["interval"]
        return "Automatic snapshots are off." if n == 0 else f"A snapshot every {n} events."

    return _control(request, forms.SnapshotIntervalForm(request.POST), apply)


@require_POST
def set_schema(request: HttpRequest) -> HttpResponse:
    from concepts import writeside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        writeside.set_deposit_schema(sandbox, data["version"])
        if data["version"] == 2:
            return "New deposits are stored as schema v2; older ones stay v1 and are upcast on read."
        return "New deposits are stored as schema v1 again."

    return _control(request, forms.SchemaForm(request.POST), apply)


@require_POST
def projector_control(request: HttpRequest) -> HttpResponse:
    from concepts import readside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        action = data["action"]
        if action == "pause":
            readside.pause_projection(sandbox)
            return "Projection paused: commands still succeed, the read model stops moving."
        if action == "resume":
            readside.resume_projection(sandbox)
            return "Projection resumed from its checkpoint."
        if action == "retry":
            count = readside.retry_dead_letter(sandbox)
            return f"Retrying {count} dead-lettered event{'s' if count != 1 else ''}." if count else "Nothing to retry."
        readside.crash_projector(sandbox, CRASH_DOWNTIME_S)
        return f"Projector crashed; it restarts from its checkpoint in {CRASH_DOWNTIME_S:g} s."

    return _control(request, forms.ProjectorForm(request.POST), apply, anchor="lab-log")


CRASH_DOWNTIME_S = 3.0


@require_POST
def take_snapshot(request: HttpRequest) -> HttpResponse:
    from concepts import writeside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        snap = writeside.take_snapshot(sandbox)
        version = getattr(snap, "version", None)
        return f"Snapshot taken at v={version}." if version is not None else "Snapshot taken."

    return _control(request, forms.forms.Form(request.POST), apply, anchor="lab-snapshots-section")


@require_POST
def rebuild(request: HttpRequest) -> HttpResponse:
    from concepts import readside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        progress = readside.start_rebuild(sandbox)
        return f"Rebuilding the read model from position 0: {progress.total} events to replay."

    return _control(request, forms.forms.Form(request.POST), apply, anchor="lab-rebuild-section")


@require_POST
def retro_model(request: HttpRequest) -> HttpResponse:
    from concepts import readside

    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        readside.enable_retro_model(sandbox)
        return "Added the “largest deposit” read model; it catches up from position 0."

    return _control(request, forms.forms.Form(request.POST), apply, anchor="lab-rebuild-section")


@require_POST
def reset(request: HttpRequest) -> HttpResponse:
    from concepts import sandboxes

    old = _sandbox(request)
    try:
        new = sandboxes.reset_sandbox(request)
    except sandboxes.SandboxLimitReached as exc:
        message = {"ok": False, "text": str(exc)}
        panel = build_panel(request, old, next_url=_next(request), controls_message=message)
        if request.htmx:
            return _htmx_response(request, panel, "lab-controls-result", status=429)
        return _page(request, panel, status=429)
    # Other tabs' sockets are in the old sandbox's group: the hint makes them re-read the session and move.
    publish(old.pk, "reset")
    message = {"ok": True, "text": "Started a fresh sandbox: empty log, balance $0.00."}
    if request.htmx:
        panel = build_panel(request, new, next_url=_next(request), controls_message=message)
        return HttpResponse(render_parts(panel, (), main="lab-panel", request=request))
    return _back(request, "lab", {"controls": message})


# --- reads (GET, per tab) ---------------------------------------------------------------------------


def _read(request: HttpRequest, main: str) -> HttpResponse:
    sandbox = _sandbox(request)
    panel = build_panel(request, sandbox, params=request.GET, next_url=_next(request))
    if request.htmx:
        return HttpResponse(render_parts(panel, (), main=main, request=request))
    return _page(request, panel)


def _bad_get(request: HttpRequest, form: Any) -> HttpResponse | None:
    if form.is_valid():
        return None
    return HttpResponse(_first_error(form), status=400, content_type="text/plain; charset=utf-8")


@require_GET
def event_log(request: HttpRequest) -> HttpResponse:
    params = {"page": request.GET.get("log_page"), "type": request.GET.get("log_type", "")}
    return _bad_get(request, forms.LogForm(params)) or _read(request, "lab-event-log")


@require_GET
def time_travel(request: HttpRequest) -> HttpResponse:
    return _bad_get(request, forms.VersionForm({"version": request.GET.get("tt")})) or _read(
        request, "lab-time-travel-state"
    )


@require_GET
def replay(request: HttpRequest) -> HttpResponse:
    return _bad_get(request, forms.VersionForm({"version": request.GET.get("replay")})) or _read(request, "lab-replay")


@require_GET
def state(request: HttpRequest) -> HttpResponse:
    """Every live partial out of band: what a push carries, for pages whose WebSocket cannot connect."""
    sandbox = _sandbox(request)
    panel = build_panel(request, sandbox, next_url=_next(request))
    if request.htmx:
        return HttpResponse(render_parts(panel, LIVE_PARTS, request=request))
    return _page(request, panel)


@require_GET
def page(request: HttpRequest) -> HttpResponse:
    """The lab on its own page: where no-JavaScript forms return when they came from nowhere else."""
    context = lab_context(request)
    return HttpResponse(render_to_string(PAGE, context, request=request))


@require_GET
async def query(request: HttpRequest) -> HttpResponse:
    from concepts import readside

    read_your_writes = bool(request.GET.get("read_your_writes"))
    sandbox = await sync_to_async(_sandbox)(request)
    waited_for = None
    if read_your_writes:
        # Every write in a sandbox is its visitor's own, so "my last command's version" is the stream's head.
        # Read here rather than kept in the session: saving the session after each command was a second write
        # transaction, racing the projector for SQLite's write lock just when it applies that command.
        waited_for = await sync_to_async(readside.write_version)(sandbox)
        answer = await readside.aquery(sandbox, waited_for, QUERY_WAIT_S)
    else:
        answer = await sync_to_async(readside.query)(sandbox)

    def respond() -> HttpResponse:
        panel = build_panel(request, sandbox, next_url=_next(request), query=answer, query_waited_for=waited_for)
        if request.htmx:
            return HttpResponse(render_parts(panel, LIVE_PARTS, main="lab-query-result", request=request))
        return _page(request, panel)

    return await sync_to_async(respond)()


urlpatterns = [
    path("lab/", page, name="lab-page"),
    path("lab/command/", command, name="lab-command"),
    path("lab/query/", query, name="lab-query"),
    path("lab/lag/", set_lag, name="lab-lag"),
    path("lab/snapshot-interval/", set_snapshot_interval, name="lab-snapshot-interval"),
    path("lab/schema/", set_schema, name="lab-schema"),
    path("lab/projector/", projector_control, name="lab-projector"),
    path("lab/snapshot/", take_snapshot, name="lab-snapshot"),
    path("lab/rebuild/", rebuild, name="lab-rebuild"),
    path("lab/retro/", retro_model, name="lab-retro"),
    path("lab/reset/", reset, name="lab-reset"),
    path("lab/log/", event_log, name="lab-log"),
    path("lab/time-travel/", time_travel, name="lab-time-travel"),
    path("lab/replay/", replay, name="lab-replay"),
    path("lab/state/", state, name="lab-state"),
]
