"""The command endpoint (deposit, withdraw): an async view, so concurrent commands can share a commit.

A request's sync work runs on one of a process's few request threads (ASGI_THREADS, reqflow/request_threads.py).
A sync command view would hold its thread through the commit: at most that many commands could share one
(lab.store.group_commit), and no other request could run meanwhile. Here only the quick parts run on a thread:
reading the form and the session's sandbox (creating the first one), then rendering the answer; the wait for the
commit happens on the event loop (`commands.finish_command`), where the other requests' commands join the batch.

It answers as every lab endpoint does (lab.views): the htmx partial with the live parts out of band, the lab page
with a 4xx on bad input, or the redirect back; 409 for a stale expected version or a reused command id, 422 when
the sandbox is full, 429 with Retry-After when there is no room for a first sandbox.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpResponse
from django.views.decorators.http import require_POST

from lab import commands, forms, sandboxes
from lab.answers import COMMAND_SLOT, _back, _first_error, _htmx_response, _next, _no_room, _page
from lab.models import Sandbox
from lab.panel import SHORT_ANSWER_PARTS, CommandAnswer, build_panel, render_parts
from lab.types import CommandOutcome
from reqflow.http import HtmxHttpRequest

LIVE_HEADER = "X-Lab-Live"  # sent by lab.js on a command while the page's WebSocket is open


@require_POST
async def command(request: HtmxHttpRequest) -> HttpResponse:
    taken = await sync_to_async(_take)(request)
    if isinstance(taken, HttpResponse):
        return taken
    sandbox, begun = taken
    try:
        outcome = await commands.finish_command(begun)
        # The usual answer (the page's socket brings the rest) is templates only, no database: rendered here, on
        # the event loop, with no trip to a thread and back for it.
        short = _short_answer(request, outcome)
        return short if short is not None else await sync_to_async(_answer)(request, sandbox, outcome)
    finally:
        # A first sandbox this request created is told to the visitor's open pages, even when the command failed.
        # Checked here first: most commands created nothing, and a trip to a request thread for nothing costs them.
        if sandboxes.created_now(request):
            await sync_to_async(sandboxes.announce_created)(request)


def _take(request: HtmxHttpRequest) -> tuple[Sandbox, commands.BegunCommand] | HttpResponse:
    """The valid command, the sandbox it acts on, and the command begun (handed to the group commit) in the same
    trip to a thread; or the answer that refuses it (400, 429)."""
    form = forms.CommandForm(request.POST)
    if not form.is_valid():  # refused before it reaches a sandbox: it creates none
        return _invalid(request, sandboxes.sandbox_to_show(request), form)
    try:
        sandbox = sandboxes.sandbox_for_request(request)
    except sandboxes.SandboxLimitReached as exc:
        return _no_room(request, COMMAND_SLOT, exc)
    data = form.cleaned_data
    begun = commands.begin_command(sandbox, data["kind"], data["amount"], data["command_id"], data["expected_version"])
    return sandbox, begun


def _invalid(request: HtmxHttpRequest, sandbox: Sandbox, form: forms.CommandForm) -> HttpResponse:
    message = _first_error(form)
    field_name = next(iter(form.errors), "amount")
    result = {"accepted": False, "message": message, "rule": "input", "events": [], "invalid": True}
    panel = build_panel(request, sandbox, next_url=_next(request), result=result, errors={field_name: message},
                        amount=request.POST.get("amount", "")[:32])  # fmt: skip
    if request.htmx:
        return HttpResponse(render_parts(panel, (), main="lab-command-result", request=request), status=400)
    return _page(request, panel, status=400)


def _result(outcome: CommandOutcome) -> dict[str, Any]:
    return {
        "accepted": outcome.accepted,
        "message": outcome.message,
        "rule": outcome.rule,
        "replayed": outcome.replayed,
        "write_version": outcome.write_version,
        "events": [{"position": e.position, "version": e.version, "event_type": e.event_type} for e in outcome.events],
    }


def _status_and_result(outcome: CommandOutcome) -> tuple[int, dict[str, Any]]:
    result = _result(outcome)
    status = {"concurrency": 409, commands.RULE_ID_REUSED: 409, "limit": 422}.get(outcome.rule or "", 200)
    if outcome.rule == "concurrency":
        result["message"] = f"The account changed meanwhile (it is now at v={outcome.write_version}); retry."
    return status, result


def _short_answer(request: HtmxHttpRequest, outcome: CommandOutcome) -> HttpResponse | None:
    """Just the outcome, when the page's socket is open and the push after this commit brings every other part:
    it keeps this request (and the push competing with it for the CPU) short. Not for the command that created the
    sandbox (the page's socket is only now being told there is one), a replay or a refusal. None otherwise."""
    status, result = _status_and_result(outcome)
    socket_open = request.headers.get(LIVE_HEADER) == "1" and not sandboxes.created_now(request)
    if not (request.htmx and socket_open and status == 200 and not outcome.replayed):
        return None
    answer = CommandAnswer(result=result, expected_version=outcome.write_version)
    return HttpResponse(render_parts(answer, SHORT_ANSWER_PARTS, main="lab-command-result"), status=status)


def _answer(request: HtmxHttpRequest, sandbox: Sandbox, outcome: CommandOutcome) -> HttpResponse:
    status, result = _status_and_result(outcome)
    if request.htmx:
        panel = build_panel(request, sandbox, next_url=_next(request), result=result)
        return _htmx_response(request, panel, "lab-command-result", status=status, extra=("lab-command-id",))
    if status != 200:
        panel = build_panel(request, sandbox, next_url=_next(request), result=result)
        return _page(request, panel, status=status)
    return _back(request, "lab-write", {"result": result})
