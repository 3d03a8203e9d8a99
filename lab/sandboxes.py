"""Which sandbox a request (or a WebSocket's session) works in, resets (and undoing one), the sandbox following a
learner across sign-in, and purging idle sandboxes.

A sandbox is created by the first POST that needs one (a command, a setting, a scenario, an import...:
`sandbox_for_request`), never by a page view: the page, the partial GETs and the socket read through
`sandbox_to_show`, which gives a blank, unsaved sandbox (an empty account with the defaults) to a visitor who has
none yet, and creates neither a sandbox nor a session. A first sandbox counts against LAB_MAX_SANDBOXES_PER_ADDRESS
and LAB_MAX_SANDBOXES (current sandboxes: a reset retires one as it starts one); past either, nothing is created
and SandboxLimitReached says why and when to come back (a 429 with Retry-After).

The current sandbox id lives in the session data (server-side), not only in Sandbox.session_key: Django
rotates the session key at sign-in, and the data survives the rotation while the key does not.

A reset never locks a learner out. It retires the current sandbox and keeps it for UNDO_WINDOW_S seconds, during
which `undo_reset` brings it back; a session (or account) at its LAB_MAX_SANDBOXES_PER_SESSION sandboxes has its
oldest retired ones purged to make room, never the current one nor the one held for Undo.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from lab import instances, live, sockets, store
from lab.clients import browser_key, client_key
from lab.models import ACCOUNT, Sandbox

log = logging.getLogger(__name__)

SESSION_SANDBOX = "lab_sandbox_id"
SESSION_UNDO = "lab_reset_undo"  # {"previous": id, "fresh": id, "until_ms": epoch ms} after a reset
# How long a reset can be undone. The retired sandbox stays intact meanwhile (and long after, until recycled).
UNDO_WINDOW_S = 15
# Writing last_active_at on every request would take the SQLite write lock on every page view; purging works
# in days, so minutes of precision are plenty.
TOUCH_EVERY = dt.timedelta(minutes=5)
# request.META flag: this request created the visitor's first sandbox (its open pages are told: lab.sockets).
CREATED_META = "lab.sandbox_created"
# Creating a first sandbox is serialised on PostgreSQL (an advisory lock, in the two-key space the append locks do
# not use), so that concurrent first commands cannot all pass a cap; SQLite's BEGIN IMMEDIATE already does that.
CREATE_LOCK = (0x52514657, 1)


class SandboxLimitReached(Exception):
    """A first command found no room for a new sandbox (from this address, or in all); nothing was created. The
    text is for the learner; `retry_after_s` goes in the 429's Retry-After."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UndoUnavailable(Exception):
    """Why a reset cannot be undone (any more); the text is for the learner."""


@dataclass(frozen=True)
class UndoOffer:
    """A reset this session may still undo: back to `previous_id` (retired) from `fresh_id`, until `until_ms`."""

    previous_id: uuid.UUID
    fresh_id: uuid.UUID
    until_ms: int  # epoch milliseconds, for the page's countdown

    def seconds_left(self, now_ms: int | None = None) -> int:
        """Whole seconds left, rounded up (so a live offer never reads "0 s")."""
        now_ms = _now_ms() if now_ms is None else now_ms
        return max(0, math.ceil((self.until_ms - now_ms) / 1000))


def sandbox_for_request(request: HttpRequest) -> Sandbox:
    """The request's current sandbox, created on first use (the user's when signed in, else the session's). For
    the POSTs that act on a sandbox; a page view or a GET reads `sandbox_to_show`, which never creates one.
    Raises SandboxLimitReached when a first sandbox would pass LAB_MAX_SANDBOXES_PER_ADDRESS or LAB_MAX_SANDBOXES."""
    session = request.session
    user = _signed_in(request)
    sandbox = current_sandbox(session, user)
    if sandbox is None:
        sandbox = _create(request, user, capped=True)
        request.META[CREATED_META] = True
    elif session.get(SESSION_SANDBOX) != str(sandbox.pk):
        session[SESSION_SANDBOX] = str(sandbox.pk)
    _touch(sandbox)
    return sandbox


