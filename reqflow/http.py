"""Small HTTP helpers every app shares: typed htmx requests, the one rule for `next` redirects, and the escaped
HTML an htmx request gets for a 400."""

from __future__ import annotations

import re

from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that went through django-htmx's middleware (as its docs suggest, for type checkers)."""

    htmx: HtmxDetails


def safe_next(request: HttpRequest, default: str) -> str:
    """Where a form goes back to: the request's `next` (POST, then GET) when it is a path on this site, else
    `default`. Never an open redirect: no other host, no scheme-relative `//host`, no `javascript:`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if (
        candidate.startswith("/")
        and not candidate.startswith("//")
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    return default


# An element id htmx names in HX-Target that the answer may repeat (a header is input: anything else is dropped).
TARGET_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def error_fragment(request: HttpRequest, message: str) -> str:
    """A 400's message as the HTML htmx swaps in (lab.js swaps 400 answers): escaped, in an alert, and with the
    id of the element it replaces, so that element is still there for the next answer. Reads only headers."""
    target = request.headers.get("HX-Target", "")
    if TARGET_ID.fullmatch(target):
        return format_html('<div id="{}" class="lab-result lab-result--bad" role="alert">{}</div>', target, message)
    return format_html('<p class="lab-result lab-result--bad" role="alert">{}</p>', message)
