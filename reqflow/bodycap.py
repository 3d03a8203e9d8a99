"""One cap on every request body, whatever its content type, enforced before Django reads any of it.

Django's DATA_UPLOAD_MAX_MEMORY_SIZE leaves multipart bodies out, and under ASGI Django reads the whole body
(spooled to a temporary file) before any view or middleware runs: a 50 MB file upload to a form endpoint was read
in full, and 20 MB before a CSRF 403. Two layers close that:

- `BodyCap`, ASGI middleware around the whole site: a declared Content-Length over the cap is answered 413 at
  once; otherwise it reads the body as it streams (a chunked body declares no length) and answers 413 as soon as
  it passes the cap, holding at most the cap plus one message. Any ASGI server gets this.
- `cap_daphne_bodies`: daphne (Twisted) stores a whole body before it calls the application at all, so the same
  rule also runs inside daphne's request, as the headers and each piece of the body arrive. daphne then answers
  413 while the client is still sending, and keeps nothing past the cap.

Both answer with the same short text and the security headers Django's middleware would have added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from daphne import http_protocol
from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# After refusing, daphne keeps reading (and dropping) what the client still sends for this long before it cuts the
# connection: closing with unread data would reset it, and the client could lose the 413 it has not read yet.
LINGER_S = 2.0


def too_large_message(limit: int) -> str:
    return f"Request body too large: this site accepts at most {limit // 1024} KiB ({limit:,} bytes) per request.\n"


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers Django's SecurityMiddleware, XFrameOptionsMiddleware and django-csp add to every response,
    for the answers given before Django runs. A plain-text error needs no source at all: default-src 'none'."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", settings.SECURE_REFERRER_POLICY.encode()),
        (b"x-frame-options", settings.X_FRAME_OPTIONS.encode()),
        (b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    ]
    if settings.SECURE_HSTS_SECONDS:
        headers.append((b"strict-transport-security", f"max-age={settings.SECURE_HSTS_SECONDS}".encode()))
    return headers


def too_large_response(limit: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = too_large_message(limit).encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *security_headers(),
    ]
    return headers, body


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyCap:
    """ASGI middleware: HTTP request bodies over REQUEST_BODY_MAX_BYTES get a 413 before the app reads them."""

    def __init__(self, app: Any) -> None:  # an ASGI application (Django's handler types its own arguments)
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit: int = settings.REQUEST_BODY_MAX_BYTES
        length = declared_length(scope)
        if length is not None and length > limit:
            return await self.refuse(send, limit)
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":  # the client went away: let the app see it
                break
            size += len(message.get("body", b""))
            if size > limit:
                return await self.refuse(send, limit)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            # The body as it arrived, then the live channel (Django listens for the disconnect while it answers).
            return received.pop(0) if received else await receive()

        return await self.app(scope, replay, send)

    @staticmethod
    async def refuse(send: Send, limit: int) -> None:
        headers, body = too_large_response(limit)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class CappedWebRequest(http_protocol.WebRequest):
    """daphne's request with the body cap applied as the body arrives (Twisted calls gotLength once the headers
    are in, then handleContentChunk for each piece, and requestReceived only when all of it is in)."""

    body_limit = 64 * 1024
    _refused = False
    _received = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Twisted would parse a form body into request.args (the Content-Type through the email package, then the
        # fields, or a whole multipart body), which daphne never reads: Django parses the body it is handed. On
        # a command that was about a twentieth of the web process's busy thread.
        self._parsePOSTFormSubmission = False

    def gotLength(self, length: int | None) -> None:  # Twisted names its hooks in camelCase
        if length is not None and length > self.body_limit:
            super().gotLength(0)  # an empty in-memory body: nothing of this one is kept
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.body_limit:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:  # the client sent it all anyway; it already has its answer
            self.channel.transport.loseConnection()
            return
        super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        # Twisted would answer "100 Continue" right after gotLength: the client must not send the body now.
        self.requestHeaders.removeHeader(b"expect")
        headers, body = too_large_response(self.body_limit)
        head = b"HTTP/1.1 413 Content Too Large\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        transport = self.channel.transport
        transport.write(head + b"\r\n" + body)
        half_close = getattr(transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()  # the answer, then FIN; what the client still sends is read and dropped (above)
        else:
            transport.loseConnection()
        self.channel.callLater(LINGER_S, lambda: transport.connected and transport.abortConnection())


def cap_daphne_bodies(limit: int) -> None:
    """Make daphne's HTTP factory build capped requests (it looks the request class up for each connection)."""
    CappedWebRequest.body_limit = limit
    http_protocol.WebRequest = CappedWebRequest
