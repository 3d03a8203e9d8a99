"""settings.MIDDLEWARE as a list that knows reqflow.loop_middleware's stand-ins for Django's middlewares.

Django's deploy checks ask whether a middleware is installed by its exact dotted path ("is
django.middleware.security.SecurityMiddleware in MIDDLEWARE?") and skip the checks that depend on it when it is
not: HSTS, the HTTPS redirect, X-Frame-Options, the secure CSRF and session cookies. Our loop versions subclass
those middlewares and behave the same, so here "Django's X is installed" is also true when its loop version is.
Without this, `check --deploy` would warn that security middleware is missing and stop checking the settings it
governs. Nothing else changes: iterating the list (how Django loads the chain) yields exactly what was written.

No Django import here: settings.py imports this module before Django is set up.
"""

from __future__ import annotations

from typing import Any

STAND_INS = {
    "django.middleware.security.SecurityMiddleware": "reqflow.loop_middleware.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "reqflow.loop_middleware.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware": "reqflow.loop_middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware": "reqflow.loop_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware": "reqflow.loop_middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware": "reqflow.loop_middleware.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "reqflow.loop_middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware": "reqflow.loop_middleware.MessageMiddleware",
}


class MiddlewareList(list[str]):
    def __contains__(self, path: Any) -> bool:
        return super().__contains__(path) or super().__contains__(STAND_INS.get(path))
