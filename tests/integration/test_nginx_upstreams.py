"""deploy/nginx.conf.template's upstream, for real: nginx (as `make cluster` renders it) in front of two web
processes. A failed answer from each must not leave "no live upstreams" (issue 12: with max_fails=1, one error per
daphne turned into 5 s of 502s for everyone), and a POST is never sent to a second process.

The two web processes are small HTTP servers of the test's own, so each failure is exactly the one wanted: a
connection closed before any answer (what nginx counts as a failed attempt), a 500, a slow answer.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deploy import cluster

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
pytestmark = [pytest.mark.skipif(NGINX is None, reason="no nginx")]


class Backend(BaseHTTPRequestHandler):
    posts: list[str]  # set per server: what each one received

    def do_GET(self) -> None:
        if self.path == "/drop":  # no answer at all: nginx logs "upstream prematurely closed connection"
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = 500 if self.path == "/fail" else 200
        body = f"{status} from {self.server.server_port}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.server.posts.append(self.path)  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)  # sent, then the process fails before answering

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_port() -> int:
    for port in range(9960, 10000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 9960-9999")


@pytest.fixture
def site(tmp_path):
    backends = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        server.posts = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        backends.append(server)
    port = free_port()
    (tmp_path / "tmp").mkdir()
    static = tmp_path / "static"
    static.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(cluster.nginx_config(tmp_path, port, [b.server_port for b in backends], static))
    nginx = subprocess.Popen(
        [cluster.nginx_binary(), "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log"),
         "-g", "daemon off;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while cluster.http_status(port, "/ok", timeout=1) != 200:
            assert nginx.poll() is None, (tmp_path / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not answer"
            time.sleep(0.05)
        yield port, backends, tmp_path / "error.log"
    finally:
        nginx.terminate()
        nginx.wait(10)
        for server in backends:
            server.shutdown()
            server.server_close()


def request(port: int, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=b"amount=1" if method == "POST" else None)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_failed_answer_from_each_web_process_does_not_turn_the_next_requests_into_502s(site):
    port, _, error_log = site
    # One dropped connection from each process (a GET goes on to the second process, which drops it too) ...
    assert request(port, "GET", "/drop") == 502
    assert request(port, "GET", "/fail") == 500  # ... and a 500: the application's answer, passed through
    # ... and the very next requests are answered, by both processes.
    assert [request(port, "GET", "/ok") for _ in range(10)] == [200] * 10
    assert "no live upstreams" not in error_log.read_text()


def test_a_post_the_web_process_received_is_never_sent_to_the_other(site):
    port, backends, _ = site
    assert request(port, "POST", "/lab/command/") == 502
    assert sum(len(b.posts) for b in backends) == 1  # received once, though that process never answered
