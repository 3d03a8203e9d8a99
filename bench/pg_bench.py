"""PostgreSQL appends with many writers: 16 writers, each on a sandbox of its own, one event per transaction.

The baseline is measured in the same run, on the same server and database, alternating with our runs: the same
guarded INSERT behind `LOCK TABLE ... IN EXCLUSIVE MODE`, which every append took before the per-sandbox lock
(docs/architecture.md, "Positions become visible in commit order, per sandbox"). So the ratio is ours ÷ the old
table lock, and the machine's mood cancels out.

The peer runs in the same alternation, on the same server and database (its tables beside ours): the
`eventsourcing` library's PostgreSQL application, 16 threads each saving one event per transaction to an aggregate
of its own (bench/peer_eventsourcing.py). Its recorder takes `LOCK TABLE ... IN EXCLUSIVE MODE` on every insert, to
hand out notification ids in commit order; ours takes a per-sandbox lock (the guarantee is per sandbox).

The server, through deploy/services.py: BENCH_PG_URL, else DATABASE_URL when it is PostgreSQL, else the local server
at 127.0.0.1:5432 when it answers, else a throwaway one started from the installed binaries (stopped afterwards), so
a fresh machine measures too. Each run creates a database of its own (reqflow_bench plus the process id), migrates
it and drops it afterwards. No server at all: no figures, and a line saying so (the SQLite benchmarks need none).
Standalone: `.venv/bin/python bench/pg_bench.py` prints the figures as JSON.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import urllib.parse

import psycopg

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", 5))
WRITERS = 16
APPENDS = int(os.environ.get("BENCH_PG_APPENDS", 200))  # per writer and run


def given_url() -> str | None:
    url = os.environ.get("BENCH_PG_URL") or os.environ.get("DATABASE_URL") or ""
    return url if url.startswith(("postgres://", "postgresql://")) else None


def _with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path=f"/{name}"))


def _admin(url: str, sql: str) -> None:
    """Run one statement on the server's maintenance database, outside any transaction (CREATE/DROP DATABASE)."""
    with psycopg.connect(_with_database(url, "postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def run(tmpdir: pathlib.Path) -> dict[str, float]:
    """Figures for bench/results.json: pg_append_concurrent16_events_per_s, the table-lock baseline of the same
    run (pg_append_concurrent16_table_lock_events_per_s), their ratio (pg_append_concurrent16_vs_table_lock),
    the peer (peer_pg_append_concurrent16_events_per_s, pg_append_vs_peer), and one writer alone
    (pg_append_one_writer_events_per_s) for context."""
    sys.path.insert(0, str(ROOT))
    from deploy import services

    try:
        service = services.postgres(given_url(), database="reqflow_bench", folder=pathlib.Path(tmpdir) / "postgres")
    except services.ServiceError as exc:
        print(f"pg_bench: no PostgreSQL ({exc}); no PostgreSQL figures", file=sys.stderr)
        return {}
    try:
        return _run_on(service.url)
    finally:
        services.stop(service)  # only a throwaway server is stopped


def _run_on(url: str) -> dict[str, float]:
    name = urllib.parse.urlsplit(url).path.lstrip("/") or "reqflow_bench"
    database = f"{name}_{os.getpid()}"
    try:
        _admin(url, f'CREATE DATABASE "{database}"')
    except psycopg.OperationalError as exc:
        print(f"pg_bench: no PostgreSQL at {url} ({str(exc).strip()[:200]}); no PostgreSQL figures", file=sys.stderr)
        return {}
    try:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
        env.update(DATABASE_URL=_with_database(url, database), DJANGO_SETTINGS_MODULE="reqflow.settings")
        done = subprocess.run(
            [sys.executable, str(pathlib.Path(__file__).resolve()), "--child"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        _admin(url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _measure() -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from bench_db import writers_rate  # bench/ is the child's script folder, so first on its path
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from lab import store
    from lab.engine.store import Metadata, NewEvent
    from lab.models import Sandbox
    from lab.store.events import _INSERT, EVENTS, Append, _insert_params

    assert connection.vendor == "postgresql"
    call_command("migrate", verbosity=0)
    meta = Metadata.for_command("bench")
    payload = {"amount_cents": 5000, "currency": "USD"}

    def ours(sandbox: Sandbox, version: int) -> None:
        # The store's own append: its transaction, the sandbox's append lock, the guarded INSERT, COMMIT.
        store.event_store.append(sandbox.stream_id, [NewEvent("Deposited", 2, payload)], version, meta)

    def table_lock(sandbox: Sandbox, version: int) -> None:
        # What every append did before: the same transaction and guarded INSERT behind the table lock.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE")
            append = Append(sandbox.pk, sandbox.stream_id, [NewEvent("Deposited", 2, payload)], version, meta)
            (params,) = _insert_params(connection, append, timezone.now())
            cursor.execute(_INSERT, params)
            assert cursor.fetchone() is not None

    from peer_eventsourcing import concurrent_appends, postgres_bank

    peer = postgres_bank(os.environ["DATABASE_URL"], WRITERS)  # the database this child migrated
    rates: dict[str, list[float]] = {"ours": [], "table_lock": [], "one_writer": [], "peer": []}
    for _ in range(RUNS):  # alternating, so a slow moment of the machine hits each
        for label, append_one, writers in (("ours", ours, WRITERS), ("table_lock", table_lock, WRITERS),
                                           ("one_writer", ours, 1)):  # fmt: skip
            sandboxes = [Sandbox.objects.create() for _ in range(writers)]
            rates[label].append(writers_rate(append_one, sandboxes, APPENDS))
        rates["peer"].append(concurrent_appends(peer, WRITERS, APPENDS))
    ours_rate, baseline = statistics.median(rates["ours"]), statistics.median(rates["table_lock"])
    return {
        "pg_append_concurrent16_events_per_s": round(ours_rate, 1),
        "pg_append_concurrent16_table_lock_events_per_s": round(baseline, 1),
        "pg_append_concurrent16_vs_table_lock": round(ours_rate / baseline, 2),
        "peer_pg_append_concurrent16_events_per_s": round(statistics.median(rates["peer"]), 1),
        "pg_append_vs_peer": round(ours_rate / statistics.median(rates["peer"]), 2),
        # One writer, one commit (one WAL flush) at a time: what the table lock let 16 writers share.
        "pg_append_one_writer_events_per_s": round(statistics.median(rates["one_writer"]), 1),
    }


if __name__ == "__main__":
    if "--child" in sys.argv:
        print(json.dumps(_measure()))
    else:
        print(json.dumps(run(pathlib.Path(".")), indent=2))
