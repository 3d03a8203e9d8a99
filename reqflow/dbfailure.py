"""Honest failure when the database cannot serve: a 503 with Retry-After that says what happened, and one
rate-limited log line per kind instead of a traceback per request.

Four kinds are told apart from the driver's message: the database is locked (busy past its timeout), read-only,
full, or cannot be reached. Any other OperationalError counts as "cannot be reached"; other database errors
(integrity, programming) are bugs and stay 500s with their traceback.

Three doors lead here, because Django turns an exception into a response inside the middleware that raised it:
`DatabaseFailureMiddleware.process_exception` for the views; `server_error` (handler500) for a middleware that
failed (the session saved on the way out); `bad_request` (handler400) for the session middleware, which reports
a failed session save as a 400 ("the session was interrupted"): that 400 was the new visitor's page.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

from django.db import DatabaseError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.utils.deprecation import MiddlewareMixin
from django.utils.html import format_html

from concepts.views import bad_request as plain_bad_request
from concepts.views import server_error as plain_server_error
from reqflow.http import error_fragment

log = logging.getLogger(__name__)

LOG_EVERY_S = 30.0  # at most one line per kind in this long; the next line counts the ones left out


@dataclass(frozen=True)
class Failure:
    kind: str  # locked, read-only, full, unavailable
    message: str  # for the learner: what happened and what to do
    retry_after_s: int


LOCKED = Failure("locked", "The database is busy (locked by another writer) and could not answer in time.", 5)
READ_ONLY = Failure("read-only", "The database is read-only right now, so nothing can be saved.", 30)
FULL = Failure("full", "The database's disk is full, so nothing can be saved.", 60)
UNAVAILABLE = Failure("unavailable", "The database cannot be reached right now.", 10)

# Lower-case fragments of SQLite's and PostgreSQL's messages, first match wins.
_SIGNS: tuple[tuple[tuple[str, ...], Failure], ...] = (
    (("database is locked", "database table is locked", "database is busy", "lock timeout"), LOCKED),
    (("readonly", "read-only"), READ_ONLY),
    (("disk is full", "no space left", "could not extend file", "disk full"), FULL),
)


def classify(exc: BaseException | None) -> Failure | None:
    """The kind of database failure `exc` is (or was caused by), or None when it is not one the site can wait out."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DatabaseError):
            text = str(exc).lower()
            for signs, failure in _SIGNS:
                if any(sign in text for sign in signs):
                    return failure
            if isinstance(exc, OperationalError):
                return UNAVAILABLE
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class _QuietLog:
    """One line per kind per LOG_EVERY_S, with how many were left out since the last one. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def report(self, failure: Failure, exc: BaseException, where: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(failure.kind)
            if last is not None and now - last < LOG_EVERY_S:
                self._suppressed[failure.kind] = self._suppressed.get(failure.kind, 0) + 1
                return
            self._last[failure.kind] = now
            left_out = self._suppressed.pop(failure.kind, 0)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error(
            "database %s: answering 503 (%s at %s: %s); %d more in the last %.0f s not logged",
            failure.kind, type(exc).__name__, where, first_line, left_out, LOG_EVERY_S,
        )  # fmt: skip


quiet_log = _QuietLog()


def unavailable_response(request: HttpRequest, failure: Failure) -> HttpResponse:
    """The 503: a fragment for htmx (shown in the slot the request targeted), else a page needing no database."""
    if request.headers.get("HX-Request") == "true":
        body = error_fragment(request, f"{failure.message} Nothing was changed; retrying shortly.")
    else:
        body = loader.get_template("503.html").render({"failure": failure})
    response = HttpResponse(body, status=503)
    response["Retry-After"] = str(failure.retry_after_s)
    response["Cache-Control"] = "no-store"
    response._has_been_logged = True  # type: ignore[attr-defined]  # our one line replaces Django's traceback
    return response


def answer(request: HttpRequest, exc: BaseException | None, where: str) -> HttpResponse | None:
    failure = classify(exc)
    if failure is None or exc is None:
        return None
    quiet_log.report(failure, exc, where)
    return unavailable_response(request, failure)


class DatabaseFailureMiddleware(MiddlewareMixin):
    """A view that met a database it cannot use answers 503 instead of 500. Sync and async (MiddlewareMixin): a
    sync-only middleware would make Django run the async views (the lab's query) through a thread."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return answer(request, exception, request.path)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database failure outside a view (a middleware) is a 503 too; anything else the usual 500."""
    return answer(request, sys.exc_info()[1], request.path) or plain_server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: a session that could not be saved because of the database is a 503, not the visitor's fault."""
    return answer(request, exception, request.path) or plain_bad_request(request, exception)


# --- The lab's socket: the status line instead of a push ---------------------------------------------------------

SOCKET_RETRY_MAX_S = 5  # a push is one shared read per sandbox: retry it sooner than a page's Retry-After


def live_status_html(state: str, text: str) -> str:
    """The lab's live status line (templates/lab/panel.html, #lab-live-status) as an out-of-band swap."""
    return format_html(
        '<p id="lab-live-status" class="lab__live-status" role="status" data-live-status data-state="{}" '
        'hx-swap-oob="true"><span class="lab__live-dot" aria-hidden="true"></span>'
        "<span data-live-text>{}</span></p>",
        state, text,
    )  # fmt: skip


def retrying_status(failure: Failure) -> str:
    delay = min(failure.retry_after_s, SOCKET_RETRY_MAX_S)
    return live_status_html("retrying", f"{failure.message} Showing the last known state; retrying in {delay} s.")


LIVE_AGAIN = live_status_html("live", "Live: updates arrive as they happen.")
