"""Small HTTP helpers every app shares: typed htmx requests, and the one rule for `next` redirects."""

from __future__ import annotations

from django.http import HttpRequest
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
