"""Issue 13's numbers, measured again from outside against a daphne started as `make run` starts it.

    .venv/bin/python -m tests.reliability.probe --port 9601 [--only sandboxes,body,...] [--slow-seconds 25]

Loopback only, every loop bounded. Each probe prints one JSON line: what it did and what it saw. The site runs on a
fresh migrated SQLite file in a temporary folder (on a small tmpfs for the full-disk probe, which needs root).
Not a test: the numbers are for the issue's note; the tests in tests/reliability/ assert the behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from websockets.asyncio.client import connect

from tests.reliability.live import Learner, migrate
from tests.reliability.makerun import MakeRunSite

PAGE = "/concepts/cqrs-event-sourcing/"


def rows(db: Path, table: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as check:
        return int(check.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def cookies(learner: Learner) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in learner.jar)


def report(name: str, **figures: object) -> None:
    print(json.dumps({"probe": name, **figures}), flush=True)


# --- 300 cookie-less GETs -----------------------------------------------------------------------------------------


def probe_sandboxes(site: MakeRunSite, db: Path) -> None:
    before = (rows(db, "concepts_sandbox"), rows(db, "django_session"))
    started = time.monotonic()
    statuses = Counter(Learner(site.base).get(PAGE if n % 2 else "/lab/").status for n in range(300))
    elapsed = time.monotonic() - started
    after = (rows(db, "concepts_sandbox"), rows(db, "django_session"))
    report("300 cookie-less GETs", statuses=dict(statuses), seconds=round(elapsed, 1),
           sandboxes_created=after[0] - before[0], sessions_created=after[1] - before[1])  # fmt: skip


# --- A 50 MB multipart body -------------------------------------------------------------------------------------


def send_big_multipart(port: int, path: str, total: int) -> tuple[str, int, float]:
    """Stream a multipart body of `total` bytes; returns (status line, bytes sent before the answer, seconds)."""
    boundary = "probe" + uuid.uuid4().hex
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/form-data; boundary={boundary}"
            f"\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    sent, started = 0, time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head)
        s.setblocking(False)
        chunk = b"x" * 65536
        answer = b""
        while sent < total and time.monotonic() - started < 60:
            try:
                answer += s.recv(65536)
                if answer:
                    break
            except BlockingIOError:
                pass
            except OSError:
                break
            try:
                sent += s.send(chunk[: total - sent])
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                break
        s.setblocking(True)
        s.settimeout(10)
        try:
            while b"\r\n" not in answer:
                more = s.recv(65536)
                if not more:
                    break
                answer += more
        except OSError:
            pass
    return answer.split(b"\r\n", 1)[0].decode(errors="replace"), sent, time.monotonic() - started


def probe_body(site: MakeRunSite, db: Path) -> None:
    for path in ("/lab/command/", "/notes/concept/cqrs-event-sourcing/", "/lab/import/"):
        rss = site.rss_kib()
        status, sent, seconds = send_big_multipart(site.port, path, 50 * 1024 * 1024)
        before_mib, after_mib = round(rss / 1024), round(site.rss_kib() / 1024)
        report("50 MB multipart body", path=path, status=status, bytes_sent_before_answer=sent,
               seconds=round(seconds, 2), rss_before_mib=before_mib, rss_after_mib=after_mib)  # fmt: skip


# --- Sockets ------------------------------------------------------------------------------------------------------


def ws_url(site: MakeRunSite) -> str:
    return site.base.replace("http://", "ws://") + "/ws/lab/"


async def open_many(site: MakeRunSite, headers_for, count: int) -> tuple[list, list]:
    async def one(n: int):
        return await connect(ws_url(site), additional_headers=headers_for(n), open_timeout=30, max_size=None)

    opened = await asyncio.gather(*(one(n) for n in range(count)), return_exceptions=True)
    return [o for o in opened if not isinstance(o, BaseException)], [o for o in opened if isinstance(o, BaseException)]


async def settle_and_count(sockets: list) -> dict:
    await asyncio.sleep(3)
    codes = Counter(str(ws.close_code) for ws in sockets if ws.close_code is not None)
    figures = {"open_after_3s": sum(ws.close_code is None for ws in sockets), "closed": dict(codes)}
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return figures


def probe_session_sockets(site: MakeRunSite, db: Path) -> None:
    learner = Learner(site.base)
    learner.get(PAGE)
    learner.deposit("5")
    headers = {"Origin": site.base, "Cookie": cookies(learner)}

    async def run() -> dict:
        sockets, failed = await open_many(site, lambda n: headers, 200)
        return {
            "handshakes_completed": len(sockets),
            "handshakes_failed": len(failed),
            **await settle_and_count(sockets),
        }

    report("200 sockets on one session", **asyncio.run(run()))


def probe_simultaneous_sockets(site: MakeRunSite, db: Path) -> None:
    async def run() -> dict:
        warm = {"Origin": site.base, "Cookie": "csrftoken=warm" + uuid.uuid4().hex}
        async with connect(ws_url(site), additional_headers=warm):
            pass
        started = time.monotonic()
        sockets, failed = await open_many(
            site, lambda n: {"Origin": site.base, "Cookie": f"csrftoken=p{n:04d}{uuid.uuid4().hex[:20]}"}, 500
        )
        seconds = time.monotonic() - started
        kinds = dict(Counter(type(f).__name__ for f in failed))
        return {"handshakes_completed": len(sockets), "handshakes_failed": len(failed), "failures": kinds,
                "seconds": round(seconds, 1), **await settle_and_count(sockets)}  # fmt: skip

    report("500 simultaneous socket opens", load_average=os.getloadavg()[0], **asyncio.run(run()))


# --- Slow clients -------------------------------------------------------------------------------------------------


async def slow_client(port: int, every: float, until: float) -> float | None:
    """Send a request's header lines one every `every` s; returns when the server closed it (s), None if open."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /static/css/site.css HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        n = 0
        while time.monotonic() - started < until:
            try:
                await asyncio.wait_for(reader.read(1024), every)  # an answer (408) or EOF: the server gave up
                await asyncio.wait_for(reader.read(), 5)
                return time.monotonic() - started
            except TimeoutError:
                n += 1
                writer.write(f"X-Slow-{n}: 1\r\n".encode())
                await writer.drain()
        return None
    except (ConnectionError, TimeoutError):
        return time.monotonic() - started
    finally:
        writer.close()


