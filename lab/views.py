"""Lab endpoints: commands, queries and controls as ordinary forms, enhanced by htmx.

Every endpoint answers three ways from the same partials in templates/lab/panel.html (rendered by lab.panel):
- htmx (HX-Request): the partial the form targets, plus out-of-band partials so the page is current even when
  its WebSocket is down;
- a plain browser POST (no JavaScript): redirect back to the page's lab anchor with the outcome kept in the session
  for one render (post/redirect/get), or, on bad input, the lab page re-rendered with the message and a 4xx;
- a plain browser GET of a partial endpoint: the standalone lab page.

The sandbox always comes from the session (lab.sandboxes); nothing in a request names one. A GET only shows it
(a visitor without one sees a blank sandbox); the first POST that acts on one creates it (`creates_sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django import forms as django_forms
from django.http import HttpResponse
from django.views.decorators.http import require_GET, require_POST

from lab import command_views, commands, controls, facts, forms, modes, predictions, queries, sandboxes, timeline
from lab.answers import _back, _first_error, _htmx_response, _next, _page, creates_sandbox
from lab.live import publish
from lab.models import Sandbox
from lab.panel import (
    LIVE_PARTS,
    QUERY_WAIT_S,
    build_panel,
    panel_for_page,
    render_parts,
)
from lab.types import count
from reqflow.http import HtmxHttpRequest, error_fragment

CRASH_DOWNTIME_S = 3.0
RESET_SLOT = "lab-reset-result"  # where reset and undo answer (a partial of panel.html)
RESET_ANCHOR = "lab-reset-section"  # where a no-JavaScript reset or undo comes back to

# What a control does with the sandbox and the form's cleaned data; returns the sentence to show beside it.
Apply = Callable[[Sandbox, dict[str, Any]], str]


# --- Commands -------------------------------------------------------------------------------------------------

# The command endpoint is async, so concurrent commands can share a commit: lab/command_views.py.
command = command_views.command


# --- Controls -------------------------------------------------------------------------------------------------


# Where each control answers (the result slot beside it, a partial of panel.html) and where a no-JavaScript form
# comes back to (the stage or tool that holds it).
SLOT_ANCHORS = {
    "lab-projector-result": "lab-projector",
    "lab-snapshot-result": "lab-snapshots-section",
    "lab-rebuild-result": "lab-rebuild-section",
    "lab-retro-result": "lab-retro-section",
    "lab-schema-result": "lab-schema-section",
    "lab-reset-result": "lab-reset-section",
}


def _control(request: HtmxHttpRequest, form: django_forms.Form, apply: Apply, slot: str) -> HttpResponse:
    """Validate, apply, answer beside the control (`slot`). The control itself tells the other tabs (after its
    commit). Invalid input reaches no sandbox, so it creates none."""
    if form.is_valid():
        sandbox = sandboxes.sandbox_for_request(request)
        try:
            message = {"ok": True, "text": apply(sandbox, form.cleaned_data)}
            status = 200
        except controls.RebuildBusy as exc:  # not bad input: the server is busy, come back shortly
            return _busy(request, sandbox, slot, str(exc), exc.retry_after_s)
        except modes.ModeUnavailable as exc:  # state-only mode has no log for this: a conflict, with the reason
            message, status = {"ok": False, "text": str(exc)}, 409
        except ValueError as exc:  # the lab's own range checks (lab.limits) speak for themselves
            message, status = {"ok": False, "text": str(exc)}, 400
    else:
        sandbox = sandboxes.sandbox_to_show(request)
        message, status = {"ok": False, "text": _first_error(form)}, 400
    if request.htmx:
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message, controls_slot=slot)
        return _htmx_response(request, panel, slot, status=status)
    if status != 200:
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message, controls_slot=slot)
        return _page(request, panel, status=status)
    return _back(request, SLOT_ANCHORS[slot], {"controls": message, "slot": slot})


def _busy(request: HtmxHttpRequest, sandbox: Sandbox, slot: str, text: str, retry_after_s: int) -> HttpResponse:
    """429 Too Many Requests with Retry-After and the message, for htmx and no-JavaScript forms alike."""
    message = {"ok": False, "text": text}
    panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message, controls_slot=slot)
    if request.htmx:
        response = _htmx_response(request, panel, slot, status=429)
    else:
        response = _page(request, panel, status=429)
    response["Retry-After"] = str(retry_after_s)
    return response


@require_POST
@creates_sandbox("lab-projector-result")
def set_lag(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        ms = controls.set_lag(sandbox, data["lag"])
        return f"Projection lag set to {ms / 1000:.1f} s."

    return _control(request, forms.LagForm(request.POST), apply, "lab-projector-result")


@require_POST
@creates_sandbox("lab-snapshot-result")
def set_snapshot_interval(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        controls.set_snapshot_interval(sandbox, data["interval"])
        n = data["interval"]
        return "Automatic snapshots are off." if n == 0 else f"A snapshot every {count(n, 'event')}."

    return _control(request, forms.SnapshotIntervalForm(request.POST), apply, "lab-snapshot-result")


@require_POST
@creates_sandbox("lab-schema-result")
def set_schema(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        controls.set_deposit_schema(sandbox, data["version"])
        if data["version"] == 2:
            return "New deposits are stored as schema v2; older ones stay v1 and are upcast on read."
        return "New deposits are stored as schema v1 again."

    return _control(request, forms.SchemaForm(request.POST), apply, "lab-schema-result")


def _dead_letter_action(sandbox: Sandbox, action: str) -> str:
    """Poison, retry, skip: the sentence says what happened and what the read side does next. A refused poison
    raises ValueError (a 400 with its message)."""
    if action == "poison":
        event = controls.append_poison_event(sandbox)
        return (
            f"Appended {event.event_type} #{event.position} (v={event.version}): the write model adds its "
            f"${controls.POISON_AMOUNT}, but the projector has no handler for it and stalls there once it is due. "
            "Other sandboxes keep flowing."
        )
    if action == "retry":
        count = controls.retry_dead_letter(sandbox)
        if not count:
            return "Nothing to retry: no read model is stalled."
        return (
            f"Retrying {count} dead-lettered event{'s' if count != 1 else ''}: the projector tries again now. Its "
            "code has not changed, so it stalls again with the same reason; Skip moves the event to the "
            "dead-letter list."
        )
    skipped = controls.skip_dead_letter(sandbox)
    if not skipped:
        return "Nothing to skip: no read model is stalled."
    which = ", ".join(f"#{p}" for p in skipped)
    return (
        f"Skipped event {which} to the dead-letter list: every read model passes over it from now on (a rebuild "
        "too), and the events after it flow again. The read balance leaves it out, so it can differ from the "
        "write balance."
    )


@require_POST
@creates_sandbox("lab-projector-result")
def projector_control(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        action = data["action"]
        if action == "pause":
            controls.pause_projection(sandbox)
            return "Projection paused: commands still succeed, the read model stops moving."
        if action == "resume":
            controls.resume_projection(sandbox)
            return "Projection resumed from its checkpoint."
        if action in ("retry", "skip", "poison"):
            return _dead_letter_action(sandbox, action)
        controls.crash_projector(sandbox, CRASH_DOWNTIME_S)
        return f"Projector crashed; it restarts from its checkpoint in {CRASH_DOWNTIME_S:g} s."

    return _control(request, forms.ProjectorForm(request.POST), apply, "lab-projector-result")


@require_POST
@creates_sandbox("lab-snapshot-result")
def take_snapshot(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        return f"Snapshot taken at v={commands.take_snapshot(sandbox).version}."

    return _control(request, django_forms.Form(request.POST), apply, "lab-snapshot-result")


@require_POST
@creates_sandbox("lab-rebuild-result")
def rebuild(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        progress = controls.start_rebuild(sandbox)
        return f"Rebuilding the read model from event #1: {count(progress.total, 'event')} to replay."

    return _control(request, django_forms.Form(request.POST), apply, "lab-rebuild-result")


@require_POST
@creates_sandbox("lab-rebuild-result")
def set_replay_rate(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        rate = controls.set_replay_rate(sandbox, data["rate"])
        pace = "as fast as the projector can" if rate == 0 else f"at {rate} event{'s' if rate != 1 else ''} a second"
        return f"Rebuilds and catch-ups replay the log {pace}."

    return _control(request, forms.ReplayRateForm(request.POST), apply, "lab-rebuild-result")


@require_POST
@creates_sandbox("lab-retro-result")
def retro_model(request: HtmxHttpRequest) -> HttpResponse:
    def apply(sandbox: Sandbox, data: dict[str, Any]) -> str:
        controls.enable_retro_model(sandbox)
        return "Added the “largest deposit” read model; it catches up from position 0."

    return _control(request, django_forms.Form(request.POST), apply, "lab-retro-result")


@require_POST
@creates_sandbox(RESET_SLOT)
def reset(request: HtmxHttpRequest) -> HttpResponse:
    """Start a fresh sandbox. Never refused (old sandboxes are recycled); undoable for a few seconds."""
    old = sandboxes.sandbox_for_request(request)
    new = sandboxes.reset_sandbox(request)
    _tell_other_tabs(request, old.pk)
    message: dict[str, Any] = {"ok": True, "text": "Started a fresh sandbox: empty log, balance $0.00."}
    offer = sandboxes.undo_offer(request.session)
    if offer is not None:  # the page offers "Undo (15 s)", counting down to undo_until_ms
        message.update(undo_until_ms=offer.until_ms, undo_seconds=offer.seconds_left())
    if request.htmx:
        panel = build_panel(request, new, next_url=_next(request), controls_message=message, controls_slot=RESET_SLOT,
                            undo_due_ms=offer.until_ms if offer else None)  # fmt: skip
        return HttpResponse(render_parts(panel, (), main="lab-panel", request=request))
    return _back(request, RESET_ANCHOR, {"controls": message, "slot": RESET_SLOT})


@require_POST
def reset_undo(request: HtmxHttpRequest) -> HttpResponse:
    """Back to the sandbox the last reset retired, within sandboxes.UNDO_WINDOW_S; a 409 saying why otherwise."""
    fresh = sandboxes.sandbox_to_show(request)
    try:
        restored = sandboxes.undo_reset(request)
    except sandboxes.UndoUnavailable as exc:
        message = {"ok": False, "text": str(exc)}
        panel = build_panel(request, fresh, next_url=_next(request), controls_message=message, controls_slot=RESET_SLOT)
        if request.htmx:
            return _htmx_response(request, panel, RESET_SLOT, status=409)
        return _page(request, panel, status=409)
    _tell_other_tabs(request, fresh.pk, restored.pk)
    panel = build_panel(request, restored, next_url=_next(request), controls_slot=RESET_SLOT)
    write = panel.state.write
    text = f"Reset undone: back to your previous sandbox at v={write.version}, balance ${write.balance:,.2f}."
    panel.controls_message = {"ok": True, "text": text}
    if request.htmx:
        return HttpResponse(render_parts(panel, (), main="lab-panel", request=request))
    return _back(request, RESET_ANCHOR, {"controls": panel.controls_message, "slot": RESET_SLOT})


def _tell_other_tabs(request: HtmxHttpRequest, *sandbox_ids: object) -> None:
    """Other tabs' sockets sit in these sandboxes' groups: the hint makes them re-read the session and follow it
    to the current sandbox. The session is saved first, or a quick socket would re-read the old choice."""
    request.session.save()
    for sandbox_id in sandbox_ids:
        publish(sandbox_id, "reset")


# --- Reads (GET, per tab) -------------------------------------------------------------------------------------


def _read(request: HtmxHttpRequest, main: str, sandbox: Sandbox | None = None, **overrides: Any) -> HttpResponse:
    sandbox = sandbox or sandboxes.sandbox_to_show(request)
    panel = build_panel(request, sandbox, params=request.GET, next_url=_next(request), **overrides)
    if request.htmx:
        return HttpResponse(render_parts(panel, (), main=main, request=request))
    return _page(request, panel)


def _bad_get(request: HtmxHttpRequest, form: django_forms.Form) -> HttpResponse | None:
    """None when the form is valid, else a 400 with its first message: the forms' messages never quote what was
    sent. htmx swaps a 400 in as HTML (lab.js), so it gets an escaped partial that keeps the target's id."""
    if form.is_valid():
        return None
    if request.htmx:
        return HttpResponse(error_fragment(request, _first_error(form)), status=400)
    return HttpResponse(_first_error(form), status=400, content_type="text/plain; charset=utf-8")


