"""LabConsumer: one WebSocket per lab page, server to client only.

The socket carries rendered out-of-band partials (the same templates the page and the htmx responses use).
It never takes instructions: the sandbox comes from the session, any client frame closes the socket, and every
push re-reads the session, so a logged-out or reset session stops receiving (or moves to the new sandbox).
Pushes are hints coalesced by a token bucket (PUSH_RATE); each re-reads the state, so a dropped or
merged hint loses nothing, and each carries a stamp so the page never applies an older state over a newer one.
A push is read and rendered once per sandbox and hint in this process and shared by that sandbox's sockets
(`shared`), and each socket sends only the parts that changed since it last sent them (`LabConsumer._unsent`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections
from django.template.loader import render_to_string

from lab import shared_sockets, sockets
from lab.clients import address_group, browser_key
from lab.live import group_name
from lab.models import Sandbox
from lab.panel import LATER_PARTS, LIVE_PARTS, READ_SIDE_PARTS, Panel, build_panel, render_parts
from lab.sandboxes import sandbox_for_session_key
from reqflow.dbfailure import LIVE_AGAIN, SOCKET_RETRY_MAX_S, classify, quiet_log, retrying_status

log = logging.getLogger(__name__)

# A token bucket per socket: a short burst goes out at once (a command's push, then its projection's a few ms
# later, must not wait on each other), while a sustained stream averages at most PUSH_RATE pushes a second,
# more than a page can show. Hints arriving meanwhile merge into the next push, which re-reads the state.
PUSH_RATE = 20.0
PUSH_BURST = 3.0
# Hints from projector progress only: their pushes re-render just the read side (lab.panel.READ_SIDE_PARTS).
READ_SIDE_REASONS = frozenset({"projected", "rebuild", "retro"})
# Hints whose pushes leave out the parts this socket already sent unchanged. Any other hint (a control, a reset)
# follows a request whose htmx answer swapped live parts on the page: its push sends them all.
DIFFED_REASONS = READ_SIDE_REASONS | {"command"}
# How long a command's push waits for its projection when the projector applies it at once (lag 0). It lands a
# few ms after the command; waiting for it makes one push with both models at the new version, where pushing
# straight away rendered the whole panel while the projector was still working (both competing for the CPU)
# and then the read side again. A stalled projector costs a push this much delay, never more.
PROJECTION_WAIT_S = 0.05
# A client frame: this socket is server-to-client only. An application code (4000-4999): the server's WebSocket
# library refuses 1008 from an application, which turned every client frame into a traceback and a 1011 close.
CLOSE_CLIENT_FRAME = 4400
CLOSE_NO_SESSION = 4401  # the session ended (logout, expiry) while the socket was open
CLOSE_NO_SANDBOX = 4403  # neither a sandbox nor a browser to wait for one (no CSRF cookie: no page of ours opened it)
# The page had no sandbox and no session when it opened; now it has both: lab.js reconnects at once, with the cookie.
CLOSE_RECONNECT = 4012
# More lab pages open than LAB_MAX_SOCKETS_PER_SESSION (or _PER_ADDRESS): this, the oldest, was closed. Its page shows
# why (the push before the close) and neither polls nor reconnects.
CLOSE_TOO_MANY_PAGES = 4429


def current_sandbox_id(session_key: str | None) -> Any:
    """The id of the sandbox this session works in now, read afresh from the session store; None when there is none."""
    sandbox = sandbox_for_session_key(session_key)
    return sandbox.pk if sandbox is not None else None


# A session that moved to another sandbox (a reset or its undo, in this tab or another) gets every part that shows
# the sandbox, but not the whole panel: the tab that pressed Reset keeps its own answer beside the button (with
# its Undo) and whichever tool it has open.
MOVED_PARTS = (*LIVE_PARTS, "lab-command-id", "lab-command-result", "lab-query-result", "lab-replay",
               "lab-time-travel-state")  # fmt: skip
# Each tab needs a command id of its own (two tabs sending the same one would see the second refused as a retry).
PER_SOCKET_PARTS = ("lab-command-id",)


# The parts that show the two versions go first, in a frame of their own. Each frame's parts are rendered when it
# goes, so these reach the page without waiting for the rest of the panel to render (the missions, the projector's
# track, the history: about three quarters of the first frame's time, measured at lag 0), and the read model's
# version is what a learner watches at lag 0.
VERSION_PARTS = ("lab-versions", "lab-write-model", "lab-read-model", "lab-expected-version")


def frames(*, moved: bool, read_side_only: bool, in_one_frame: bool, later: bool = False) -> list[tuple[str, ...]]:
    """The parts of a push, frame by frame: the whole panel if the session moved to another sandbox (a reset in
    another tab), else the live parts: the VERSION_PARTS among them, then the rest, then the LATER_PARTS (which a
    push of the read side alone leaves out, unless `later`: a push before it owes them), or all in one frame."""
    if moved:
        return [tuple(p for p in MOVED_PARTS if p not in PER_SOCKET_PARTS)]
    if in_one_frame:
        return [LIVE_PARTS]
    parts = READ_SIDE_PARTS if read_side_only else tuple(p for p in LIVE_PARTS if p not in LATER_PARTS)
    first = tuple(p for p in VERSION_PARTS if p in parts)
    out = [first, tuple(p for p in parts if p not in first)]
    return [*out, LATER_PARTS] if later or not read_side_only else out


# --- One read and render per sandbox and hint, shared by the sandbox's sockets ---------------------------------
# Every socket of a sandbox used to read the panel (about 16 queries) and render it for itself on each hint: 200
# open pages of one sandbox made 200 reads and renders of the same HTML, and the projector starved behind them.
# Now the first socket to handle a hint starts the read, and every socket whose hint arrived before that read
# began takes its result: a read that began after the hint arrived sees everything the hint announced (hints go
# out after commit). The rendered parts are the same for every socket: a push has no request, `next` is "" and
# nothing per tab (time travel, replay, the log page) is among them, except PER_SOCKET_PARTS.
SHARED_PUSHES = True  # False: every socket reads, renders and sends everything itself (the benchmark's baseline)
SHARE_FOR_S = 1.0  # a finished read stays on offer this long (to sockets whose hint came before it began)
# A part unchanged since this socket last sent it is left out of a push, but sent again after this long anyway:
# an htmx answer (a query, a refused command) may have swapped it on the page meanwhile without the socket knowing.
RESEND_AFTER_S = 5.0
_STAMP = re.compile(r' data-stamp="\d*"')
T = TypeVar("T")


class Shared:
    """Reads begun on one event loop, each offered to every caller whose hint arrived before it began."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.entries: dict[Any, tuple[float, asyncio.Future[Any]]] = {}

    def get(self, key: Any, not_before: float, start: Callable[[], Awaitable[T]]) -> asyncio.Future[T]:
        entry = self.entries.get(key)
        if SHARED_PUSHES and entry is not None and entry[0] >= not_before:
            return entry[1]
        future: asyncio.Future[T] = asyncio.ensure_future(start())
        self.entries[key] = (self.loop.time(), future)
        future.add_done_callback(lambda done: self._expire(key, done))
        return future

    def _expire(self, key: Any, future: asyncio.Future[Any]) -> None:
        def drop() -> None:
            if (entry := self.entries.get(key)) is not None and entry[1] is future:
                del self.entries[key]

        if future.cancelled() or future.exception() is not None:
            drop()  # a failure is never offered to a later push
        else:
            self.loop.call_later(SHARE_FOR_S, drop)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Shared] = weakref.WeakKeyDictionary()


