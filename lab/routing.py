from __future__ import annotations

from django.urls import path

from lab.consumers import LabConsumer

websocket_urlpatterns = [
    path("ws/lab/", LabConsumer.as_asgi()),
]
