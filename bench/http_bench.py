"""HTTP speed as same-run ratios: the concept page for a returning learner and posted commands, each against a bare
Django site (bench/bare/) on its own daphne, measured in one sitting, alternating.

  page_views_per_s   GET /concepts/cqrs-event-sourcing/, 32 keep-alive connections, each a returning learner (a
                     session cookie and a sandbox with events of its own)
  page_bare_per_s    the bare site's one-template page, the same way
  page_vs_bare       the median over the rounds of page_views_per_s ÷ page_bare_per_s (each pair measured back to back)
  http_commands_per_s, http_bare_per_s, http_vs_bare
                     POST /lab/command/ (a deposit, CSRF token, htmx, X-Lab-Live as lab.js sends with its socket open),
                     32 learners at once, each in its own sandbox; against the bare site's one-field POST
  page_ms_p50, page_bare_ms_p50
                     one connection, one page after another: each request's time (context)

Our site runs as `make run` does: daphne, file SQLite (WAL, synchronous=FULL), the embedded projector, DEBUG off.
The client (bench/http_client.py) is a closed loop on asyncio sockets in this process, so it shares the 2 cores with
both servers alike. `measure(tmpdir)` returns the figures; standalone, `.venv/bin/python bench/http_bench.py`.
Knobs: BENCH_HTTP_SECONDS (each window, default 4), BENCH_HTTP_ROUNDS (else BENCH_RUNS, else 3), BENCH_HTTP_CONNECTIONS
(32).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from http_client import Request, Response, latencies, load  # noqa: E402

OUR_PORT, BARE_PORT = 9320, 9321
HOST = "127.0.0.1"
CONCEPT = "/concepts/cqrs-event-sourcing/"
SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", 4))
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS") or os.environ.get("BENCH_RUNS") or 3)
CONNECTIONS = int(os.environ.get("BENCH_HTTP_CONNECTIONS", 32))
EVENTS_PER_LEARNER = 10  # a returning learner's sandbox has a log, a read model and history to show
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _free_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind((HOST, preferred))
            return preferred
        except OSError:
            s.bind((HOST, 0))
            return int(s.getsockname()[1])


@contextmanager
def _daphne(app: str, port: int, env: dict[str, str], cwd: pathlib.Path) -> Iterator[None]:
    daphne = pathlib.Path(sys.executable).with_name("daphne")
    server = subprocess.Popen([str(daphne), "-b", HOST, "-p", str(port), app], cwd=cwd, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne {app} did not start:\n{server.stderr.read()[-3000:]}") from None
                time.sleep(0.2)
        yield
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        server.stderr.close()


class Visitor:
    """A browser's cookies and CSRF token, over one connection of bench/http_client.py."""

    def __init__(self, port: int) -> None:
        from http_client import Connection

        self.connection = Connection(HOST, port)
        self.cookies: dict[str, str] = {}

    async def send(self, request: Request) -> Response:
        response = await self.connection.request(request)
        for line in response.header("set-cookie"):
            name, _, rest = line.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response

    def headers(self, **extra: str) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        token = self.cookies.get("csrftoken", "")
        return {"Cookie": cookie, "X-CSRFToken": token, **extra}


def _deposit(visitor: Visitor) -> Request:
    body = urllib.parse.urlencode({"kind": "deposit", "amount": "1"}).encode()
    return Request("POST", "/lab/command/", visitor.headers(**FORM, **{"HX-Request": "true", "X-Lab-Live": "1"}), body)


async def _learners(port: int) -> list[Visitor]:
    """CONNECTIONS returning learners: each opened the page, then sent commands (its first creates its sandbox)."""
    learners = []
    for _ in range(CONNECTIONS):
        visitor = Visitor(port)
        assert (await visitor.send(Request("GET", CONCEPT))).status == 200
        for _ in range(EVENTS_PER_LEARNER):
            answer = await visitor.send(_deposit(visitor))
            assert answer.status == 200, (answer.status, answer.body[:300])
        assert "sessionid" in visitor.cookies, "a command must leave a session"
        await visitor.connection.close()
        learners.append(visitor)
    return learners