def sandbox_to_show(request: HttpRequest) -> Sandbox:
    """The request's current sandbox, or a blank one when it has none yet: an unsaved Sandbox with the defaults,
    which the panel shows as an empty account (`is_blank`). Creates nothing, neither a sandbox nor a session: the
    page, the partial GETs and anything else that only shows the lab read through this."""
    session = request.session
    user = _signed_in(request)
    sandbox = current_sandbox(session, user)
    if sandbox is None:
        return Sandbox(session_key=session.session_key or "", user=user)
    if session.session_key and session.get(SESSION_SANDBOX) != str(sandbox.pk):
        session[SESSION_SANDBOX] = str(sandbox.pk)
    _touch(sandbox)
    return sandbox


def is_blank(sandbox: Sandbox) -> bool:
    """True for `sandbox_to_show`'s blank sandbox: no row yet, so nothing to read from or write to."""
    return sandbox._state.adding


def created_now(request: HttpRequest) -> bool:
    """Whether this request created the visitor's first sandbox."""
    return bool(request.META.get(CREATED_META))


def announce_created(request: HttpRequest) -> None:
    """After a request created the visitor's first sandbox: tell the visitor's open lab pages, whose sockets wait
    for one (lab.consumers), to pick it up. The session is saved first, so a socket reading it finds the sandbox."""
    if not created_now(request):
        return
    request.session.save()
    sockets.announce(browser_key(request.COOKIES.get(settings.CSRF_COOKIE_NAME)))


def current_sandbox(session: Any, user: Any | None) -> Sandbox | None:
    """The sandbox a session (and its signed-in user, if any) works in now, or None. Never creates one, so a
    WebSocket or any other reader can ask without growing the database."""
    if user is not None:
        return _current_for_user(user, session.get(SESSION_SANDBOX))
    return _current_for_session(session)


def reset_sandbox(request: HttpRequest, *, mode: str | None = None) -> Sandbox:
    """Retire the current sandbox and start an empty one; the retired one can come back (`undo_reset`) for
    UNDO_WINDOW_S seconds. Never refuses: at the cap, the oldest retired sandboxes of this session (or account)
    are purged to make room. `mode`: the fresh sandbox's mode (lab.modes); the default mode when None."""
    current = sandbox_for_request(request)
    user = current.user if current.user_id else None
    recycle(request.session, user, keep=current.pk)
    with transaction.atomic():
        Sandbox.objects.filter(pk=current.pk, retired_at__isnull=True).update(retired_at=timezone.now())
        fresh = _create(request, user, mode=mode)
    until_ms = _now_ms() + UNDO_WINDOW_S * 1000
    request.session[SESSION_UNDO] = {"previous": str(current.pk), "fresh": str(fresh.pk), "until_ms": until_ms}
    return fresh


def recycle(session: Any, user: Any | None, *, keep: uuid.UUID) -> list[uuid.UUID]:
    """Make room for one more sandbox: purge the oldest retired sandboxes of this session (or account) while it
    holds LAB_MAX_SANDBOXES_PER_SESSION or more. Never `keep` (the current one), nor the one held for Undo.
    Returns the ids purged, oldest first."""
    owned = _owned(session, user)
    excess = owned.count() + 1 - settings.LAB_MAX_SANDBOXES_PER_SESSION
    if excess <= 0:
        return []
    held = {keep}
    offer = undo_offer(session)
    if offer is not None:
        held.add(offer.previous_id)
    oldest = owned.filter(retired_at__isnull=False).exclude(pk__in=held).order_by(F("retired_at").asc(), "created_at")
    ids = list(oldest.values_list("pk", flat=True)[:excess])
    for sandbox_id in ids:
        store.purge_sandbox(sandbox_id)
    return ids


