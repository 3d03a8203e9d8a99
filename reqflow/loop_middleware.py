"""Django's middlewares whose hooks only compute, run on the event loop instead of a thread hop per hook.

Under daphne Django runs the middleware chain in async mode, and a `MiddlewareMixin` middleware then sends each of
its hooks to asgiref's one sync thread and back (`sync_to_async(thread_sensitive=True)`): a future, a wake-up of
that thread, the context copied there and back, and the event loop woken again. That costs about 100 µs of CPU
per hop. With our eight such middlewares a page view made 18 hops, 15 of them for middleware hooks (a command
21). Profiled under `make load`, those hops were a large share of daphne's main thread, the part that saturates
first.

Most of these hooks never wait on anything: they read headers and cookies and set headers (security, framing,
CSP, common, CSRF), or attach a lazy object that touches the database only when a view reads it (the session,
the user, the messages). Those run here inline, on the event loop, as the sync chain runs them inline. Hooks that
may do I/O keep their hop: the session's and the messages' response hooks save the session to the database.

If a hook inlined here ever touched the database, Django would raise SynchronousOnlyOperation (a loud 500 that
the tests would meet), not block the event loop silently. In sync mode (the test client, WSGI) nothing changes.
`tests/integration/test_loop_middleware.py` counts the hops per request and checks the hooks' answers.
"""

from __future__ import annotations

import functools
from typing import Any

from asgiref.sync import sync_to_async
from csp import constants as csp_constants
from csp import middleware as csp
from csp import utils as csp_utils
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


class OnEventLoop:
    """For a `MiddlewareMixin` subclass: in async mode, its request hook (and its view hook) run inline on the
    event loop, and so does its response hook unless `response_needs_thread` says this response's hook will do
    I/O (override it where the hook may)."""

    async_mode: bool
    get_response: Any

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        view_hook = getattr(self, "process_view", None)
        if self.async_mode and view_hook is not None:
            # Django's handler hops a sync process_view to the sync thread; a coroutine function it awaits as is.
            async def process_view(request: HttpRequest, view: Any, args: Any, kwargs: Any) -> Any:
                return view_hook(request, view, args, kwargs)

            # Set on the instance, where Django's handler looks it up; setattr keeps mypy from reading it as a
            # second definition of every subclass's process_view.
            setattr(self, "process_view", process_view)  # noqa: B010

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request):
                response = await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response

    def response_needs_thread(self, request: HttpRequest) -> bool:
        return False


class SecurityMiddleware(OnEventLoop, security.SecurityMiddleware):
    """Security headers and the HTTPS redirect: headers in, headers out."""


class XFrameOptionsMiddleware(OnEventLoop, clickjacking.XFrameOptionsMiddleware):
    """The X-Frame-Options header."""


class CSPMiddleware(OnEventLoop, csp.CSPMiddleware):
    """The Content-Security-Policy header and its nonce.

    django-csp builds the header from the settings on every response (copying the policy dicts, then joining
    them): about 35 µs of the event loop per request, for the same string each time. A response that no view
    decorator configured, for a request that used no nonce, gets that string kept from its first build; anything
    else (a nonce, `@csp_update` and friends, an exemption, DEBUG's exemptions, excluded prefixes) goes through
    django-csp unchanged. The kept string is dropped when a test changes the settings (`setting_changed`)."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or _configured_per_response(response):
            return super().process_response(request, response)
        policies = _fixed_policies()
        if policies is None:
            return super().process_response(request, response)
        for header, policy in policies:
            if policy and header not in response:
                response[header] = policy
        # As django-csp does once the header is written: a nonce asked for later could not be in it.
        setattr(request, "csp_nonce", csp.CheckableLazyObject(self._csp_nonce_post_response))  # noqa: B010
        return response


_PER_RESPONSE = tuple(f"_csp_{kind}{ro}" for kind in ("config", "update", "replace", "exempt") for ro in ("", "_ro"))


def _configured_per_response(response: HttpResponseBase) -> bool:
    return any(hasattr(response, name) for name in _PER_RESPONSE)


@functools.cache
def _fixed_policies() -> tuple[tuple[str, str], ...] | None:
    """(header, policy) for both headers as django-csp builds them without a nonce or a view's changes; None
    when the settings make a response's policy depend on more than that (DEBUG, excluded URL prefixes). Kept
    for the process: the settings do not change after start-up except in tests, which the receiver follows."""
    settings_ = (getattr(settings, name, None) or {} for name in (_POLICY, _POLICY_RO))
    if settings.DEBUG or any(policy.get("EXCLUDE_URL_PREFIXES") for policy in settings_):
        return None
    return (
        (csp_constants.HEADER, csp_utils.build_policy()),
        (csp_constants.HEADER_REPORT_ONLY, csp_utils.build_policy(report_only=True)),
    )


_POLICY, _POLICY_RO = "CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"


@receiver(setting_changed)
def _forget_policies(setting: str, **kwargs: Any) -> None:
    if setting in (_POLICY, _POLICY_RO, "DEBUG"):
        _fixed_policies.cache_clear()


class SessionMiddleware(OnEventLoop, sessions.SessionMiddleware):
    """Attaches a session that loads itself when first read (in the view, on its thread). The response hook saves
    it (I/O, so it hops) when it was modified; otherwise it only sets or deletes the cookie and Vary."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is None or session.modified or settings.SESSION_SAVE_EVERY_REQUEST


class CommonMiddleware(OnEventLoop, common.CommonMiddleware):
    """Host validation, the trailing-slash redirect (a URL resolve) and Content-Length."""


class CsrfViewMiddleware(OnEventLoop, csrf.CsrfViewMiddleware):
    """The CSRF check reads the token from the cookie and the header or the form. With the token kept in the
    session it would read the database, so that setting is refused here rather than blocking the event loop."""

    def __init__(self, get_response: Any) -> None:
        if settings.CSRF_USE_SESSIONS:
            raise ImproperlyConfigured("reqflow.loop_middleware.CsrfViewMiddleware needs CSRF_USE_SESSIONS = False")
        super().__init__(get_response)


class AuthenticationMiddleware(OnEventLoop, auth.AuthenticationMiddleware):
    """Attaches the user lazily: the database is read only when a view (on its thread) looks at request.user."""


class MessageMiddleware(OnEventLoop, messages.MessageMiddleware):
    """Attaches the message storage. The response hook stores the messages only when some were added or shown,
    and storing may read and write the session: then it hops."""

    def response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or storage.used or storage.added_new
