"""A lab socket's handshake when the database fails: a clean close the page understands, and one log line.

The handshake reads the database twice: channels' AuthMiddleware loads the session (and the user) and the consumer
reads the session's sandbox. When PostgreSQL refused a connection ("too many clients already") either raised, and
daphne logged a traceback per socket whose first lines read "'SessionStore' object has no attribute
'_session_cache'": Django's session looks its cache up with try/except AttributeError and loads it inside the
except clause, so the load's OperationalError is reported "during handling of" that AttributeError (issue 12 counted
45). This wrapper catches a database failure (reqflow.dbfailure.classify) anywhere in the handshake, logs it
through dbfailure's rate-limited line, and answers the socket: accepted, then closed with CLOSE_DATABASE_UNAVAILABLE.
A refusal before accepting would reach the browser only as 1006 (an HTTP 403 to the upgrade); a close code says
why. The page (static/js/lab.js) treats it as any close it does not know: it polls, whose 503 shows what happened,
and its socket reconnects. Anything that is not a database failure is a bug and still raises.
"""

from __future__ import annotations

from typing import Any

from reqflow.dbfailure import classify, quiet_log

CLOSE_DATABASE_UNAVAILABLE = 4503

Scope = dict[str, Any]
Receive = Any
Send = Any


class DatabaseSafeHandshake:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        progress = {"received": False, "answered": False}

        async def receive_noting() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            progress["received"] = progress["received"] or message.get("type") == "websocket.connect"
            return message

        async def send_noting(message: dict[str, Any]) -> None:
            if message.get("type") in ("websocket.accept", "websocket.close"):
                progress["answered"] = True
            await send(message)

        try:
            await self.app(scope, receive_noting, send_noting)
        except Exception as exc:
            failure = classify(exc)
            if failure is None or progress["answered"]:
                raise  # a bug, or a failure after the handshake: the consumer's own handling applies
            quiet_log.report(failure, exc, "a lab socket's handshake")
            if not progress["received"]:
                await receive()  # the websocket.connect the application never read
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_DATABASE_UNAVAILABLE})