def undo_offer(session: Any, *, live_only: bool = True) -> UndoOffer | None:
    """The reset this session may still undo, or None. Reads the session only (no query), so the panel can ask on
    every render. `live_only=False` also returns an offer whose deadline has passed."""
    raw = session.get(SESSION_UNDO)
    if not isinstance(raw, dict):
        return None
    try:
        offer = UndoOffer(uuid.UUID(str(raw["previous"])), uuid.UUID(str(raw["fresh"])), int(raw["until_ms"]))
    except (KeyError, TypeError, ValueError):
        return None
    if live_only and _now_ms() > offer.until_ms:
        return None
    return offer


def undo_reset(request: HttpRequest) -> Sandbox:
    """Go back to the sandbox the last reset retired: un-retire it, retire the fresh one, make it current again.
    Raises UndoUnavailable (with the reason, for the learner) past the deadline, or when either sandbox is no
    longer this visitor's to switch; then nothing changes."""
    session = request.session
    user = getattr(request, "user", None)
    user = user if user is not None and user.is_authenticated else None
    offer = _undoable(session, user)
    owned = _owned(session, user)
    now = timezone.now()
    with transaction.atomic():
        back = owned.filter(pk=offer.previous_id, retired_at__isnull=False).update(retired_at=None, last_active_at=now)
        if back != 1:
            raise UndoUnavailable("Too late to undo: that reset was already undone.")
        Sandbox.objects.filter(pk=offer.fresh_id, retired_at__isnull=True).update(retired_at=now)
        # The projector skips retired sandboxes: tell it this one has work again (events it had not yet applied).
        transaction.on_commit(lambda: live.wake_projector(offer.previous_id), robust=True)
    session[SESSION_SANDBOX] = str(offer.previous_id)
    session.pop(SESSION_UNDO, None)
    return Sandbox.objects.get(pk=offer.previous_id)


def _undoable(session: Any, user: Any | None) -> UndoOffer:
    """The session's undo offer if it can still be carried out; else UndoUnavailable, and the offer is dropped."""
    offer = undo_offer(session, live_only=False)
    if offer is None:
        raise UndoUnavailable("Nothing to undo: there was no recent reset in this browser.")
    reason = None
    current = current_sandbox(session, user)
    if _now_ms() > offer.until_ms:
        reason = f"a reset can be undone for {UNDO_WINDOW_S} s only. Keep going in this fresh sandbox."
    elif current is None or current.pk != offer.fresh_id:
        reason = "the lab moved on since that reset (another reset, a sign-in or a sign-out)."
    elif not _owned(session, user).filter(pk=offer.previous_id).exists():
        reason = "the previous sandbox is gone (recycled to make room)."
    if reason is not None:
        session.pop(SESSION_UNDO, None)
        raise UndoUnavailable(f"Too late to undo: {reason}")
    return offer


def adopt_session_sandbox(request: HttpRequest, user: Any) -> Sandbox | None:
    """At sign-in: the sandbox follows the account. Call from a user_logged_in receiver.

    A user without a sandbox takes the session's (anonymous) one; a user who has one gets it back as current.
    """
    session_sandbox = _by_id(request.session.get(SESSION_SANDBOX))
    if session_sandbox is not None and session_sandbox.user_id not in (None, user.pk):
        session_sandbox = None  # someone else's: never hand it over
    mine = (
        Sandbox.objects.filter(user=user, retired_at__isnull=True, domain=ACCOUNT).order_by("-last_active_at").first()
    )
    if mine is None and session_sandbox is not None and session_sandbox.retired_at is None:
        session_sandbox.user = user
        session_sandbox.session_key = request.session.session_key or session_sandbox.session_key
        session_sandbox.save(update_fields=["user", "session_key"])
        mine = session_sandbox
    if mine is not None:
        request.session[SESSION_SANDBOX] = str(mine.pk)
    return mine


