"""A TCP proxy the fault tests put in front of PostgreSQL or Redis, so a database or Redis fault is real: the
client's driver meets a reset connection, a silent peer or a refused connect, exactly as it would in production.

    with FaultProxy(5432) as proxy:          # listens on 127.0.0.1:proxy.port, forwards to 127.0.0.1:5432
        proxy.cut()                          # reset (RST) every open connection, both sides
        proxy.pause(); proxy.resume()        # stop forwarding bytes (a hung peer), then go on where it stopped
        proxy.refuse(); proxy.restore()      # nobody listens (connect is refused), then listen again
        proxy.cut_on(b"COMMIT", deliver=True)  # one shot: the server gets the COMMIT, the client never the reply

It runs its own asyncio loop on a thread; every method is called from the test's thread and returns once done.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
CHUNK = 64 * 1024
# After a delivered trigger, the server side stays open this long, so the server reads and acts on what it got
# (a COMMIT commits) before it sees the client go.
DELIVER_GRACE_S = 0.5


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, not a polite FIN: SO_LINGER 0, then drop the transport."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


@dataclass
class Trigger:
    pattern: bytes
    deliver: bool
    fired: threading.Event


@dataclass(eq=False)  # compared and hashed by identity: each connection is one
class Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections_total = 0
        self._links: set[Link] = set()
        self._connecting: set[asyncio.StreamWriter] = set()  # accepted, still connecting to the target
        self._refusing = False
        self._trigger: Trigger | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        self._flowing = self._call(self._make_event())
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._call(self._listen())

    # --- The test's side ------------------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def cut(self) -> int:
        """Reset every open connection on both sides; returns how many there were."""
        return self._call(self._cut_all())

    def pause(self) -> None:
        """Forward nothing more, either way, and hold what arrives: to both ends the peer has hung."""
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def refuse(self) -> None:
        """Stop listening and reset every open connection: the service is down, a connect is refused."""
        self._refusing = True  # a connection the loop accepted but has not handled yet is reset too
        self._call(self._stop_listening())
        self.cut()

    def restore(self) -> None:
        """Listen again on the same port, forwarding (the service is back)."""
        self._refusing = False
        self.resume()
        if self._listener is None:
            self._call(self._listen())

    def cut_on(self, pattern: bytes, *, deliver: bool = False) -> threading.Event:
        """One shot: when bytes from a client contain `pattern`, reset that connection. With `deliver`, the server
        gets those bytes first and the client loses the reply; without, they never reach the server. The event
        returned is set when it fired."""
        trigger = Trigger(pattern, deliver, threading.Event())
        self._trigger = trigger
        return trigger.fired

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._refusing = True
        self._call(self._stop_listening())
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- The loop's side ------------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _make_event(self) -> asyncio.Event:
        event = asyncio.Event()
        event.set()
        return event

    # The listener is a plain socket with a reader callback, not asyncio.start_server: a connection that
    # asyncio.Server had accepted but not yet handed over when it closed was neither served nor reset (its socket
    # leaked, and the client waited). Here every accept() and the close happen on the loop's thread, in order: what
    # was accepted is handled (or reset, when refusing), what was still queued the kernel resets at close.

    async def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._loop.add_reader(listener.fileno(), self._accept_ready)

    def _accept_ready(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if self._refusing:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            task = self._loop.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        await self._accept(reader, writer)

    async def _stop_listening(self) -> None:
        if self._listener is not None:
            self._accept_ready()  # take what is queued, so it is handled or reset by us
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    async def _cut_all(self) -> int:
        links, connecting = list(self._links), list(self._connecting)
        for link in links:
            self._drop(link)
        for client in connecting:  # a client whose connect returned before its link was made is cut too
            _reset(client)
        self._connecting.clear()
        return len(links) + len(connecting)

    def _drop(self, link: Link) -> None:
        _reset(link.client)
        _reset(link.server)
        self._links.discard(link)

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        if self._refusing:
            _reset(client)
            return
        self._connecting.add(client)
        try:
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            self._connecting.discard(client)
            _reset(client)  # the target is down: the client sees its connection reset, as a proxy would show it
            return
        if client not in self._connecting:  # cut (or refused) while connecting to the target
            _reset(server)
            return
        self._connecting.discard(client)
        link = Link(client, server)
        self._links.add(link)
        await asyncio.gather(
            self._pump(client_reader, server, link, upstream=True),
            self._pump(server_reader, client, link, upstream=False),
            return_exceptions=True,
        )
        self._links.discard(link)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, *, upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                if link not in self._links:
                    return  # cut while this chunk waited
                trigger = self._trigger
                if upstream and trigger is not None and trigger.pattern in data:
                    self._trigger = None
                    await self._fire(trigger, link, data)
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if link in self._links:
                self._drop(link)  # one side ended: end the other, as the peers would see it with no proxy

    async def _fire(self, trigger: Trigger, link: Link, data: bytes) -> None:
        self._links.discard(link)
        _reset(link.client)
        if trigger.deliver:
            link.server.write(data)
            await link.server.drain()
            await asyncio.sleep(DELIVER_GRACE_S)  # the server acts on it; its reply goes nowhere
        _reset(link.server)
        trigger.fired.set()
