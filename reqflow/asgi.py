"""ASGI entry point: HTTP through the body cap and Django, WebSockets through the origin check (scheme, host and
port), session auth and the lab routes.

daphne implements no ASGI lifespan, so the embedded projector is scheduled on daphne's event loop when this module
is imported by daphne's command line (it catches up with pending events before any request), and otherwise starts
the first time any connection arrives (see lab.projector.start_embedded_projector; it starts once per process).
"""

from __future__ import annotations

import os
import sys

# The projector's thread makes many short SQLite calls, each releasing the GIL; behind a thread rendering a
# page it waits up to the switch interval to get it back every time (a convoy). 5 ms per call turned a 5 ms
# projection into one that finished only after the render; 0.5 ms keeps it prompt.
sys.setswitchinterval(0.0005)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reqflow.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from lab.projector import start_embedded_projector  # noqa: E402
from lab.routing import websocket_urlpatterns  # noqa: E402
from reqflow.bodycap import BodyCap, cap_daphne_bodies  # noqa: E402
from reqflow.collector import pace_for_a_server  # noqa: E402
from reqflow.deadlines import install_deadlines  # noqa: E402
from reqflow.handshake import DatabaseSafeHandshake  # noqa: E402
from reqflow.origins import SameOriginValidator  # noqa: E402
from reqflow.request_threads import RequestThreads  # noqa: E402

# daphne stores a whole request body before it calls the application: cap it there too (reqflow.bodycap).
cap_daphne_bodies(settings.REQUEST_BODY_MAX_BYTES)
# ...and slow clients get a deadline for each request's head and body there (reqflow.deadlines).
install_deadlines(settings.HTTP_HEADER_TIMEOUT_S, settings.HTTP_BODY_TIMEOUT_S)


class StartProjectorOnFirstScope:
    """Start the in-process projector lazily, from inside the running event loop."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app
        self.started = False

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if not self.started and settings.EMBEDDED_PROJECTOR:
            start_embedded_projector()
            self.started = True
        return await self.app(scope, receive, send)


def start_projector_when_serving() -> None:
    """Under daphne's command line the asyncio reactor is installed before the application is imported: start the
    projector as soon as its loop runs, not at the first request (a restarted site would otherwise leave pending
    events unprojected until someone visits)."""
    reactor = sys.modules.get("twisted.internet.reactor")
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None and settings.EMBEDDED_PROJECTOR:
        loop.call_soon(start_embedded_projector)


start_projector_when_serving()
# Last, once everything above is loaded: rarer collections, and what start-up loaded frozen (reqflow/collector.py).
pace_for_a_server()

application = StartProjectorOnFirstScope(
    ProtocolTypeRouter(
        {
            # At most ASGI_THREADS threads (and database connections) for the requests' sync work.
            "http": BodyCap(RequestThreads(django_asgi_app, settings.ASGI_THREADS)),
            # A database failure while the session, the user or the sandbox is read closes the socket with a code
            # the page understands, not a traceback (reqflow.handshake).
            "websocket": SameOriginValidator(
                DatabaseSafeHandshake(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
)
