"""The endpoint that loads a scenario (a "Try it" beside a claim, or the confirm box of a shared link) into the
learner's own sandbox: POST `lab:scenario` with the fields of lab.share.ShareForm.

It answers like a reset (lab.views.reset), since it starts a fresh sandbox: htmx gets the whole panel (the Try-it
button sits outside it, so the answer names its own target, #lab), a no-JavaScript form a 303 back to the page at
the tool to look at. The sentence on what to notice lands in SCENARIO_SLOT, with the reset's Undo offer.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from lab import sandboxes
from lab.answers import _back, _first_error, _next, _page, creates_sandbox
from lab.models import Sandbox
from lab.panel import build_panel, render_parts
from lab.scenarios import apply
from lab.share import SharedState, ShareForm
from lab.tools import TOOLS
from lab.views import _tell_other_tabs
from reqflow.http import HtmxHttpRequest

SCENARIO_SLOT = "lab-scenario-result"  # a partial of panel.html: where the scenario's sentence shows
SLOT_TEMPLATE = "lab/_control_result.html"
PANEL_ID = "lab"  # the element the panel partial (lab-panel) renders


@require_POST
@creates_sandbox(SCENARIO_SLOT)
def scenario(request: HtmxHttpRequest) -> HttpResponse:
    form = ShareForm(request.POST)
    if not form.is_valid():
        return _refused(request, _first_error(form), 404 if form.unknown_scenario else 400)
    shared = form.shared()
    current = sandboxes.sandbox_for_request(request)
    try:
        sandbox, message, tt = _load(request, current, shared)
    except apply.ScenarioFailed as exc:
        return _refused(request, str(exc), 400)
    if sandbox.pk != current.pk:
        _tell_other_tabs(request, current.pk)
    offer = sandboxes.undo_offer(request.session) if sandbox.pk != current.pk else None
    if offer is not None:  # the page offers "Undo", as after a reset
        message.update(undo_until_ms=offer.until_ms, undo_seconds=offer.seconds_left())
    if request.htmx:
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message,
                            controls_slot=SCENARIO_SLOT, undo_due_ms=offer.until_ms if offer else None)  # fmt: skip
        if tt is not None:
            panel.tt_version, panel.tt_requested = tt, True
        # The sentence also goes out of band, in the slot's own markup, so it lands wherever the page put the slot.
        slot = render_to_string(SLOT_TEMPLATE, {"lab": panel, "oob": True, "slot": SCENARIO_SLOT}, request=request)
        response = HttpResponse(render_parts(panel, (), main="lab-panel", request=request) + slot)
        response["HX-Retarget"] = f"#{PANEL_ID}"
        response["HX-Reswap"] = "outerHTML"
        return response
    query = f"?tt={tt}" if tt is not None else ""  # the page opens time travel at that version
    flash = {"controls": message, "slot": SCENARIO_SLOT}
    return _back_to(request, f"{_next(request)}{query}", message.get("open") or PANEL_ID, flash)


Answer = tuple[Sandbox, dict[str, Any], int | None]


def _load(request: HtmxHttpRequest, current: Sandbox, shared: SharedState) -> Answer:
    """(the sandbox now current, the message for SCENARIO_SLOT, the time-travel version to show)."""
    if shared.scenario is None:  # a link without a scenario: its lag and mission, in the sandbox as it is
        apply.apply_shared(current, lag_ms=shared.lag_ms, mission=shared.mission)
        return current, {"ok": True, "text": "Loaded the shared settings into your sandbox."}, shared.tt
    loaded = apply.load_scenario(request, shared.scenario, lag_ms=shared.lag_ms, tt=shared.tt, mission=shared.mission)
    found = loaded.scenario
    message = {
        "ok": True,
        "text": found.notice,
        "scenario": found.id,
        "title": found.title,
        "open": TOOLS[found.tool] if found.tool else "",
    }
    return loaded.sandbox, message, loaded.tt


def _back_to(request: HtmxHttpRequest, where: str, anchor: str, flash: dict[str, Any]) -> HttpResponse:
    """lab.views._back (the outcome kept for the next render, a 303), to `where` (a path with a query) instead."""
    response = _back(request, anchor, flash)
    response["Location"] = f"{where}#{anchor}"
    return response


def _refused(request: HtmxHttpRequest, text: str, status: int) -> HttpResponse:
    """A 400 (bad value) or 404 (no such scenario) saying why; nothing changed."""
    if request.htmx:
        return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    sandbox = sandboxes.sandbox_to_show(request)
    panel = build_panel(request, sandbox, next_url=_next(request), controls_message={"ok": False, "text": text},
                        controls_slot=SCENARIO_SLOT)  # fmt: skip
    return _page(request, panel, status=status)
