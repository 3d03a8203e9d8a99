"""The fault proxy itself (tests/reliability/faultproxy.py), against a real echo server on a real port: it forwards
both ways, a cut is a reset the client sees, a pause holds the bytes and a resume delivers them intact, a refused
proxy refuses connects and listens again on its port, and a one-shot trigger loses the reply or the request."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.reliability.faultproxy import FaultProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            try:
                data = self.request.recv(4096)
            except OSError:
                return
            if not data:
                return
            self.server.received.append(data)  # type: ignore[attr-defined]
            try:
                self.request.sendall(data)
            except OSError:
                return


@pytest.fixture
def echo() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo) -> Iterator[FaultProxy]:
    with FaultProxy(echo.server_address[1]) as running:
        yield running


def dial(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_it_forwards_both_ways(proxy):
    with dial(proxy) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        assert roundtrip(sock, b"x" * 200_000) == b"x" * 200_000
    assert proxy.connections_total == 1


def test_a_cut_resets_every_open_connection(proxy):
    first, second = dial(proxy), dial(proxy)
    assert roundtrip(first, b"a") == b"a" and roundtrip(second, b"b") == b"b"
    assert proxy.cut() == 2
    for sock in (first, second):
        with pytest.raises(ConnectionResetError):
            sock.sendall(b"after")
            sock.recv(10)
        sock.close()
    with dial(proxy) as fresh:  # new connections still go through
        assert roundtrip(fresh, b"c") == b"c"


def test_a_pause_holds_bytes_and_a_resume_delivers_them_intact(proxy, echo):
    with dial(proxy) as sock:
        assert roundtrip(sock, b"before") == b"before"
        proxy.pause()
        sock.sendall(b"held")
        sock.settimeout(0.7)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert b"held" not in b"".join(echo.received)  # not even the server got it
        proxy.resume()
        sock.settimeout(5)
        assert sock.recv(10) == b"held"


def test_a_refused_proxy_refuses_connects_and_listens_again_on_its_port(proxy):
    port = proxy.port
    open_one = dial(proxy)
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises(ConnectionResetError):
        open_one.sendall(b"x")
        open_one.recv(10)
    open_one.close()
    proxy.restore()
    assert proxy.port == port
    with dial(proxy) as sock:
        assert roundtrip(sock, b"back") == b"back"


def test_a_delivered_trigger_reaches_the_server_and_loses_the_reply(proxy, echo):
    fired = proxy.cut_on(b"COMMIT", deliver=True)
    with dial(proxy) as sock:
        assert roundtrip(sock, b"BEGIN") == b"BEGIN"
        sock.sendall(b"COMMIT")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    assert fired.wait(5)
    until(lambda: b"COMMIT" in b"".join(echo.received))


def test_an_undelivered_trigger_never_reaches_the_server(proxy, echo):
    fired = proxy.cut_on(b"INSERT")
    with dial(proxy) as sock:
        sock.sendall(b"INSERT 1")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    assert fired.is_set()
    time.sleep(DELIVERY_CHECK_S := 0.3)
    assert b"INSERT" not in b"".join(echo.received), f"delivered within {DELIVERY_CHECK_S} s"
    with dial(proxy) as sock:  # one shot: the next one passes
        assert roundtrip(sock, b"INSERT 2") == b"INSERT 2"
