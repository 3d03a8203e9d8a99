"""The domain labs' endpoints: a payment ledger, an order book and a document log, each a page of its own
(/lab/<domain>/) that a "Where it shows up" card of the concept page opens.

Each endpoint answers like the account lab's (lab.views): htmx gets the partial beside the control that asked plus
the live parts out of band; a plain POST (no JavaScript) a 303 back to the page with the outcome kept for one render;
bad input a 400 with the reason beside the control, before anything reaches a sandbox. The sandbox comes from the
session only (lab.domain_labs): nothing in a request names one, so another visitor's sandbox cannot be reached. A
GET creates nothing; the first POST creates the visitor's sandbox of that domain, within the caps (a 429 past them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from lab import domain_forms, domain_labs
from lab.domain_catalog import LABS
from lab.domain_forms import DomainInputError
from lab.domain_panel import FLASH_KEY, LIVE_PARTS, DomainPanel, build, render_page, render_parts
from lab.domain_types import DomainOutcome, RestartReport
from lab.models import Sandbox
from lab.sandboxes import SandboxLimitReached
from reqflow.http import HtmxHttpRequest

COMMAND_SLOT = "dlab-command-result"
# Where each control answers (the result slot beside it) and where a no-JavaScript form comes back to.
ANCHORS = {
    COMMAND_SLOT: "dlab-commands",
    "dlab-lag-result": "dlab-projector",
    "dlab-snapshot-result": "dlab-tools",
    "dlab-rebuild-result": "dlab-tools",
    "dlab-late-result": "dlab-read-stage",
    "dlab-restart-result": "dlab-restart",
    "dlab-tt-result": "dlab-time-travel",
}
# A refused outcome's rule -> its status; any other refusal is the domain's rule answering a valid command (200).
STATUS_OF_RULE = {"input": 400, "concurrency": 409, "id_reused": 409, "unreadable": 409, "limit": 422}

TAB = re.compile(r"[A-Za-z0-9]{1,20}")  # lab.engine.domains.document's rule for a tab's name

Act = Callable[[Sandbox], DomainOutcome]


def _domain(domain: str) -> str:
    if domain not in LABS:  # the URL pattern allows only these; a direct call is checked too
        raise Http404("No such lab.")
    return domain


def _find(request: HtmxHttpRequest, domain: str) -> Sandbox | None:
    key = request.session.session_key
    return domain_labs.find_domain_sandbox(key, domain) if key else None


def _for_command(request: HtmxHttpRequest, domain: str) -> Sandbox:
    if not request.session.session_key:
        request.session.save()
    key = request.session.session_key or ""
    sandbox = domain_labs.domain_sandbox_for_command(key, domain, request.META.get("REMOTE_ADDR"))
    domain_labs.remember_domain_sandbox(request.session, domain, sandbox)  # so it survives sign-in's new key
    return sandbox


def _panel(request: HtmxHttpRequest, domain: str, sandbox: Sandbox | None, **extra: Any) -> DomainPanel:
    tab = request.POST.get("tab", "")
    if TAB.fullmatch(tab):  # the page's own name in the document log stays when its forms are rendered again
        extra.setdefault("tab", tab)
    return build(domain, domain_labs.domain_lab_view(sandbox, domain), **extra)


def _page_url(domain: str) -> str:
    return reverse("lab:domain-page", args=[domain])


def _answer(request: HtmxHttpRequest, panel: DomainPanel, status: int = 200) -> HttpResponse:
    """The slot's partial and the live parts (htmx), the page (a refusal without JavaScript) or a 303 back."""
    slot = panel.slot or COMMAND_SLOT
    if request.htmx:
        # A command's answer renews the forms too: the names they offer, and a refused form's input kept.
        extra = ("dlab-command-id", "dlab-forms") if slot == COMMAND_SLOT else ()
        response = HttpResponse(render_parts(panel, (*LIVE_PARTS, *extra), main=slot, request=request), status=status)
        # The answer names its own target, so a refusal lands where the success would have.
        response["HX-Retarget"] = f"#{slot}"
        response["HX-Reswap"] = "outerHTML"
        return response
    if status != 200:
        return HttpResponse(render_page(request, panel), status=status)
    request.session[FLASH_KEY] = {"slot": slot, "message": panel.message, "restart": panel.restart is not None}
    if panel.restart is not None:
        request.session[FLASH_KEY]["restart_report"] = _restart_dict(panel)
    return HttpResponseRedirect(f"{_page_url(panel.domain)}#{ANCHORS[slot]}", status=303)