def purge_idle(days: float, *, account_days: float | None = None, limit: int | None = None) -> int:
    """Remove sandboxes idle for more than `days` days (an account's: `account_days`, when given), with every row
    they own (events included); at most `limit` of them, the longest idle first. Each is checked again under its
    lock, so one used meanwhile stays. Returns how many were purged."""
    if not days >= 0 or (account_days is not None and not account_days >= 0):  # also refuses NaN
        raise ValueError("days must be 0 or more")
    idle = idle_condition(days, account_days)
    ids = Sandbox.objects.filter(idle).order_by("last_active_at").values_list("pk", flat=True)
    purged = 0
    for sandbox_id in list(ids[:limit] if limit is not None else ids):
        purged += store.purge_sandbox(sandbox_id, only_if=idle)
    return purged


def idle_condition(days: float, account_days: float | None = None) -> Q:
    """Sandboxes not used for `days` days (an account's for `account_days`, when given)."""
    now = timezone.now()
    cutoff = now - dt.timedelta(days=days)
    if account_days is None:
        return Q(last_active_at__lt=cutoff)
    account_cutoff = now - dt.timedelta(days=account_days)
    return Q(user__isnull=True, last_active_at__lt=cutoff) | Q(user__isnull=False, last_active_at__lt=account_cutoff)


def purge_idle_on_schedule(limit: int) -> int:
    """The site's own purge (run by the projector's loop every LAB_PURGE_EVERY_S): visitors' sandboxes idle for
    LAB_IDLE_DAYS, accounts' for LAB_ACCOUNT_IDLE_DAYS, at most `limit` at a time. Logs one line when it purged."""
    purged = purge_idle(settings.LAB_IDLE_DAYS, account_days=settings.LAB_ACCOUNT_IDLE_DAYS, limit=limit)
    if purged:
        log.info("purged %d idle sandbox%s", purged, "es" if purged != 1 else "")
    return purged


def sandbox_for_session_key(session_key: str | None) -> Sandbox | None:
    """The sandbox a session works in now, read afresh from the session store; None when there is none.

    For a WebSocket, which holds a session key for as long as it is open: a sign-out, an expired session or a
    reset in another tab shows up here on the next read. Like current_sandbox, it never creates one.
    """
    if not session_key:
        return None
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    user_id = session.get(SESSION_KEY)  # one read: a missing or expired session is left without a key (no exists())
    if session.session_key is None:
        return None
    user = None
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
    # Every lab request and every push to an open page reads the row: in one plain statement (lab.instances), as
    # building the ORM's query, or a RawQuerySet, cost several times the read.
    return instances.first(Sandbox, "id = %s", [Sandbox._meta.pk.get_db_prep_value(key, connection)])


def _current_for_user(user: Any, session_choice: object) -> Sandbox | None:
    chosen = _by_id(session_choice)
    if chosen is not None and chosen.user_id == user.pk and chosen.retired_at is None and chosen.domain == ACCOUNT:
        return chosen
    return (
        Sandbox.objects.filter(user=user, retired_at__isnull=True, domain=ACCOUNT).order_by("-last_active_at").first()
    )


def _current_for_session(session: Any) -> Sandbox | None:
    chosen = _by_id(session.get(SESSION_SANDBOX))
    # A signed-out visitor never sees an account's sandbox, even if the session still names it.
    if chosen is not None and chosen.user_id is None and chosen.retired_at is None and chosen.domain == ACCOUNT:
        return chosen
    if session.session_key:
        return (
            Sandbox.objects.filter(
                session_key=session.session_key, user__isnull=True, retired_at__isnull=True, domain=ACCOUNT
            )
            .order_by("-last_active_at")
            .first()
        )
    return None


def _signed_in(request: HttpRequest) -> Any | None:
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _create(request: HttpRequest, user: Any, mode: str | None = None, *, capped: bool = False) -> Sandbox:
    """A new current sandbox for the request. `capped`: a visitor's first one, which must fit the caps (a reset's
    fresh sandbox replaces one and is not counted again). Refused, it leaves nothing behind, not even a session."""
    session = request.session
    client = client_key(request.META.get("REMOTE_ADDR"))
    fields = {"mode": mode} if mode is not None else {}
    with transaction.atomic():
        if capped:
            _check_room(client)
        if not session.session_key:
            session.save()  # a key now, so the sandbox can name the session that made it
        sandbox = Sandbox.objects.create(session_key=session.session_key or "", user=user, client=client, **fields)
    session[SESSION_SANDBOX] = str(sandbox.pk)
    return sandbox


