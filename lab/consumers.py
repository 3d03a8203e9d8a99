"""LabConsumer: one WebSocket per lab page, server to client only.

The socket carries rendered out-of-band partials (the same templates the page and the htmx responses use).
It never takes instructions: the sandbox comes from the session, any client frame closes the socket, and every
push re-reads the session, so a logged-out or reset session stops receiving (or moves to the new sandbox).
Pushes are hints coalesced by a token bucket (PUSH_RATE); each re-reads the state, so a dropped or
merged hint loses nothing, and each carries a stamp so the page never applies an older state over a newer one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import connections

from lab.live import group_name
from lab.panel import LATER_PARTS, LIVE_PARTS, READ_SIDE_PARTS, Panel, build_panel, render_parts
from lab.sandboxes import sandbox_for_session_key

log = logging.getLogger(__name__)

# A token bucket per socket: a short burst goes out at once (a command's push, then its projection's a few ms
# later, must not wait on each other), while a sustained stream averages at most PUSH_RATE pushes a second,
# more than a page can show. Hints arriving meanwhile merge into the next push, which re-reads the state.
PUSH_RATE = 20.0
PUSH_BURST = 3.0
# Hints from projector progress only: their pushes re-render just the read side (lab.panel.READ_SIDE_PARTS).
READ_SIDE_REASONS = frozenset({"projected", "rebuild", "retro"})
# How long a command's push waits for its projection when the projector applies it at once (lag 0). It lands a
# few ms after the command; waiting for it makes one push with both models at the new version, where pushing
# straight away rendered the whole panel while the projector was still working (both competing for the CPU)
# and then the read side again. A stalled projector costs a push this much delay, never more.
PROJECTION_WAIT_S = 0.05
# A client frame: this socket is server-to-client only. An application code (4000-4999): the server's WebSocket
# library refuses 1008 from an application, which turned every client frame into a traceback and a 1011 close.
CLOSE_CLIENT_FRAME = 4400
CLOSE_NO_SESSION = 4401  # the session ended (logout, expiry) while the socket was open
CLOSE_NO_SANDBOX = 4403


def current_sandbox_id(session_key: str | None) -> Any:
    """The id of the sandbox this session works in now, read afresh from the session store; None when there is none."""
    sandbox = sandbox_for_session_key(session_key)
    return sandbox.pk if sandbox is not None else None


# A session that moved to another sandbox (a reset or its undo, in this tab or another) gets every part that shows
# the sandbox, but not the whole panel: the tab that pressed Reset keeps its own answer beside the button (with
# its Undo) and whichever tool it has open.
MOVED_PARTS = (*LIVE_PARTS, "lab-command-id", "lab-command-result", "lab-query-result", "lab-replay",
               "lab-time-travel-state")  # fmt: skip


@dataclass
class Push:
    sandbox_id: Any  # None: the session has no sandbox any more
    html: str = ""
    later: Panel | None = None  # render LATER_PARTS of this panel next, in a frame of their own


def render_push(
    session_key: str | None, known_sandbox_id: Any, *, read_side_only: bool = False, in_one_frame: bool = False
) -> Push:
    """The session's current sandbox and the push for it: the whole panel if the session moved to another
    sandbox (a reset in another tab), else the live parts (the LATER_PARTS of them left for a second frame).

    One call on one thread: the session check and the render share a database connection and a thread hop.
    """
    sandbox = sandbox_for_session_key(session_key)
    if sandbox is None:
        return Push(None)
    sandbox_id = sandbox.pk
    with_panel = sandbox_id != known_sandbox_id
    # Pushes reach only pages running JavaScript, at their own URL: an empty `next` makes every link and form
    # action in the partials relative to that page (the socket is never told which page it serves). The
    # sandbox row was just read, so the panel need not read it again.
    panel = build_panel(None, sandbox, next_url="", sandbox_is_fresh=True)
    if with_panel:
        return Push(sandbox_id, render_parts(panel, MOVED_PARTS))
    if read_side_only:
        return Push(sandbox_id, render_parts(panel, READ_SIDE_PARTS))
    if in_one_frame:
        return Push(sandbox_id, render_parts(panel, LIVE_PARTS))
    return Push(sandbox_id, render_parts(panel, [p for p in LIVE_PARTS if p not in LATER_PARTS]), later=panel)


def render_later(panel: Panel) -> str:
    return render_parts(panel, LATER_PARTS)


# Pushes render on their own threads, not on asgiref's one shared thread where every sync view runs: there a
# push queued behind whatever request the page had just sent (the time-travel slider following the head, for
# one) and the read model showed up on the page that much later.
_PUSH_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lab-push")


def _fresh_push_executor_after_fork() -> None:
    # A forked child (a test's live server) inherits the pool but not its threads: work sent to it would wait
    # forever on workers that do not exist there.
    global _PUSH_EXECUTOR
    _PUSH_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lab-push")


os.register_at_fork(after_in_child=_fresh_push_executor_after_fork)


def _in_thread(func: Callable[..., Any]) -> Callable[..., Any]:
    def read_and_close(*args: Any, **kwargs: Any) -> Any:
        # Read-only work. The connection closes afterwards (CONN_MAX_AGE is 0 anyway), so a pool thread never
        # keeps a database session open between pushes.
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(read_and_close, thread_sensitive=False, executor=_PUSH_EXECUTOR)


class LabConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.sandbox_id: Any = None
        self.group: str | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._dirty = False
        self._reasons: set[str] = set()
        self._push_lock = asyncio.Lock()
        self._tokens = PUSH_BURST
        self._refilled_at = 0.0
        self._awaited_read_version = 0  # a command's version whose projection the next push waits for
        self._projected_version = 0  # the highest read version a "projected" hint has named (this sandbox)
        self._projection_arrived = asyncio.Event()
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.sandbox_id = await database_sync_to_async(current_sandbox_id)(self.session_key)
        if self.sandbox_id is None:
            await self.close(code=CLOSE_NO_SANDBOX)
            return
        self.group = group_name(self.sandbox_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # A (re)connecting page may have missed anything: send the whole current state at once.
        await self._push(in_one_frame=True)

    async def disconnect(self, code: int) -> None:
        if self._push_task is not None:
            self._push_task.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Commands travel as POSTs with CSRF; a frame from the client is never expected.
        await self.close(code=CLOSE_CLIENT_FRAME)

    async def lab_changed(self, event: dict[str, Any]) -> None:
        # Only mark the page out of date; one loop per socket turns any number of hints into few pushes.
        reason = str(event.get("reason", ""))
        self._reasons.add(reason)
        if reason == "projected":
            self._projected_version = max(self._projected_version, int(event.get("read_version") or 0))
        elif reason == "command" and event.get("projects_at_once"):
            self._awaited_read_version = max(self._awaited_read_version, int(event.get("write_version") or 0))
        # The projector's hint can overtake the command's own: then there is nothing left to wait for.
        if self._projected_version >= self._awaited_read_version:
            self._projection_arrived.set()
        else:
            self._projection_arrived.clear()
        self._dirty = True
        if self._push_task is None or self._push_task.done():
            self._push_task = asyncio.ensure_future(self._push_while_dirty())

    def _take_token(self) -> float:
        """Seconds to wait before the next push may go (0 = now); takes the token when it is available."""
        now = asyncio.get_running_loop().time()
        self._tokens = min(PUSH_BURST, self._tokens + (now - self._refilled_at) * PUSH_RATE)
        self._refilled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / PUSH_RATE

    async def _push_while_dirty(self) -> None:
        while self._dirty:
            if self._awaited_read_version:
                try:
                    await asyncio.wait_for(self._projection_arrived.wait(), PROJECTION_WAIT_S)
                except TimeoutError:
                    pass
                self._awaited_read_version = 0
            while (wait := self._take_token()) > 0:
                await asyncio.sleep(wait)
            # Hints arriving from here on (even during this push) make the loop go round once more.
            self._dirty = False
            reasons, self._reasons = self._reasons, set()
            await self._push(read_side_only=reasons <= READ_SIDE_REASONS)

    async def _push(self, *, read_side_only: bool = False, in_one_frame: bool = False) -> None:
        async with self._push_lock:
            try:
                push = await _in_thread(render_push)(
                    self.session_key, self.sandbox_id, read_side_only=read_side_only, in_one_frame=in_one_frame
                )
            except Exception:
                log.exception("rendering a push for sandbox %s failed", self.sandbox_id)
                return
            sandbox_id = push.sandbox_id
            if sandbox_id is None:
                await self.close(code=CLOSE_NO_SESSION)
                return
            if sandbox_id != self.sandbox_id:
                # The learner reset the sandbox in another tab: follow the session to the new one.
                await self.channel_layer.group_discard(self.group, self.channel_name)
                self.sandbox_id, self.group = sandbox_id, group_name(sandbox_id)
                self._projected_version = 0  # a new stream counts from v0 again
                await self.channel_layer.group_add(self.group, self.channel_name)
            await self.send(text_data=push.html)
            if push.later is not None:
                try:
                    html = await _in_thread(render_later)(push.later)
                except Exception:
                    log.exception("rendering a push for sandbox %s failed", sandbox_id)
                    return
                await self.send(text_data=html)