def _restart_dict(panel: DomainPanel) -> dict[str, Any]:
    report = panel.restart
    assert report is not None
    return {
        "duration_ms": report.duration_ms,
        "used_snapshot": report.used_snapshot,
        "snapshot_version": report.snapshot_version,
        "events_replayed": report.events_replayed,
        "book_equal": report.book_equal,
        "version": report.version,
    }


def _refused(request: HtmxHttpRequest, domain: str, slot: str, exc: DomainInputError) -> HttpResponse:
    """A 400 beside the control, the input kept; nothing reached a sandbox (none is created)."""
    message = {"ok": False, "text": str(exc), "field": exc.field}
    panel = _panel(request, domain, _find(request, domain), slot=slot, message=message, values=_typed(request))
    return _answer(request, panel, 400)


def _typed(request: HtmxHttpRequest) -> dict[str, str]:
    """What the learner sent, to fill the forms again after a refusal (shown escaped; cut to the fields' cap)."""
    return {k: str(v)[: domain_forms.FIELD_MAX] for k, v in request.POST.items() if k != "csrfmiddlewaretoken"}


def _no_room(request: HtmxHttpRequest, domain: str, slot: str, exc: SandboxLimitReached) -> HttpResponse:
    panel = _panel(request, domain, _find(request, domain), slot=slot, message={"ok": False, "text": str(exc)})
    response = _answer(request, panel, 429)
    response["Retry-After"] = str(exc.retry_after_s)
    return response


def _control(
    request: HtmxHttpRequest, domain: str, slot: str, act: Act, note: Callable[[DomainOutcome], str] | None = None
) -> HttpResponse:
    """Find or create the sandbox, act, answer beside the control with what it did (and `note`'s sentence)."""
    try:
        sandbox = _for_command(request, domain)
    except SandboxLimitReached as exc:
        return _no_room(request, domain, slot, exc)
    outcome = act(sandbox)
    status = 200 if outcome.ok else STATUS_OF_RULE.get(outcome.rule or "", 200)
    message = {
        "ok": outcome.ok,
        "text": outcome.message,
        "field": outcome.field,
        "replayed": outcome.replayed,
        "version": outcome.version,
        "events": [{"seq": e.seq, "event_type": e.event_type, "summary": e.summary} for e in outcome.events],
        "note": note(outcome) if note else "",
    }
    values = {} if outcome.ok else _typed(request)  # refused: the form comes back as the learner filled it
    return _answer(request, _panel(request, domain, sandbox, slot=slot, message=message, values=values), status)


# --- Pages and reads ------------------------------------------------------------------------------------------


