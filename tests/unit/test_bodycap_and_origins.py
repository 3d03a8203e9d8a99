"""The body cap as ASGI middleware (for servers that stream bodies) and the socket origin rule, in-process."""

from __future__ import annotations

import pytest

from reqflow.bodycap import BodyCap
from reqflow.origins import same_origin

CAP = 64 * 1024


async def run(headers: list[tuple[bytes, bytes]], pieces: list[bytes]) -> tuple[list[dict], int, list[bytes]]:
    """Drive BodyCap around an app that reads the whole body: (what was sent back, pieces read, body the app got)."""
    queue = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]
    read = 0
    got: list[bytes] = []
    sent: list[dict] = []

    async def receive():
        nonlocal read
        read += 1
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        while True:
            message = await receive()
            got.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})

    await BodyCap(app)({"type": "http", "headers": headers}, receive, send)
    return sent, read, got


async def test_a_declared_length_over_the_cap_is_refused_without_reading_the_body():
    sent, read, got = await run([(b"content-length", str(CAP + 1).encode())], [b"a" * (CAP + 1)])
    assert sent[0]["status"] == 413 and read == 0 and got == []


async def test_a_streamed_body_is_refused_one_piece_past_the_cap_and_the_app_never_runs():
    sent, read, got = await run([], [b"a" * 16384] * 100)
    assert sent[0]["status"] == 413
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]
    assert read == CAP // 16384 + 1 and got == []


async def test_a_body_within_the_cap_reaches_the_app_whole():
    sent, _, got = await run([], [b"a" * 1000, b"b" * 1000])
    assert sent[0]["status"] == 200 and b"".join(got) == b"a" * 1000 + b"b" * 1000


def scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> dict:
    headers = [(b"host", host.encode())] + ([(b"origin", origin.encode())] if origin is not None else [])
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "host", "ok"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://localhost", "localhost:80", True),
        ("http://localhost:9999", "localhost:8000", False),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", False),
        ("http://evil.example:8000", "evil.example:8000", False),  # not in ALLOWED_HOSTS
        ("null", "127.0.0.1:8000", False),
        (None, "127.0.0.1:8000", False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", False),
    ],
)
def test_the_origin_must_be_this_site_scheme_host_and_port(origin, host, ok):
    assert same_origin(scope(origin, host)) is ok


def test_a_trusted_origin_is_accepted_from_behind_a_proxy(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://reqflow.example"]
    assert same_origin(scope("https://reqflow.example", "127.0.0.1:8000"))


def test_twisted_leaves_a_form_body_to_django():
    """daphne hands Django the body as it came; Twisted's own parse of a form body into request.args (its
    Content-Type through the email package, then every field) was work nobody read, on the web process's busy
    thread."""
    from types import SimpleNamespace

    from twisted.web.test.requesthelper import DummyChannel

    from reqflow.bodycap import CappedWebRequest

    channel = DummyChannel()
    channel.factory = SimpleNamespace(server=SimpleNamespace(protocol_connected=lambda request: None))
    request = CappedWebRequest(channel)
    request.process = lambda: None  # daphne's hand-over to the application: not what this test is about
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/x-www-form-urlencoded; charset=utf-8"])
    body = b"kind=deposit&amount=5"
    request.gotLength(len(body))
    request.handleContentChunk(body)
    request.requestReceived(b"POST", b"/lab/command/?next=1", b"HTTP/1.1")
    assert request.args == {b"next": [b"1"]}  # the query string only: the form's fields were not parsed
    request.content.seek(0)
    assert request.content.read() == body  # and the body is whole for daphne to pass on