def create_domain_sandbox(session_key: str, client_address: str | None, domain: str) -> Sandbox:
    """The session's sandbox of a domain lab (lab.domain_labs), created within the same caps as a first account
    sandbox (SandboxLimitReached past one); the existing one when a concurrent first command made it first."""
    client = client_key(client_address)
    with transaction.atomic():
        _lock_creation()
        found = Sandbox.objects.filter(session_key=session_key, domain=domain, retired_at__isnull=True).first()
        if found is not None:
            return found
        _check_room(client)
        return Sandbox.objects.create(session_key=session_key, client=client, domain=domain)


def _lock_creation() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", list(CREATE_LOCK))


def _check_room(client: str) -> None:
    """Raise SandboxLimitReached when one more current sandbox would pass a cap. Inside the creating transaction."""
    _lock_creation()  # taken again when held already: advisory locks are re-entrant within a session
    current = Sandbox.objects.filter(retired_at__isnull=True)
    limit = settings.LAB_MAX_SANDBOXES
    if current.count() >= limit:
        wait = _until_one_is_purged(current)
        raise SandboxLimitReached(
            f"The lab is full: it holds {limit:,} learners' sandboxes, its limit. A place frees up when an idle one "
            f"is cleared away; please try again {_in_about(wait)}.",
            wait,
        )
    limit = settings.LAB_MAX_SANDBOXES_PER_ADDRESS
    if client and current.filter(client=client).count() >= limit:
        wait = _until_one_is_purged(current.filter(client=client))
        raise SandboxLimitReached(
            f"{limit:,} sandboxes have already been started from your network, its limit. A place frees up when one "
            f"of them has been idle for {settings.LAB_IDLE_DAYS} days; please try again {_in_about(wait)}, or sign in "
            "to an account that already has a sandbox.",
            wait,
        )


def _until_one_is_purged(sandboxes: QuerySet[Sandbox]) -> int:
    """Seconds until the scheduled purge may clear one of these sandboxes (if no one uses them meanwhile)."""
    now = timezone.now()
    due = []
    for owned, days in ((False, settings.LAB_IDLE_DAYS), (True, settings.LAB_ACCOUNT_IDLE_DAYS)):
        oldest = sandboxes.filter(user__isnull=not owned).order_by("last_active_at").values_list("last_active_at")
        found = oldest.first()
        if found is not None:
            due.append(found[0] + dt.timedelta(days=days))
    every = dt.timedelta(seconds=settings.LAB_PURGE_EVERY_S or 3600)
    first = min(due) if due else now
    return max(60, math.ceil((first + every - now).total_seconds()))


def _in_about(seconds: int) -> str:
    if seconds >= 2 * 86400:
        return f"in about {round(seconds / 86400)} days"
    if seconds >= 2 * 3600:
        return f"in about {round(seconds / 3600)} hours"
    return f"in about {max(1, round(seconds / 60))} minutes"


def _owned(session: Any, user: Any | None) -> QuerySet[Sandbox]:
    """The account-lab sandboxes a visitor owns: the account's when signed in, else the session's anonymous ones.
    (A domain lab's sandbox, lab.domain_labs, is never reset, so never retired nor recycled.)"""
    if user is not None:
        return Sandbox.objects.filter(user=user, domain=ACCOUNT)
    return Sandbox.objects.filter(session_key=session.session_key or "-", user__isnull=True, domain=ACCOUNT)


def _now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def _touch(sandbox: Sandbox) -> None:
    now = timezone.now()
    if sandbox.last_active_at is None or now - sandbox.last_active_at > TOUCH_EVERY:
        Sandbox.objects.filter(pk=sandbox.pk).update(last_active_at=now)
        sandbox.last_active_at = now