@require_GET
def page(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    """The lab page. A visitor with no sandbox of this domain sees a blank lab; looking creates nothing."""
    domain = _domain(domain)
    flash = request.session.pop(FLASH_KEY, None) if request.session.session_key else None
    extra: dict[str, Any] = {}
    if isinstance(flash, dict) and flash.get("slot") in ANCHORS:
        extra = {"slot": flash["slot"], "message": flash.get("message")}
        if flash.get("restart_report"):
            extra["restart"] = RestartReport(**flash["restart_report"])
    sandbox = _find(request, domain)
    panel = _panel(request, domain, sandbox, **extra)
    if request.GET.get("version") or request.GET.get("at"):  # a no-JavaScript time-travel form
        try:
            version, at = domain_forms.time_travel(request.GET, timezone.now())
        except DomainInputError as exc:
            panel.slot, panel.message = "dlab-tt-result", {"ok": False, "text": str(exc)}
            return HttpResponse(render_page(request, panel), status=400)
        if sandbox is not None:
            panel.time_travel = domain_labs.time_travel_domain(sandbox, version=version, at=at)
            panel.values.update(domain_forms.asked_account(request.GET))
    return HttpResponse(render_page(request, panel))


@require_GET
def state(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    """Every live part out of band, for the page's refresh while the read side catches up (and for the changes
    another tab makes). `seen`: the stamp the page shows; unchanged, a 204 and nothing is swapped."""
    domain = _domain(domain)
    panel = _panel(request, domain, _find(request, domain))
    if not request.htmx:
        return HttpResponse(render_page(request, panel))
    if request.GET.get("seen") == panel.stamp:
        return HttpResponse(status=204)
    return HttpResponse(render_parts(panel, LIVE_PARTS, request=request))


@require_GET
def time_travel(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    """The domain as it was at a version, or at a time of day ("the balance of alice at 09:12")."""
    domain = _domain(domain)
    sandbox = _find(request, domain)
    slot = "dlab-tt-result"
    try:
        version, at = domain_forms.time_travel(request.GET, timezone.now())
    except DomainInputError as exc:
        panel = _panel(request, domain, sandbox, slot=slot, message={"ok": False, "text": str(exc)})
        return _answer(request, panel, 400)
    panel = _panel(request, domain, sandbox, slot=slot, values=domain_forms.asked_account(request.GET))
    if sandbox is not None:
        panel.time_travel = domain_labs.time_travel_domain(sandbox, version=version, at=at)
    if request.htmx:
        response = HttpResponse(render_parts(panel, (), main=slot, request=request))
        response["HX-Retarget"], response["HX-Reswap"] = f"#{slot}", "outerHTML"
        return response
    return HttpResponse(render_page(request, panel))


# --- Commands and controls ------------------------------------------------------------------------------------


@require_POST
def command(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    domain = _domain(domain)
    try:
        fields, command_id = domain_forms.command_fields(domain, request.POST)
    except DomainInputError as exc:
        return _refused(request, domain, COMMAND_SLOT, exc)
    return _control(
        request,
        domain,
        COMMAND_SLOT,
        lambda s: domain_labs.send_domain_command(s, domain, fields, command_id),
        note=(lambda outcome: rebase_note(fields, outcome)) if domain == "document" else None,
    )


def rebase_note(fields: dict[str, str], outcome: DomainOutcome) -> str:
    """For a document edit that landed after operations its tab had not seen: say it was rebased, over how many."""
    base = fields.get("base_version", "")
    if not outcome.ok or outcome.replayed or not outcome.events or not base.isdigit():
        return ""
    missed = outcome.events[0].seq - 1 - int(base)
    if missed <= 0:
        return ""
    ops = "operation" if missed == 1 else "operations"
    return (
        f"Your tab saw v={base}, but {missed} {ops} had been appended since (another tab's, or yours not yet shown): "
        f"this edit was rebased over {'it' if missed == 1 else 'them'}, by the rule under the forms."
    )


@require_POST
def lag(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    domain = _domain(domain)
    slot = "dlab-lag-result"
    try:
        if "paused" in request.POST:
            paused = domain_forms.paused(request.POST)
            return _control(request, domain, slot, lambda s: domain_labs.set_domain_paused(s, paused))
        ms = domain_forms.lag_ms(request.POST)
    except DomainInputError as exc:
        return _refused(request, domain, slot, exc)
    return _control(request, domain, slot, lambda s: domain_labs.set_domain_lag(s, ms))


@require_POST
def snapshot(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    return _control(request, _domain(domain), "dlab-snapshot-result", domain_labs.take_domain_snapshot)


@require_POST
def rebuild(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    return _control(request, _domain(domain), "dlab-rebuild-result", domain_labs.rebuild_domain_read_models)


@require_POST
def late_model(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    """Add a read model after the fact (the ledger's auditor): it folds the whole log from the first event."""
    domain = _domain(domain)
    slot = "dlab-late-result"
    name = request.POST.get("model", "")
    if name not in LABS[domain].late_models:
        return _refused(request, domain, slot, DomainInputError("This lab has no such read model to add.", "model"))
    return _control(request, domain, slot, lambda s: domain_labs.add_domain_read_model(s, name))


@require_POST
def restart(request: HtmxHttpRequest, domain: str) -> HttpResponse:
    """The order book's "restart the exchange": drop the in-memory book, rebuild it by replay, compare."""
    domain = _domain(domain)
    slot = "dlab-restart-result"
    if domain != "orderbook":
        raise Http404("Only the exchange restarts.")
    try:
        sandbox = _for_command(request, domain)
    except SandboxLimitReached as exc:
        return _no_room(request, domain, slot, exc)
    report = domain_labs.restart_exchange(sandbox)
    text = "Restarted: the book was rebuilt from the log" + (" and equals the one before." if report.book_equal else
                                                            ", but it differs from the one before.")  # fmt: skip
    panel = _panel(request, domain, sandbox, slot=slot, message={"ok": report.book_equal, "text": text})
    panel.restart = report
    return _answer(request, panel)
