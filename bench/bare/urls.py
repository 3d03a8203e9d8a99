"""The bare site's endpoints: a page (one template render), a POST (one form read, one short answer), and a fan-out
trigger (one group send to every bare socket)."""

from __future__ import annotations

from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_POST, require_safe


@require_safe
def page(request: HttpRequest) -> HttpResponse:
    return render(request, "bare/page.html", {"title": "A bare page", "items": range(10)})


@require_POST
def command(request: HttpRequest) -> HttpResponse:
    # As little as a form post can do: read a field, answer a line of HTML.
    return HttpResponse(f"<p>accepted {len(request.POST.get('amount', ''))}</p>")


@require_POST
async def fanout(request: HttpRequest) -> HttpResponse:
    """Send one message of `size` characters, tagged `tag`, to every bare socket (bare.consumers.Bare)."""
    size, tag = int(request.GET.get("size", "100")), request.GET.get("tag", "0")[:16]
    text = tag + "|" + "x" * max(0, size - len(tag) - 1)
    await get_channel_layer().group_send("bare", {"type": "bare.message", "text": text})
    return HttpResponse("sent")


urlpatterns = [path("", page), path("command/", command), path("fanout/", fanout)]