def probe_slow_clients(site: MakeRunSite, db: Path, seconds: float) -> None:
    async def run() -> list:
        return await asyncio.gather(*(slow_client(site.port, 5.0, seconds) for _ in range(350)))

    closed_at = asyncio.run(run())
    cut = sorted(t for t in closed_at if t is not None)
    report("350 slow clients, a header line every 5 s", ran_seconds=seconds,
           alive_at_end=sum(t is None for t in closed_at), cut=len(cut),
           cut_after_s={"min": round(cut[0], 1), "max": round(cut[-1], 1)} if cut else None)  # fmt: skip


# --- The rebuild lock-out -----------------------------------------------------------------------------------------


def visitor_with_events(site: MakeRunSite) -> Learner:
    learner = Learner(site.base)
    learner.get(PAGE)
    for _ in range(3):
        learner.deposit("5")
    return learner


def probe_rebuild_lockout(site: MakeRunSite, db: Path) -> None:
    steps = []
    for name in ("A", "B"):
        learner = visitor_with_events(site)
        pause = learner.post("/lab/projector/", {"action": "pause"}, target="lab-projector-result").status
        rebuild = learner.post("/lab/rebuild/", {}, target="lab-rebuild-result").status
        reset = learner.post("/lab/reset/", {}, target="lab-reset-result").status
        steps.append({"visitor": name, "pause": pause, "rebuild": rebuild, "reset": reset})
    third = visitor_with_events(site)
    answer = third.post("/lab/rebuild/", {}, target="lab-rebuild-result")
    report("rebuild lock-out", steps=steps, third_visitor_rebuild=answer.status,
           retry_after=answer.headers.get("Retry-After"))  # fmt: skip


# --- A database locked past its timeout -----------------------------------------------------------------------------


def probe_lock_timeout(site: MakeRunSite, db: Path) -> None:
    learner = visitor_with_events(site)
    events = rows(db, "concepts_storedevent")
    holder = sqlite3.connect(db, timeout=30, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        answers = [learner.deposit("1") for _ in range(3)]
        seconds = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    log = site.log()
    report("database locked past its timeout", statuses=[a.status for a in answers],
           retry_after=[a.headers.get("Retry-After") for a in answers], seconds_for_3=round(seconds, 1),
           events_appended=rows(db, "concepts_storedevent") - events, tracebacks_in_log=log.count("Traceback"),
           after_release=learner.deposit("1").status)  # fmt: skip


# --- A full disk ----------------------------------------------------------------------------------------------------


def probe_full_disk(folder: Path, template: Path, port: int) -> None:
    if os.geteuid() != 0:
        report("full disk", skipped="needs root to mount a tmpfs")
        return
    mount = folder / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    site = None
    try:
        db = mount / "db.sqlite3"
        db.write_bytes(template.read_bytes())
        site = MakeRunSite(db, folder / "full-disk.log", port=port)
        learner = visitor_with_events(site)
        events = rows(db, "concepts_storedevent")
        filler = mount / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        statuses = Counter(learner.deposit("1").status for _ in range(100))
        newcomer = Learner(site.base).get(PAGE).status
        log = site.log()
        report("full disk", statuses=dict(statuses), new_visitors_page=newcomer,
               events_appended=rows(db, "concepts_storedevent") - events, tracebacks_in_log=log.count("Traceback"),
               log_lines_besides_access=sum('"' not in line for line in log.splitlines()))  # fmt: skip
        filler.unlink()
    finally:
        if site is not None:
            site.stop()
        subprocess.run(["umount", "-l", str(mount)], check=False)


PROBES = ("sandboxes", "body", "session_sockets", "simultaneous_sockets", "slow", "rebuild", "lock", "full_disk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--only", default=",".join(PROBES))
    parser.add_argument("--slow-seconds", type=float, default=25.0)
    args = parser.parse_args()
    wanted = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="reqflow-probe-") as tmp:
        folder = Path(tmp)
        template = folder / "template.sqlite3"
        migrate(template)
        for name in wanted:
            if name == "full_disk":
                probe_full_disk(folder, template, args.port)
                continue
            db = folder / f"{name}.sqlite3"
            db.write_bytes(template.read_bytes())
            site = MakeRunSite(db, folder / f"{name}.log", port=args.port, SQLITE_TIMEOUT_S="3")
            try:
                if name == "slow":
                    probe_slow_clients(site, db, args.slow_seconds)
                else:
                    globals()[f"probe_{name.replace('lock', 'lock_timeout').replace('rebuild', 'rebuild_lockout')}"](
                        site, db
                    )
            finally:
                site.stop()


if __name__ == "__main__":
    main()