async def _bare_visitor(port: int) -> Visitor:
    visitor = Visitor(port)
    assert (await visitor.send(Request("GET", "/"))).status == 200
    await visitor.connection.close()
    return visitor


async def _rates(our_port: int, bare_port: int) -> dict[str, float]:
    learners, bare = await _learners(our_port), await _bare_visitor(bare_port)
    our_page = [Request("GET", CONCEPT, {"Cookie": v.headers()["Cookie"]}) for v in learners]
    bare_page = Request("GET", "/", {"Cookie": bare.headers()["Cookie"]})
    bare_post = Request("POST", "/command/", bare.headers(**FORM), b"amount=1")
    windows = {
        "page_views_per_s": (our_port, lambda i: our_page[i]),
        "page_bare_per_s": (bare_port, lambda i: bare_page),
        "http_commands_per_s": (our_port, lambda i: _deposit(learners[i])),
        "http_bare_per_s": (bare_port, lambda i: bare_post),
    }
    for port, make in windows.values():  # warm up: templates compiled, connections and threads started
        await load(HOST, port, make, connections=CONNECTIONS, seconds=min(1.0, SECONDS))
    await asyncio.sleep(3)  # past the default 2 s lag: the projector has applied every learner's commands
    page_one = await latencies(HOST, our_port, our_page[0], count=40)
    bare_one = await latencies(HOST, bare_port, bare_page, count=40)
    # Pages first, then commands (whose events keep the projector busy for a while), each pair back to back.
    rates: dict[str, list[float]] = {key: [] for key in windows}
    for pair in (("page_views_per_s", "page_bare_per_s"), ("http_commands_per_s", "http_bare_per_s")):
        for _ in range(ROUNDS):
            for key in pair:
                port, make = windows[key]
                rates[key].append(await load(HOST, port, make, connections=CONNECTIONS, seconds=SECONDS))

    def ratio(ours: str, theirs: str) -> float:
        return statistics.median(a / b for a, b in zip(rates[ours], rates[theirs], strict=True))

    return {
        **{key: round(statistics.median(values), 1) for key, values in rates.items()},
        "page_vs_bare": round(ratio("page_views_per_s", "page_bare_per_s"), 3),
        "http_vs_bare": round(ratio("http_commands_per_s", "http_bare_per_s"), 3),
        "page_ms_p50": round(statistics.median(page_one), 2),
        "page_bare_ms_p50": round(statistics.median(bare_one), 2),
    }


def measure(tmpdir: pathlib.Path | None = None) -> dict[str, float]:
    """Both servers up, the figures measured, both servers stopped. `tmpdir` holds our site's SQLite file."""
    if tmpdir is None:
        with tempfile.TemporaryDirectory(prefix="reqflow-http-bench-") as tmp:
            return measure(pathlib.Path(tmp))
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    # REQFLOW_TESTING: plain static storage, since a throwaway server has no collectstatic manifest.
    ours = {**env, "SQLITE_PATH": str(pathlib.Path(tmpdir) / "http_bench.sqlite3"),
            "DJANGO_SETTINGS_MODULE": "reqflow.settings", "EMBEDDED_PROJECTOR": "1", "DEBUG": "0",
            "LOG_LEVEL": "WARNING", "REQFLOW_TESTING": "1"}  # fmt: skip
    bare = {**env, "PYTHONPATH": str(HERE), "DJANGO_SETTINGS_MODULE": "bare.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=ours, check=True)
    our_port, bare_port = _free_port(OUR_PORT), _free_port(BARE_PORT)
    with _daphne("reqflow.asgi:application", our_port, ours, ROOT):
        with _daphne("bare.asgi:application", bare_port, bare, HERE):
            return asyncio.run(_rates(our_port, bare_port))


run = measure  # bench/run.py calls each module's run(tmpdir)


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
