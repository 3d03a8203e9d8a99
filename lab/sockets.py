"""The lab's open sockets, counted: at most LAB_MAX_SOCKETS_PER_SESSION per browser session and
LAB_MAX_SOCKETS_PER_ADDRESS per client address (lab.clients) in this server process. A socket past either cap
closes the oldest one of its session (or address), which tells its page why before it goes (lab.consumers).

And the rendezvous of a page opened before its visitor had a sandbox: its socket waits in a group named after the
browser (lab.clients.browser_key: a session may not exist yet), and the request that creates the visitor's first
sandbox announces it there (lab.sandboxes.announce_created), so the page goes live without a reload.

Counted per process here; with a Redis channel layer (the scaled-out mode) lab.shared_sockets counts them across
every web process too, and its evictions take the place of this count's, which then only records.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

log = logging.getLogger(__name__)

CREATED_TYPE = "lab.created"  # handled by LabConsumer.lab_created
EVICTED_TYPE = "lab.evicted"  # handled by LabConsumer.lab_evicted
CLOSED_TEMPLATE = "lab/_socket_closed.html"  # the live status, saying why the page was closed
SEND_TIMEOUT_S = 1.0  # an announcement or an eviction is a hint: a hung channel layer must not hold anything up


def browser_group(browser: str) -> str:
    return f"lab-browser-{browser}"


@dataclass(frozen=True)
class Eviction:
    channel_name: str
    limit: int
    per: str  # "session" | "address": which cap it passed


def caps_for(*, session: str, address: str) -> list[tuple[str, str, int]]:
    """(per, value, limit) for each cap a socket counts under."""
    return [("session", session, settings.LAB_MAX_SOCKETS_PER_SESSION),
            ("address", address, settings.LAB_MAX_SOCKETS_PER_ADDRESS)]  # fmt: skip


class Registry:
    """Open sockets by session and by address, oldest first. Thread-safe (one event loop uses it in daphne, but
    tests run several)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[tuple[str, str], OrderedDict[str, None]] = {}
        self._keys: dict[str, list[tuple[str, str]]] = {}

    def add(self, channel_name: str, *, session: str, address: str, enforce: bool = True) -> list[Eviction]:
        """Count a new socket; returns the sockets it pushes out (the oldest past each cap), already uncounted.
        With `enforce` false it only records the socket (the shared count decided what goes)."""
        caps = caps_for(session=session, address=address) if enforce else []
        evicted: list[Eviction] = []
        with self._lock:
            keys = [(per, value) for per, value in (("session", session), ("address", address)) if value]
            self._keys[channel_name] = keys
            for key in keys:
                self._by.setdefault(key, OrderedDict())[channel_name] = None
            for per, value, limit in caps:
                open_now = self._by.get((per, value))
                while value and open_now is not None and len(open_now) > limit:
                    oldest = next(iter(open_now))
                    self._forget(oldest)
                    evicted.append(Eviction(oldest, limit, per))
        return evicted

    def remove(self, channel_name: str) -> None:
        with self._lock:
            self._forget(channel_name)

    def count(self, *, session: str = "", address: str = "") -> int:
        with self._lock:
            key = ("session", session) if session else ("address", address)
            return len(self._by.get(key, ()))

    def _forget(self, channel_name: str) -> None:
        for key in self._keys.pop(channel_name, []):
            sockets = self._by.get(key)
            if sockets is not None:
                sockets.pop(channel_name, None)
                if not sockets:
                    del self._by[key]


REGISTRY = Registry()


def closed_message(eviction: Eviction) -> str:
    """What the page shows when its socket was closed for a newer one."""
    if eviction.per == "session":
        why = f"you opened more than {eviction.limit} lab pages"
    else:
        why = f"more than {eviction.limit} lab pages are open from your network"
    return f"This page was closed because {why}. Reload it to use it again (another one then closes)."


async def send_eviction(layer: object, eviction: Eviction) -> None:
    """Tell the socket to close (it says why first). Bounded and never raising: at worst it stays open."""
    message = {"type": EVICTED_TYPE, "limit": eviction.limit, "per": eviction.per}
    try:
        await asyncio.wait_for(layer.send(eviction.channel_name, message), SEND_TIMEOUT_S)  # type: ignore[attr-defined]
    except Exception:
        log.warning("could not close an extra lab socket", exc_info=True)


def announce(browser: str) -> None:
    """From synchronous code: a browser's first sandbox exists now; its waiting pages pick it up."""
    layer = get_channel_layer()
    if layer is None or not browser:
        return

    async def send() -> None:
        try:
            await asyncio.wait_for(layer.group_send(browser_group(browser), {"type": CREATED_TYPE}), SEND_TIMEOUT_S)
        except Exception:  # a hint: the page still has its own answer, and a reload finds the sandbox
            log.warning("could not tell a browser's pages about its new sandbox", exc_info=True)

    async_to_sync(send)()
