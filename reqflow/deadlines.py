"""Deadlines for slow clients, inside daphne: a request's headers within HTTP_HEADER_TIMEOUT_S of its first byte,
its body within HTTP_BODY_TIMEOUT_S of its headers; past either, a 408 and the connection is closed.

daphne has no such option. Its --http-timeout bounds the application's answer only, from the moment the whole
request is in; Twisted's own timeout is an idle timeout that every received byte resets. So one header line every
5 s kept a connection (and a WebSocket upgrade, which starts as such a request) open forever: 350 of 350 were still
open after 75 s. Here each request's head and body get a deadline that data arriving does not move.

The idle time before a request's first byte stays Twisted's (60 s); a WebSocket's time to be accepted is daphne's
--websocket_connect_timeout, and its liveness --ping-interval / --ping-timeout (the Makefile's `run` sets them).
"""

from __future__ import annotations

from typing import Any

from daphne import http_protocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

from reqflow.bodycap import security_headers

TIMEOUT_BODY = b"Request Timeout: the request did not arrive in time.\n"


class DeadlineChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 connection with a deadline for each request's head and body."""

    header_timeout_s = 10.0
    body_timeout_s = 30.0
    _deadline: Any = None  # the pending IDelayedCall
    _awaiting_head = True  # no request in progress: the next byte starts one (and its header deadline)

    def dataReceived(self, data: bytes) -> None:  # Twisted names its hooks in camelCase
        if self._awaiting_head and data and self._deadline is None:
            self._arm(self.header_timeout_s)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._awaiting_head = False
        self._arm(self.body_timeout_s)  # disarmed at once by allContentReceived when there is no body
        super().allHeadersReceived()

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self._awaiting_head = True  # before super(): it replays any pipelined bytes through dataReceived
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        super().connectionLost(reason)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.callLater(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        transport: Any = self.transport
        if transport is None or not getattr(transport, "connected", True):
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(TIMEOUT_BODY)).encode()),
            (b"connection", b"close"),
            *security_headers(),
        ]
        head = b"HTTP/1.1 408 Request Timeout\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
        transport.write(head + b"\r\n" + TIMEOUT_BODY)
        transport.loseConnection()
        # A client that stops reading too would keep it half-closed: cut it after a moment.
        self.callLater(2.0, lambda: transport.connected and transport.abortConnection())


def _deadline_channel(factory: http.HTTPFactory) -> Any:
    # What Twisted's HTTPFactory.protocol does (twisted.web.http._genericHTTPChannelProtocolFactory), with our
    # channel; the wrapper picks HTTP/1.1 or HTTP/2 after TLS negotiation (HTTP/2 only with TLS, never here).
    return http._GenericHTTPChannelProtocol(DeadlineChannel())


def install_deadlines(header_timeout_s: float, body_timeout_s: float) -> None:
    """Make daphne's HTTP factory build connections with these deadlines (it builds one per connection)."""
    DeadlineChannel.header_timeout_s = float(header_timeout_s)
    DeadlineChannel.body_timeout_s = float(body_timeout_s)
    http_protocol.HTTPFactory.protocol = _deadline_channel