def shared() -> Shared:
    """This event loop's shared reads (one loop serves every socket of a daphne process)."""
    loop = asyncio.get_running_loop()
    if (found := _SHARED.get(loop)) is None:
        found = _SHARED[loop] = Shared(loop)
    return found


class Render:
    """One read of a sandbox's panel (lab_state), each of its parts rendered once, on a push thread, on demand."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.parts: dict[str, asyncio.Future[dict[str, tuple[str, str]]]] = {}

    async def html(self, names: tuple[str, ...]) -> list[tuple[str, str, str]]:
        """(name, html, html without its stamps) of each part, rendered by whichever socket asked for it first."""
        missing = tuple(n for n in names if n not in self.parts)
        if missing:
            batch = asyncio.ensure_future(_in_thread(render_each)(self.panel, missing))
            self.parts.update(dict.fromkeys(missing, batch))
            batch.add_done_callback(lambda done: self._forget_failed(missing, done))
        out = []
        for name in names:
            html, bare = (await asyncio.shield(self.parts[name]))[name]
            out.append((name, html, bare))
        return out

    def _forget_failed(self, names: tuple[str, ...], batch: asyncio.Future[Any]) -> None:
        if batch.cancelled() or batch.exception() is not None:
            for name in names:
                if self.parts.get(name) is batch:
                    del self.parts[name]


def render_each(panel: Panel, names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    rendered = {}
    for name in names:
        html = render_parts(panel, (name,))
        rendered[name] = (html, _STAMP.sub("", html))
    return rendered


def read_panel(sandbox: Sandbox) -> Render:
    # Pushes reach only pages running JavaScript, at their own URL: an empty `next` makes every link and form
    # action in the partials relative to that page (the socket is never told which page it serves). The
    # sandbox row was just read, so the panel need not read it again.
    return Render(build_panel(None, sandbox, next_url="", sandbox_is_fresh=True))


def per_socket_html(panel: Panel) -> str:
    return render_parts(dataclasses.replace(panel, command_id=uuid.uuid4().hex), PER_SOCKET_PARTS)


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
        # Read-only work. Afterwards the connection goes as a request's would: on PostgreSQL the process keeps it to
        # lend again (reqflow.pooled_postgresql), so a pool thread holds no session between pushes; a SQLite file's
        # stays open for the next.
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(read_and_close, thread_sensitive=False, executor=_PUSH_EXECUTOR)


class LabConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.sandbox_id: Any = None
        self.group: str | None = None
        self._push_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None  # keeps this socket counted in Redis (lab.shared_sockets)
        self._dirty = False
        self._reasons: set[str] = set()
        self._push_lock = asyncio.Lock()
        self._retry: asyncio.TimerHandle | None = None  # a push the database failed, to try again (_database_failed)
        self._tokens = PUSH_BURST
        self._refilled_at = 0.0
        self._awaited_read_version = 0  # a command's version whose projection the next push waits for
        self._later_owed = False  # a push left its LATER_PARTS to the next one (_push)
        self._projected_version = 0  # the highest read version a "projected" hint has named (this sandbox)
        self._projection_arrived = asyncio.Event()
        self._hinted_at = 0.0  # (loop time) when the latest hint arrived: its push needs a read begun after it
        self._sent: dict[str, tuple[str, float]] = {}  # part -> (its html without stamps, when) as last sent
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.browser = browser_key(self.scope.get("cookies", {}).get(settings.CSRF_COOKIE_NAME))
        # On the push threads, not asgiref's one shared thread: a burst of connects must not queue behind views.
        self.sandbox_id = await _in_thread(current_sandbox_id)(self.session_key)
        if self.sandbox_id is None and not self.browser:
            await self.close(code=CLOSE_NO_SANDBOX)
            return
        # A page shown before its visitor had a sandbox waits in its browser's group for the first one (lab.sockets).
        self.group = group_name(self.sandbox_id) if self.sandbox_id is not None else sockets.browser_group(self.browser)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        client = self.scope.get("client") or [None]
        # Counted across the web processes when the layer is Redis (lab.shared_sockets), else in this process.
        for eviction in await shared_sockets.count_open(
            self.channel_layer, self.channel_name, session=self.session_key or self.browser,
            address=address_group(client[0]),
        ):  # fmt: skip
            await sockets.send_eviction(self.channel_layer, eviction)
        self._heartbeat = shared_sockets.start_heartbeat(self.channel_layer, self.channel_name)
        if self.sandbox_id is not None:
            # A (re)connecting page may have missed anything: send the whole current state at once.
            await self._push(in_one_frame=True)

    async def disconnect(self, code: int) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await shared_sockets.forget(self.channel_layer, self.channel_name)
        if self._push_task is not None:
            self._push_task.cancel()
        if self._retry is not None:
            self._retry.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def lab_created(self, event: dict[str, Any]) -> None:
        """The visitor's first sandbox exists now (lab.sockets.announce): follow the session to it, as after a reset
        in another tab. A page opened without a session cannot see that session: it reconnects."""
        if self.sandbox_id is not None:
            return
        if not self.session_key:
            await self.close(code=CLOSE_RECONNECT)
            return
        await self.lab_changed({"reason": "created"})

    async def lab_evicted(self, event: dict[str, Any]) -> None:
        """Too many lab pages open (lab.sockets): this, the oldest, says why on its page and closes."""
        eviction = sockets.Eviction(self.channel_name, int(event.get("limit") or 0), str(event.get("per") or ""))
        if self._push_task is not None:
            self._push_task.cancel()
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None
        html = render_to_string(sockets.CLOSED_TEMPLATE, {"message": sockets.closed_message(eviction)})
        await self.send(text_data=html)
        await self.close(code=CLOSE_TOO_MANY_PAGES)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Commands travel as POSTs with CSRF; a frame from the client is never expected.
        await self.close(code=CLOSE_CLIENT_FRAME)

    async def lab_changed(self, event: dict[str, Any]) -> None:
        # Only mark the page out of date; one loop per socket turns any number of hints into few pushes.
        reason = str(event.get("reason", ""))
        self._reasons.add(reason)
        self._hinted_at = asyncio.get_running_loop().time()
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
            if not reasons <= DIFFED_REASONS:
                self._sent.clear()  # a control's htmx answer swapped live parts on the page: send them all again
            await self._push(read_side_only=reasons <= READ_SIDE_REASONS, later=self._later_owed)

    async def _push(self, *, read_side_only: bool = False, in_one_frame: bool = False, later: bool = False) -> None:
        async with self._push_lock:
            loop = asyncio.get_running_loop()
            # A (re)connecting page's first push reads a state begun after the socket joined its group.
            not_before = loop.time() if in_one_frame else self._hinted_at
            try:
                sandbox = await shared().get(("session", self.session_key), not_before,
                                             lambda: _in_thread(sandbox_for_session_key)(self.session_key))  # fmt: skip
            except Exception as exc:
                if not await self._database_failed(exc):
                    log.exception("reading the session for a push to sandbox %s failed", self.sandbox_id)
                return
            if sandbox is None:
                await self.close(code=CLOSE_NO_SESSION)
                return
            moved = sandbox.pk != self.sandbox_id
            if moved:
                # The learner reset the sandbox in another tab: follow the session to the new one.
                await self.channel_layer.group_discard(self.group, self.channel_name)
                self.sandbox_id, self.group = sandbox.pk, group_name(sandbox.pk)
                self._projected_version = 0  # a new stream counts from v0 again
                self._sent.clear()
                await self.channel_layer.group_add(self.group, self.channel_name)
            try:
                render = await shared().get(("panel", sandbox.pk), not_before, lambda: _in_thread(read_panel)(sandbox))
                for names in frames(moved=moved, read_side_only=read_side_only, in_one_frame=in_one_frame,
                                    later=later):  # fmt: skip
                    if names is LATER_PARTS:
                        # A hint came meanwhile (at lag 0, the projection a command's push gave up waiting for):
                        # its push goes first, and these (the log, most of the bytes) after it, once.
                        if self._dirty and not self._later_owed:
                            self._later_owed = True
                            break
                        self._later_owed = False
                    html = self._unsent(await render.html(names), loop.time())
                    if moved:
                        html += "\n" + per_socket_html(render.panel)
                    if html:
                        await self.send(text_data=html)
            except Exception as exc:
                if not await self._database_failed(exc):
                    log.exception("rendering a push for sandbox %s failed", sandbox.pk)
                return
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
                await self.send(text_data=LIVE_AGAIN)  # the retried push went out: the database is back

    async def _database_failed(self, exc: BaseException) -> bool:
        """A push the database could not serve (locked, read-only, full, unreachable): keep the socket, tell the page
        it shows the last known state, log one line per kind (reqflow.dbfailure) and push again shortly. False for
        any other error."""
        failure = classify(exc)
        if failure is None:
            return False
        quiet_log.report(failure, exc, "a lab push")
        await self.send(text_data=retrying_status(failure))
        if self._retry is not None:
            self._retry.cancel()
        delay = min(failure.retry_after_s, SOCKET_RETRY_MAX_S)
        self._retry = asyncio.get_running_loop().call_later(delay, self._push_again)
        return True

    def _push_again(self) -> None:
        # As a hint would (lab_changed): "retry" is not a diffed reason, so the push sends every part again.
        self._reasons.add("retry")
        self._hinted_at = asyncio.get_running_loop().time()
        self._dirty = True
        if self._push_task is None or self._push_task.done():
            self._push_task = asyncio.ensure_future(self._push_while_dirty())

    def _unsent(self, parts: list[tuple[str, str, str]], now: float) -> str:
        """The parts this page lacks: each one not sent as it is now by this socket (within RESEND_AFTER_S). A
        socket's first push, and each after a control's hint, finds nothing remembered and sends them all."""
        chunks = []
        for name, html, bare in parts:
            last = self._sent.get(name)
            if SHARED_PUSHES and last is not None and last[0] == bare and now - last[1] < RESEND_AFTER_S:
                continue
            self._sent[name] = (bare, now)
            chunks.append(html)
        return "\n".join(chunks)