@require_GET
def event_log(request: HtmxHttpRequest) -> HttpResponse:
    params = {"page": request.GET.get("log_page"), "type": request.GET.get("log_type", "")}
    return _bad_get(request, forms.LogForm(params)) or _read(request, "lab-event-log")


@require_GET
def time_travel(request: HtmxHttpRequest) -> HttpResponse:
    """The state at version `tt`, or at the moment `at` when it is given (lab.forms.parse_moment reads it)."""
    if not request.GET.get("at"):
        by_version = forms.VersionForm({"version": request.GET.get("tt")})
        if (bad := _bad_get(request, by_version)) is not None:
            return bad
        sandbox = sandboxes.sandbox_to_show(request)
        if not request.GET.get("follow"):  # lab.js keeping a slider at "now" is not the learner travelling
            facts.note_time_travel(sandbox, by_version.cleaned_data["version"])  # for the missions
        return _read(request, "lab-time-travel-state", sandbox)
    form = forms.TimeTravelAtForm({"at": request.GET["at"]})
    if (bad := _bad_get(request, form)) is not None:
        return bad
    sandbox = sandboxes.sandbox_to_show(request)
    view = timeline.state_at_time(sandbox, form.cleaned_data["at"])
    facts.note_time_travel(sandbox, view.version)
    return _read(request, "lab-time-travel-state", sandbox, time_travel=view, tt_version=view.version)


