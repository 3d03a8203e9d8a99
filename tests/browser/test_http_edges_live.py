"""The edges of HTTP over real TCP against a live daphne: the body cap (answered while the client is still sending,
whatever the content type, with or without a Content-Length), the security headers on every kind of answer, and
the socket origin check with a port. The in-process test client cannot show any of these: it has no daphne."""

from __future__ import annotations

import asyncio
import http.cookiejar
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CAP = 64 * 1024
PIECE = b"a" * 65536


def visit(live_url: str) -> tuple[str, str]:
    """Open the lab like a browser: (csrf token, Cookie header)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{live_url}/lab/", timeout=20) as response:
        assert response.status == 200
    token = next(c.value for c in jar if c.name == "csrftoken")
    return token, "; ".join(f"{c.name}={c.value}" for c in jar)


def send(
    live_url: str, head: dict[str, str], pieces: list[bytes], *, chunked: bool = False, path: str = "/lab/command/"
):
    """POST `pieces` on a raw socket, looking for an answer after each one. Returns (status line, headers, body,
    bytes of body sent before the answer came)."""
    url = urlsplit(live_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        lines = [f"POST {path} HTTP/1.1", f"Host: {url.netloc}", f"Origin: {live_url}"]
        lines += [f"{name}: {value}" for name, value in head.items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent, answer = 0, b""
        for piece in pieces:
            try:
                conn.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            except OSError:  # the server answered and stopped reading
                break
            sent += len(piece)
            conn.setblocking(False)
            try:
                answer = conn.recv(65536)
            except BlockingIOError:
                pass
            conn.setblocking(True)
            if answer:
                break
        else:
            if chunked:
                conn.sendall(b"0\r\n\r\n")
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            more = conn.recv(65536)
            if not more:
                break
            answer += more
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    status, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return status, headers, body, sent


def multipart(token: str, size: int) -> tuple[str, list[bytes]]:
    boundary = "reqflowboundary"
    pre = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrfmiddlewaretoken"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndeposit\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="amount"\r\n\r\n5\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'
    ).encode()
    return f"multipart/form-data; boundary={boundary}", [pre] + [PIECE] * (size // len(PIECE)) + [
        f"\r\n--{boundary}--\r\n".encode()
    ]


def assert_security_headers(headers: dict[str, str]) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_50_mb_multipart_upload_is_refused_with_413_while_it_is_still_being_sent(live_url):
    token, cookie = visit(live_url)
    content_type, pieces = multipart(token, 50_000_000)
    total = sum(map(len, pieces))
    for path in ("/lab/command/", "/notes/concept/cqrs-event-sourcing/"):
        head = {"Cookie": cookie, "Content-Type": content_type, "Content-Length": str(total)}
        status, headers, body, sent = send(live_url, head, pieces, path=path)
        assert status.startswith("HTTP/1.1 413"), status
        assert b"at most 64 KiB" in body
        assert sent < total / 2, f"{sent:,} of {total:,} bytes were sent before the answer"
        assert_security_headers(headers)


def test_a_chunked_body_without_a_length_is_cut_off_just_past_the_cap(live_url):
    token, cookie = visit(live_url)
    content_type, pieces = multipart(token, 20_000_000)
    status, _, body, sent = send(
        live_url, {"Cookie": cookie, "Content-Type": content_type, "Transfer-Encoding": "chunked"}, pieces, chunked=True
    )
    assert status.startswith("HTTP/1.1 413"), status
    assert b"at most 64 KiB" in body
    assert sent < 20_000_000 / 2


def test_a_large_urlencoded_body_is_a_413_before_the_csrf_check_reads_it(live_url):
    _, cookie = visit(live_url)  # no token: the cap answers before CSRF would have read the body for one
    pieces = [b"kind=deposit&amount=5&x="] + [PIECE] * 300
    head = {
        "Cookie": cookie,
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(24 + 300 * 65536),
    }
    status, _, _, sent = send(live_url, head, pieces)
    assert status.startswith("HTTP/1.1 413"), status
    assert sent < 300 * 65536 / 2


def test_a_body_just_under_the_cap_reaches_the_form(live_url):
    token, cookie = visit(live_url)
    body = f"csrfmiddlewaretoken={token}&kind=deposit&amount=5&pad=".encode()
    body += b"a" * (CAP - len(body))
    head = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
    status, _, _, _ = send(live_url, head, [body])
    assert status.startswith("HTTP/1.1 303"), status  # accepted, back to the page


def test_security_headers_on_a_400_a_404_a_413_and_a_static_file(live_url):
    token, cookie = visit(live_url)
    utf16 = f"csrfmiddlewaretoken={token}&kind=deposit&amount=5".encode("utf-16")
    head = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded; charset=utf-16"}
    status, headers, body, _ = send(live_url, {**head, "Content-Length": str(len(utf16))}, [utf16])
    assert status.startswith("HTTP/1.1 400"), status  # it was a 500: the 400 handler read the body again
    assert b"in UTF-8" in body
    assert_security_headers(headers)
    big = {"Cookie": cookie, "Content-Type": "text/plain", "Content-Length": str(CAP + 1)}
    assert_security_headers(send(live_url, big, [b"a" * (CAP + 1)])[1])
    for path, code in (("/no-such-page/", 404), ("/static/css/site.css", 200)):
        try:
            response = urllib.request.urlopen(f"{live_url}{path}", timeout=10)
        except urllib.error.HTTPError as error:
            response = error
        assert response.status == code
        assert_security_headers({k.lower(): v for k, v in response.headers.items()})


async def handshake(live_url: str, cookie: str, origin: str) -> str:
    try:
        async with connect(
            live_url.replace("http://", "ws://") + "/ws/lab/", origin=origin, additional_headers={"Cookie": cookie}
        ):
            return "open"
    except InvalidStatus as refused:
        return str(refused.response.status_code)


def test_a_socket_from_the_same_host_on_another_port_is_refused(live_url):
    _, cookie = visit(live_url)
    port = urlsplit(live_url).port
    origins = [live_url, f"http://localhost:{port + 1}", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}"]
    # On a thread of its own: Playwright's sync API may hold an event loop in the main thread.
    with ThreadPoolExecutor(max_workers=1) as thread:
        answers = [thread.submit(asyncio.run, handshake(live_url, cookie, o)).result(30) for o in origins]
    assert answers == ["open", "403", "403", "403"]
