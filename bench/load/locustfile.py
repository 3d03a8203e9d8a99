"""The learner Locust simulates: it opens the lab page, keeps the lab's WebSocket open and sends deposits and
withdrawals as lab.js does, and times each command twice: its HTTP answer, and until the read model its own socket
was pushed shows the command's version.

Commands are paced for the whole swarm, not per learner (`Pacer`): the issue names a command rate (50/s), not a
think time, and a learner whose command is still in flight simply leaves the next token to another one. Each
learner connects from its own loopback address (127.x.y.z, `SOURCES_PER_ADDRESS` learners on each), because the
site caps sandboxes and sockets per client address and real learners do not share one.

Plain http.client and websocket-client, not Locust's HttpUser: one keep-alive connection and one socket per learner,
the least client CPU per command on a machine the server shares. Outcomes go to Locust's statistics (its report
and charts) and, raw, to `RECORD` for the exact percentiles and the exactness check afterwards.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import gevent
import websocket
from gevent.event import Event
from gevent.queue import Empty, Full, Queue
from locust import User, constant, task

SOURCES_PER_ADDRESS = 20  # under the site's per-address caps (100 sockets, 200 sandboxes: reqflow/settings.py)
VISIBLE_TIMEOUT_S = 10.0  # a command whose read model never shows up within this counts as an error
HTTP_TIMEOUT_S = 30.0

READ_VERSION = re.compile(r'id="lab-versions"[^>]*data-read-version="(\d+)"')
WRITE_VERSION = re.compile(r'id="lab-versions"[^>]*data-write-version="(\d+)"')
# What a keep-alive connection the server has closed meanwhile looks like to the next request on it.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
APPENDED = re.compile(r"#(\d+) (?:Deposited|Withdrew)")
EXPECTED = re.compile(r'id="lab-expected-version" name="expected_version" value="(\d*)"')


@dataclass
class Record:
    """Everything measured in one run, per step of the command rate."""

    step: int = 0
    http_ms: dict[int, list[float]] = field(default_factory=dict)
    visible_ms: dict[int, list[float]] = field(default_factory=dict)
    sent: dict[int, int] = field(default_factory=dict)
    errors: dict[int, dict[str, int]] = field(default_factory=dict)
    accepted: list[dict[str, Any]] = field(default_factory=list)  # command id, answered version, step
    rejected: list[str] = field(default_factory=list)  # refused by a rule (an overdraft): no event may exist
    ready: int = 0  # learners with the page, their sandbox and their socket
    in_flight: int = 0  # commands sent and not yet answered and shown (or failed)
    keepalive_retries: int = 0  # requests sent again on a new connection (Browser.request)
    setup_errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str, step: int | None = None) -> None:
        bucket = self.errors.setdefault(self.step if step is None else step, {})
        bucket[kind] = bucket.get(kind, 0) + 1


RECORD = Record()
_next_source = 0


def next_source() -> str:
    """The loopback address of the next learner: 127.1.0.1, 127.1.0.2, ... (SOURCES_PER_ADDRESS learners each)."""
    global _next_source
    n = _next_source // SOURCES_PER_ADDRESS
    _next_source += 1
    return f"127.1.{n // 250}.{n % 250 + 1}"


class Pacer:
    """Tokens at a set rate for the whole swarm. A token no learner is free to take within a tenth of a second is
    dropped and counted (`missed`): the rate actually sent is reported, never assumed."""

    def __init__(self) -> None:
        self.tokens: Queue[int] = Queue(maxsize=1)
        self.rate = 0.0
        self.missed = 0
        self.open = False  # False: a token still queued (or being handed over) starts nothing
        self._greenlet: gevent.Greenlet | None = None

    def start(self, rate: float) -> None:
        self.stop()
        self.rate = rate
        self.tokens = Queue(maxsize=max(1, int(rate / 10)))
        self.open = True
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """No command starts after this returns: the end of a step is a clean cut, so every command the server
        received was started (and is waited for) inside its step."""
        self.open = False
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _run(self) -> None:
        interval = 1.0 / self.rate
        due = time.monotonic()
        while True:
            due += interval
            gevent.sleep(max(0.0, due - time.monotonic()))
            try:
                self.tokens.put_nowait(1)
            except Full:
                self.missed += 1

    def take(self, timeout: float) -> bool:
        try:
            self.tokens.get(timeout=timeout)
        except Empty:
            return False
        return self.open


PACER = Pacer()


class Browser:
    """One learner's keep-alive HTTP connection from its own loopback address, with its cookies."""

    def __init__(self, host: str, port: int, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self.cookies: dict[str, str] = {}
        self.conn = self._connect()
        self.reused = False  # this connection has answered a request before (keep-alive)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT_S, source_address=(self.source, 0))

    def request(self, method: str, path: str, fields: dict[str, str] | None = None, **headers: str) -> tuple[int, str]:
        head = {"Cookie": self.cookie_header(), **headers}
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            head["Content-Type"] = "application/x-www-form-urlencoded"
        reused = self.reused
        try:
            response = self._send(method, path, body, head)
        except STALE:
            if not reused:
                raise
            # The server closed this idle keep-alive connection before our request reached it: a browser sends it
            # again on a new connection, and so do we, once (a command carries its id: a repeat is never applied
            # twice). Counted, never hidden.
            RECORD.keepalive_retries += 1
            self.reconnect()
            response = self._send(method, path, body, head)
        text = response.read().decode()
        self.reused = True
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, text

    def _send(self, method: str, path: str, body: str | None, head: dict[str, str]) -> http.client.HTTPResponse:
        try:
            self.conn.request(method, path, body=body, headers=head)
            return self.conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.reconnect()  # the next request starts clean; this one failed (and is counted by the caller)
            raise

    def reconnect(self) -> None:
        self.conn.close()
        self.conn = self._connect()
        self.reused = False

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def htmx(self, path: str, target: str, fields: dict[str, str], live: bool = False) -> tuple[int, str]:
        token = self.cookies.get("csrftoken", "")
        base = f"http://{self.host}:{self.port}"
        headers = {"X-CSRFToken": token, "HX-Request": "true", "HX-Target": target, "Referer": base + "/lab/"}
        if live:
            headers["X-Lab-Live"] = "1"  # as lab.js sends while the page's socket is open
        return self.request("POST", path, {**fields, "csrfmiddlewaretoken": token}, **headers)


class Learner(User):
    """A learner on the lab page: a sandbox at lag 0, its socket held open, commands when the pacer says."""

    wait_time = constant(0)
    host = "http://127.0.0.1:8000"

    def on_start(self) -> None:
        self.ws: websocket.WebSocket | None = None
        self.write_version = 0
        self.read_version = 0
        self.seen: list[tuple[int, float]] = []  # (read version, when it first showed on the socket), rising
        self.advanced = Event()  # set by the socket's reader whenever the read version rises
        self.stopping = False
        self.broken = False
        self.stage = "start"
        try:
            self._open_lab()
        except Exception as exc:
            self.broken = True
            kind = f"setup ({self.stage}): {type(exc).__name__}: {str(exc)[:80]}"
            RECORD.setup_errors[kind] = RECORD.setup_errors.get(kind, 0) + 1
            self._fire("SETUP", "open the lab", 0.0, exc)
            return
        RECORD.ready += 1

    def _open_lab(self) -> None:
        parts = urllib.parse.urlsplit(self.host)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.browser = Browser(host, port, next_source())
        self.stage = "GET /lab/"
        self._timed("GET", "/lab/", lambda: self.browser.request("GET", "/lab/"))
        # The learner's first POST creates its sandbox; lag 0 makes "visible" the projector's own delay.
        self.stage = "POST /lab/lag/"
        self._timed("POST", "/lab/lag/", lambda: self.browser.htmx("/lab/lag/", "lab-projector-result", {"lag": "0"}))
        self.stage = "WS /ws/lab/"
        sock = socket.create_connection((host, port), timeout=HTTP_TIMEOUT_S, source_address=(self.browser.source, 0))
        began = time.perf_counter()
        self.ws = websocket.create_connection(
            f"ws://{host}:{port}/ws/lab/",
            socket=sock,
            origin=f"http://{host}:{port}",
            cookie=self.browser.cookie_header(),
            timeout=HTTP_TIMEOUT_S,
        )
        first = self.ws.recv()  # the whole panel, sent on connect
        self._fire("WS", "connect + first push", (time.perf_counter() - began) * 1000, None)
        self._note_push(str(first))
        self.write_version = int(m.group(1)) if (m := WRITE_VERSION.search(str(first))) else 0
        self.ws.settimeout(None)
        gevent.spawn(self._listen)

    def _timed(self, method: str, name: str, call: Any) -> tuple[int, str]:
        began = time.perf_counter()
        status, text = call()
        ms = (time.perf_counter() - began) * 1000
        exc = None if 200 <= status < 300 else RuntimeError(f"HTTP {status}")
        self._fire(method, name, ms, exc)
        if exc is not None:
            raise exc
        return status, text

    def _fire(self, kind: str, name: str, ms: float, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=ms, response_length=0, exception=exc, context={}
        )

    def _listen(self) -> None:
        assert self.ws is not None
        try:
            while True:
                self._note_push(str(self.ws.recv()))
        except Exception as exc:
            if not self.stopping:
                RECORD.error(f"socket closed: {type(exc).__name__}")
                self._fire("WS", "socket closed", 0.0, exc)

    def _note_push(self, html: str) -> None:
        found = READ_VERSION.search(html)
        if found and int(found.group(1)) > self.read_version:
            self.read_version = int(found.group(1))
            self.seen.append((self.read_version, time.perf_counter()))
            del self.seen[:-64]
            self.advanced.set()

    def _visible_at(self, version: int) -> float | None:
        return next((at for v, at in self.seen if v >= version), None)

    @task
    def command(self) -> None:
        if self.broken:
            gevent.sleep(1.0)
            return
        if not PACER.take(timeout=0.5):
            return
        RECORD.in_flight += 1
        try:
            self._command(RECORD.step)
        finally:
            RECORD.in_flight -= 1

    def _command(self, step: int) -> None:
        RECORD.sent[step] = RECORD.sent.get(step, 0) + 1
        kind = "withdraw" if random.random() < 0.25 else "deposit"
        amount = str(random.randint(1, 50) if kind == "withdraw" else random.randint(1, 100))
        command_id = uuid.uuid4().hex
        fields = {"kind": kind, "amount": amount, "command_id": command_id, "expected_version": str(self.write_version)}
        began = time.perf_counter()
        try:
            status, text = self.browser.htmx("/lab/command/", "lab-command-result", fields, live=True)
        except Exception as exc:
            RECORD.error(f"command: {type(exc).__name__}", step)
            self._fire("POST", "/lab/command/", (time.perf_counter() - began) * 1000, exc)
            return
        ms = (time.perf_counter() - began) * 1000
        if status != 200:
            RECORD.error(f"command: HTTP {status}", step)
            self._fire("POST", "/lab/command/", ms, RuntimeError(f"HTTP {status}"))
            return
        self._fire("POST", "/lab/command/", ms, None)
        RECORD.http_ms.setdefault(step, []).append(ms)
        if (expected := EXPECTED.search(text)) and expected.group(1):
            self.write_version = int(expected.group(1))
        appended = APPENDED.search(text)
        if "<strong>Accepted:</strong>" not in text or appended is None:
            RECORD.rejected.append(command_id)  # an overdraft: answered, recorded, nothing appended
            return
        version = int(appended.group(1))
        RECORD.accepted.append({"command_id": command_id, "version": version, "step": step})
        self._await_visible(version, began, step)

    def _await_visible(self, version: int, began: float, step: int) -> None:
        deadline = began + VISIBLE_TIMEOUT_S
        while True:
            self.advanced.clear()
            if (at := self._visible_at(version)) is not None:
                break
            if time.perf_counter() > deadline:
                RECORD.error("read model not visible within 10 s", step)
                self._fire("WS", "visible (command -> read model)", VISIBLE_TIMEOUT_S * 1000, TimeoutError())
                return
            self.advanced.wait(timeout=max(0.0, deadline - time.perf_counter()))
        ms = (at - began) * 1000
        RECORD.visible_ms.setdefault(step, []).append(ms)
        self._fire("WS", "visible (command -> read model)", ms, None)

    def on_stop(self) -> None:
        self.stopping = True
        if getattr(self, "ws", None) is not None:
            try:
                self.ws.close()  # type: ignore[union-attr]
            except Exception:  # closing a socket the server may already have closed: nothing to do
                pass
