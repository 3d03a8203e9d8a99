"""The scaled-out mode's PostgreSQL connection budget (docs/deploy.md, "The connection budget").

Each thread that touches the database holds its own connection while it works, so a cluster's connections are
bounded by its threads: per web process, ASGI_THREADS for requests (reqflow.request_threads) and as many in daphne's
own pool (/healthz's query), 2 for the lab sockets' pushes (lab.consumers) and 1 for channels' session and user
lookups; per projector worker, its projector thread and the command's own (the start-up check); and a few for
whoever administers (migrate, a management command, psql). `make cluster` prints the sum next to what the server
allows, and a warning when it does not fit: past it, PostgreSQL refuses connections ("too many clients already").
"""

from __future__ import annotations

import psycopg

DEFAULT_THREADS = 8  # ASGI_THREADS when unset (reqflow/settings.py)
PER_WEB_BESIDES_THREADS = 3  # lab.consumers' 2 push threads, channels' one thread for sessions and users
PER_WORKER = 2
ADMIN = 3


def per_web(threads: int) -> int:
    return 2 * threads + PER_WEB_BESIDES_THREADS


def connections(web: int, workers: int, threads: int) -> int:
    return web * per_web(threads) + workers * PER_WORKER + ADMIN


def server_limits(url: str) -> tuple[int, int, int]:
    """(max_connections, the ones reserved for superusers, connections open now) on the server `url` names."""
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT current_setting('max_connections')::int,"
            " current_setting('superuser_reserved_connections')::int"
            "  + COALESCE(current_setting('reserved_connections', true)::int, 0),"
            " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def report(url: str, web: int, workers: int, threads: int) -> str:
    """One line: the budget, the server's limit, and a warning when the budget does not fit."""
    need = connections(web, workers, threads)
    sum_text = (
        f"{web} web x (2 x ASGI_THREADS {threads} + {PER_WEB_BESIDES_THREADS}) + {workers} workers x {PER_WORKER}"
        f" + {ADMIN} admin = {need}"
    )
    try:
        most, reserved, now = server_limits(url)
    except psycopg.Error as exc:
        return f"connection budget: {sum_text}; the server's max_connections could not be read ({exc})"
    usable = most - reserved
    line = f"connection budget: {sum_text} of PostgreSQL's {usable} (max_connections {most} - {reserved} reserved)"
    if need > usable:
        return f"warning: {line}: too many; lower ASGI_THREADS or --web, or raise max_connections"
    return f"{line}; {now} open now"
