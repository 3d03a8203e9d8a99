"""Which sandbox a request (or a WebSocket's session) works in, resets, the sandbox following a learner across
sign-in, and purging idle sandboxes.

The current sandbox id lives in the session data (server-side), not only in Sandbox.session_key: Django
rotates the session key at sign-in, and the data survives the rotation while the key does not.
"""

from __future__ import annotations

import datetime as dt
import uuid
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from lab import store
from lab.models import Sandbox

SESSION_SANDBOX = "lab_sandbox_id"
SESSION_CREATED = "lab_sandboxes_created"
# Writing last_active_at on every request would take the SQLite write lock on every page view; purging works
# in days, so minutes of precision are plenty.
TOUCH_EVERY = dt.timedelta(minutes=5)


class SandboxLimitReached(PermissionDenied):
    """Too many sandboxes for one session. A PermissionDenied, so an uncaught one is a 403, never a 500."""


def sandbox_for_request(request: HttpRequest) -> Sandbox:
    """The request's current sandbox, created on first use (the user's when signed in, else the session's)."""
    session = request.session
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    sandbox = current_sandbox(session, user if signed_in else None)
    if sandbox is None:
        sandbox = _create(request, user if signed_in else None)
    elif session.get(SESSION_SANDBOX) != str(sandbox.pk):
        session[SESSION_SANDBOX] = str(sandbox.pk)
    _touch(sandbox)
    return sandbox


def current_sandbox(session: Any, user: Any | None) -> Sandbox | None:
    """The sandbox a session (and its signed-in user, if any) works in now, or None. Never creates one, so a
    WebSocket or any other reader can ask without growing the database."""
    if user is not None:
        return _current_for_user(user, session.get(SESSION_SANDBOX))
    return _current_for_session(session)


def reset_sandbox(request: HttpRequest) -> Sandbox:
    """Retire the current sandbox and start an empty one. Raises SandboxLimitReached past the session's limit."""
    current = sandbox_for_request(request)
    limit = settings.LAB_MAX_SANDBOXES_PER_SESSION
    if int(request.session.get(SESSION_CREATED, 1)) >= limit:
        raise SandboxLimitReached(
            f"This session has used its {limit} sandboxes: keep working in this one, or sign out and back in later."
        )
    user = current.user if current.user_id else None
    with transaction.atomic():
        Sandbox.objects.filter(pk=current.pk, retired_at__isnull=True).update(retired_at=timezone.now())
        fresh = _create(request, user)
    return fresh


def adopt_session_sandbox(request: HttpRequest, user: Any) -> Sandbox | None:
    """At sign-in: the sandbox follows the account. Call from a user_logged_in receiver.

    A user without a sandbox takes the session's (anonymous) one; a user who has one gets it back as current.
    """
    session_sandbox = _by_id(request.session.get(SESSION_SANDBOX))
    if session_sandbox is not None and session_sandbox.user_id not in (None, user.pk):
        session_sandbox = None  # someone else's: never hand it over
    mine = Sandbox.objects.filter(user=user, retired_at__isnull=True).order_by("-last_active_at").first()
    if mine is None and session_sandbox is not None and session_sandbox.retired_at is None:
        session_sandbox.user = user
        session_sandbox.session_key = request.session.session_key or session_sandbox.session_key
        session_sandbox.save(update_fields=["user", "session_key"])
        mine = session_sandbox
    if mine is not None:
        request.session[SESSION_SANDBOX] = str(mine.pk)
    return mine


def purge_idle(days: float) -> int:
    """Remove sandboxes idle for more than `days` days, with every row they own (events included). Returns how many."""
    if days < 0:
        raise ValueError("days must be 0 or more")
    cutoff = timezone.now() - dt.timedelta(days=days)
    ids = list(Sandbox.objects.filter(last_active_at__lt=cutoff).values_list("pk", flat=True))
    for sandbox_id in ids:
        store.purge_sandbox(sandbox_id)
    return len(ids)


def sandbox_for_session_key(session_key: str | None) -> Sandbox | None:
    """The sandbox a session works in now, read afresh from the session store; None when there is none.

    For a WebSocket, which holds a session key for as long as it is open: a sign-out, an expired session or a
    reset in another tab shows up here on the next read. Like current_sandbox, it never creates one.
    """
    if not session_key:
        return None
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    if not session.exists(session_key):
        return None
    user = None
    user_id = session.get(SESSION_KEY)
    if user_id is not None:
        user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
        if user is None:
            return None
    return current_sandbox(session, user)


# --- helpers ----------------------------------------------------------------------------------------------


def _by_id(raw: object) -> Sandbox | None:
    if not raw:
        return None
    try:
        key = uuid.UUID(str(raw))
    except ValueError:
        return None
    return Sandbox.objects.filter(pk=key).first()


def _current_for_user(user: Any, session_choice: object) -> Sandbox | None:
    chosen = _by_id(session_choice)
    if chosen is not None and chosen.user_id == user.pk and chosen.retired_at is None:
        return chosen
    return Sandbox.objects.filter(user=user, retired_at__isnull=True).order_by("-last_active_at").first()


def _current_for_session(session: Any) -> Sandbox | None:
    chosen = _by_id(session.get(SESSION_SANDBOX))
    # A signed-out visitor never sees an account's sandbox, even if the session still names it.
    if chosen is not None and chosen.user_id is None and chosen.retired_at is None:
        return chosen
    if session.session_key:
        return (
            Sandbox.objects.filter(session_key=session.session_key, user__isnull=True, retired_at__isnull=True)
            .order_by("-last_active_at")
            .first()
        )
    return None


def _create(request: HttpRequest, user: Any) -> Sandbox:
    session = request.session
    if not session.session_key:
        session.save()  # a key now, so the sandbox can name the session that made it
    sandbox = Sandbox.objects.create(session_key=session.session_key or "", user=user)
    session[SESSION_SANDBOX] = str(sandbox.pk)
    session[SESSION_CREATED] = int(session.get(SESSION_CREATED, 0)) + 1
    return sandbox


def _touch(sandbox: Sandbox) -> None:
    now = timezone.now()
    if sandbox.last_active_at is None or now - sandbox.last_active_at > TOUCH_EVERY:
        Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=now)
        sandbox.last_active_at = now
