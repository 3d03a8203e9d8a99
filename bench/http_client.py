"""A small HTTP/1.1 load client on asyncio sockets: N keep-alive connections, each sending its next request as soon
as the previous answer arrived (a closed loop, as wrk does). No wrk, ab or hey on this machine, and no async HTTP
library in the venv; the client needs only what daphne sends (Content-Length or chunked bodies).

`load(...)` returns completed requests per second; `latencies(...)` one connection's per-request times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def encode(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.body or self.method == "POST":
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])


class Connection:
    """One keep-alive connection; it reconnects by itself when the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, request: Request) -> Response:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request.encode(f"{self.host}:{self.port}"))
        await self.writer.drain()
        response = await _read_response(self.reader)
        if any(v.lower() == "close" for v in response.header("connection")):
            await self.close()
        return response

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers: dict[str, list[str]] = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"][0]))
    elif any("chunked" in v.lower() for v in headers.get("transfer-encoding", [])):
        chunks = []
        while size := int((await reader.readline()).split(b";")[0].strip(), 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        await reader.readline()  # the blank line after the last chunk (no trailers from daphne)
        body = b"".join(chunks)
    else:
        body = await reader.read()  # until the server closes
    return Response(status, headers, body)


async def load(
    host: str, port: int, make: Callable[[int], Request], *, connections: int, seconds: float, expect: int = 200
) -> float:
    """Requests answered with `expect` per second over `seconds`, `connections` at once; `make(i)` builds connection
    i's next request. Any other status stops the run: a rate of errors is not a rate of pages."""
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def loop(i: int) -> None:
        connection = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                response = await connection.request(make(i))
                if response.status != expect:
                    raise RuntimeError(f"{make(i).path}: {response.status} {response.body[:300]!r}")
                counts[i] += 1
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - started)


async def latencies(host: str, port: int, request: Request, *, count: int) -> list[float]:
    """One connection, `count` requests one after the other: each one's time in ms."""
    connection, times = Connection(host, port), []
    try:
        for _ in range(count):
            started = time.perf_counter()
            response = await connection.request(request)
            if response.status != 200:
                raise RuntimeError(f"{request.path}: {response.status}")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await connection.close()
    return times