@require_GET
def replay(request: HtmxHttpRequest) -> HttpResponse:
    return _bad_get(request, forms.VersionForm({"version": request.GET.get("replay")})) or _read(request, "lab-replay")


@require_GET
def predict(request: HtmxHttpRequest) -> HttpResponse:
    """The real answer to a "Predict" question, beside it (lab.predictions runs the read it asked about)."""
    form = forms.PredictForm(request.GET)
    if not form.is_valid():
        return HttpResponse(_first_error(form), status=400, content_type="text/plain; charset=utf-8")
    sandbox, moment = sandboxes.sandbox_to_show(request), form.cleaned_data["moment"]
    answer = predictions.reveal(sandbox, moment, form.cleaned_data["choice"])
    return _read(request, f"lab-reveal-{moment}", sandbox, reveal=answer)


@require_GET
def state(request: HtmxHttpRequest) -> HttpResponse:
    """Every live partial out of band: what a push carries, for pages whose WebSocket cannot connect."""
    sandbox = sandboxes.sandbox_to_show(request)
    panel = build_panel(request, sandbox, next_url=_next(request))
    if request.htmx:
        return HttpResponse(render_parts(panel, LIVE_PARTS, request=request))
    return _page(request, panel)


@require_GET
def page(request: HtmxHttpRequest) -> HttpResponse:
    """The lab on its own page: where no-JavaScript forms return when they came from nowhere else."""
    return _page(request, panel_for_page(request))


@require_GET
async def query(request: HtmxHttpRequest) -> HttpResponse:
    read_your_writes = bool(request.GET.get("read_your_writes"))
    sandbox = await sync_to_async(sandboxes.sandbox_to_show)(request)
    waited_for = None
    if read_your_writes:
        # Every write in a sandbox is its visitor's own, so "my last command's version" is the stream's head.
        # Read here rather than kept in the session: saving the session after each command was a second write
        # transaction, racing the projector for SQLite's write lock just when it applies that command.
        waited_for = await sync_to_async(queries.write_version)(sandbox)
        answer = await queries.aquery(sandbox, waited_for, QUERY_WAIT_S)
    else:
        answer = await sync_to_async(queries.query)(sandbox)

    def respond() -> HttpResponse:
        panel = build_panel(request, sandbox, next_url=_next(request), query=answer, query_waited_for=waited_for)
        if request.htmx:
            return HttpResponse(render_parts(panel, LIVE_PARTS, main="lab-query-result", request=request))
        return _page(request, panel)

    return await sync_to_async(respond)()
