"""The bare site under daphne: HTTP through Django, /ws/bare/ to the bare consumer."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bare.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from bare.consumers import Bare  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": URLRouter([path("ws/bare/", Bare.as_asgi())])})
