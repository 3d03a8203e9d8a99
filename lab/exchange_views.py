"""Endpoints for a sandbox's log and mode: export (a download), import (an upload into a fresh sandbox), the mode
switch (a fresh sandbox in event-sourced or state-only mode), and the log's GET endpoints (event log, time
travel, replay; lab.views answers them) behind the state-only mode's 409.

They answer like the other lab endpoints (lab.views): htmx gets the panel's partials, a no-JavaScript form a
redirect back with the outcome (or the page with the message and a 4xx). An import and a mode switch start a
fresh sandbox, as a reset does, so they answer where the reset does (RESULT_SLOT) with its Undo offer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET, require_POST

from lab import exchange, forms, modes, sandboxes, views
from lab.answers import _back, _first_error, _htmx_response, _next, _page, creates_sandbox
from lab.models import Sandbox
from lab.panel import FLASH_KEY, build_panel, render_parts
from lab.types import count
from lab.views import RESET_ANCHOR, RESET_SLOT, _tell_other_tabs
from reqflow.http import HtmxHttpRequest

RESULT_SLOT = RESET_SLOT  # where an import or a mode switch answers: the same slot (and Undo) as a reset
RESULT_ANCHOR = RESET_ANCHOR


def refused_in_state_only(request: HtmxHttpRequest, feature: str) -> HttpResponse | None:
    """A 409 with the reason when the request's sandbox runs state-only and `feature` needs a log; else None."""
    sandbox = sandboxes.sandbox_to_show(request)
    if not modes.is_state_only(sandbox):
        return None
    return HttpResponse(modes.UNAVAILABLE[feature], status=409, content_type="text/plain; charset=utf-8")


@require_GET
def event_log(request: HtmxHttpRequest) -> HttpResponse:
    return refused_in_state_only(request, "log") or views.event_log(request)


@require_GET
def time_travel(request: HtmxHttpRequest) -> HttpResponse:
    return refused_in_state_only(request, "time_travel") or views.time_travel(request)


@require_GET
def replay(request: HtmxHttpRequest) -> HttpResponse:
    return refused_in_state_only(request, "replay") or views.replay(request)


@require_GET
def export(request: HtmxHttpRequest) -> HttpResponse:
    """The sandbox's log as a JSON download (lab.exchange.export_json); a 409 with the reason in state-only mode."""
    refused = refused_in_state_only(request, "export")
    if refused is not None:
        return refused
    sandbox = sandboxes.sandbox_to_show(request)
    response = HttpResponse(exchange.export_json(sandbox), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{exchange.export_filename()}"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@creates_sandbox(RESULT_SLOT)
def import_log(request: HtmxHttpRequest) -> HttpResponse:
    """Import an exported log into a fresh sandbox. A refused file is a 400 naming its first problem, and nothing
    changes (no sandbox, no event)."""
    sandbox = sandboxes.sandbox_to_show(request)
    form = forms.ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _refusal(request, sandbox, _first_error(form))
    upload = form.cleaned_data[exchange.IMPORT_FIELD]
    try:
        exchange.check_size(upload.size or 0)
        result = exchange.import_log(request, upload.read())
    except exchange.ImportRefused as exc:
        return _refusal(request, sandbox, str(exc))
    text = (
        f"Imported {count(result.events, 'event')} into a fresh sandbox: balance ${result.balance:,.2f} at "
        f"v={result.events}. Each event is stamped with the time of the import; the projector applies them after "
        "the lag."
    )
    return _fresh(request, sandbox, result.sandbox, text)


@require_POST
@creates_sandbox(RESULT_SLOT)
def switch_mode(request: HtmxHttpRequest) -> HttpResponse:
    """Start a fresh sandbox in the mode asked for (a reset: Undo goes back). The same mode again changes nothing."""
    sandbox = sandboxes.sandbox_to_show(request)
    form = forms.ModeForm(request.POST)
    if not form.is_valid():
        return _refusal(request, sandbox, _first_error(form))
    mode = form.cleaned_data["mode"]
    fresh = modes.switch_mode(request, mode)
    if fresh is None:
        message = {"ok": True, "text": f"This sandbox already runs {modes.LABELS[mode].lower()}: nothing changed."}
        return _answer(request, sandbox, message)
    if mode == modes.STATE_ONLY:
        text = (
            "Started a fresh sandbox in state-only mode: the write model keeps only its current balance, and the "
            "projector copies it to the read model after the lag. Replay, time travel, the event log and new read "
            "models from the past are gone with the log."
        )
    else:
        text = "Started a fresh event-sourced sandbox: every command appends an event to the log again."
    return _fresh(request, sandbox, fresh, text)


# --- answers ----------------------------------------------------------------------------------------------------


def _refusal(request: HtmxHttpRequest, sandbox: Sandbox, text: str) -> HttpResponse:
    return _answer(request, sandbox, {"ok": False, "text": text}, status=400)


def _answer(request: HtmxHttpRequest, sandbox: Sandbox, message: dict[str, Any], status: int = 200) -> HttpResponse:
    """The message beside the control, the sandbox unchanged."""
    panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message, controls_slot=RESULT_SLOT)
    if request.htmx:
        return _htmx_response(request, panel, RESULT_SLOT, status=status)
    if status != 200:
        return _page(request, panel, status=status)
    return _back(request, RESULT_ANCHOR, {"controls": message, "slot": RESULT_SLOT})


def _fresh(request: HtmxHttpRequest, old: Sandbox, new: Sandbox, text: str) -> HttpResponse:
    """A fresh sandbox replaced `old`: the whole panel, with the Undo offer, as after a reset."""
    _tell_other_tabs(request, old.pk)
    message: dict[str, Any] = {"ok": True, "text": text}
    offer = sandboxes.undo_offer(request.session)
    if offer is not None:
        message.update(undo_until_ms=offer.until_ms, undo_seconds=offer.seconds_left())
    if request.htmx:
        panel = build_panel(request, new, next_url=_next(request), controls_message=message, controls_slot=RESULT_SLOT,
                            undo_due_ms=offer.until_ms if offer else None)  # fmt: skip
        return HttpResponse(render_parts(panel, (), main="lab-panel", request=request))
    # Back to the page without its query: a time-travel or replay position (?tt=, ?replay=, ?at=) belonged to the
    # sandbox that was just replaced, and a state-only sandbox has no such positions at all.
    request.session[FLASH_KEY] = {"controls": message, "slot": RESULT_SLOT}
    return HttpResponseRedirect(f"{urlsplit(_next(request)).path}#{RESULT_ANCHOR}", status=303)
