"""The WebSocket origin check: a handshake is accepted only from a page of this very site, port included.

Channels' AllowedHostsOriginValidator compares the Origin's host name with ALLOWED_HOSTS and ignores its port,
so a page served by anything else on localhost (http://localhost:9999) could open a learner's socket with their
cookies. This applies the rule Django's CSRF check applies to a POST instead: the Origin must be exactly
scheme://host[:port] of the request (its Host header, itself one of ALLOWED_HOSTS), or one of
CSRF_TRUSTED_ORIGINS. A missing or opaque ("null") Origin is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _normalised(scheme: str, host: str, port: int | None) -> tuple[str, str, int]:
    return scheme, host.lower().strip("[]"), port or DEFAULT_PORTS.get(scheme, 0)


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range or not a number
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return _normalised(parts.scheme, parts.hostname, port)


def same_origin(scope: dict[str, Any]) -> bool:
    """True when the handshake's Origin is this site as the request addressed it, or a trusted origin."""
    origin = _origin(_header(scope, b"origin") or "")
    host_header = _header(scope, b"host") or ""
    if origin is None or not host_header:
        return False
    if origin in {_origin(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    domain, _port = split_domain_port(host_header)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if scope.get("scheme") == "wss" or settings.HTTPS else "http"
    expected = _origin(f"{scheme}://{host_header}")
    return origin == expected


class SameOriginValidator:
    """ASGI middleware for WebSocket scopes: refuse the handshake (403) unless `same_origin`."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)
