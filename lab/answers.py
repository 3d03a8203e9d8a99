"""How the lab's endpoints answer (lab.views, lab.exchange_views, lab.scenario_views): the partial a form targets
with the live parts out of band (htmx), the lab page (no JavaScript, a 4xx), the redirect back with the outcome kept
for one render; and `creates_sandbox`, around every POST that may create the visitor's first sandbox.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms as django_forms
from django.http import HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse

from lab import sandboxes
from lab.panel import FLASH_KEY, LIVE_PARTS, Panel, build_panel, render_parts
from reqflow.http import HtmxHttpRequest, safe_next

PAGE = "lab/page.html"
COMMAND_SLOT = "lab-command-result"  # where a command answers (a partial of panel.html)
COMMAND_SLOT = "lab-command-result"
View = Callable[..., HttpResponse]


def creates_sandbox(slot: str) -> Callable[[View], View]:
    """For a POST that acts on the visitor's sandbox, creating their first one: when there is no room for it
    (lab.sandboxes.SandboxLimitReached), a 429 with Retry-After and the reason beside the control that asked
    (`slot`); when it created one, the visitor's lab pages opened before are told, so they go live."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HtmxHttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                response = view(request, *args, **kwargs)
            except sandboxes.SandboxLimitReached as exc:
                return _no_room(request, slot, exc)
            sandboxes.announce_created(request)
            return response

        return wrapper

    return decorate


def _no_room(request: HtmxHttpRequest, slot: str, exc: sandboxes.SandboxLimitReached) -> HttpResponse:
    """429 Too Many Requests with Retry-After: the lab as it was (blank), the reason beside the control."""
    sandbox = sandboxes.sandbox_to_show(request)
    if slot == COMMAND_SLOT:
        result = {"accepted": False, "message": str(exc), "rule": "busy", "events": []}
        panel = build_panel(request, sandbox, next_url=_next(request), result=result)
    else:
        message = {"ok": False, "text": str(exc)}
        panel = build_panel(request, sandbox, next_url=_next(request), controls_message=message, controls_slot=slot)
    response = _htmx_response(request, panel, slot, status=429) if request.htmx else _page(request, panel, status=429)
    response["Retry-After"] = str(exc.retry_after_s)
    return response


def _htmx_response(
    request: HtmxHttpRequest, panel: Panel, main: str, *, status: int = 200, extra: tuple[str, ...] = ()
) -> HttpResponse:
    response = HttpResponse(render_parts(panel, (*LIVE_PARTS, *extra), main=main, request=request), status=status)
    # The response names its own target, so an error answer never lands where the success one would have.
    response["HX-Retarget"] = f"#{main}"
    response["HX-Reswap"] = "outerHTML"
    return response


def _page(request: HtmxHttpRequest, panel: Panel, *, status: int = 200) -> HttpResponse:
    return HttpResponse(render_to_string(PAGE, {"lab": panel}, request=request), status=status)


def _next(request: HtmxHttpRequest) -> str:
    return safe_next(request, reverse("lab:page"))


def _back(request: HtmxHttpRequest, anchor: str, flash: dict[str, Any]) -> HttpResponse:
    request.session[FLASH_KEY] = flash
    return HttpResponseRedirect(f"{_next(request)}#{anchor}", status=303)


def _first_error(form: django_forms.Form) -> str:
    for errors in form.errors.values():
        return str(errors[0])
    return "That input is not valid."
