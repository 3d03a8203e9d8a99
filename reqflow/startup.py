"""Before a process starts serving: can it reach its database and its Redis? If not, one line saying which and
where, and the process exits, instead of a traceback or a retry loop that looks like a running service.

Used by `manage.py run_projector` (a worker) and `manage.py check_store` (`make run`'s first step); `make cluster`
checks the same through deploy/services.py. A running process that loses either later retries on its own (the
projector backs off, lab.outage; requests answer 503, reqflow.dbfailure): this is for the start only. daphne run
alone still starts without them and answers 503, so an outage at boot heals when the database comes up.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import redis
from django.conf import settings
from django.db import connection

CONNECT_TIMEOUT_S = 5


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def database_problem() -> str | None:
    """None when the database accepts a connection within CONNECT_TIMEOUT_S (SQLite: always), else one line."""
    if connection.vendor == "sqlite":
        return None  # a file: `check_store` checks it is sound; there is nothing to reach
    db = connection.settings_dict
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db.get('NAME')}"
    params = connection.get_connection_params() | {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        psycopg.connect(**params).close()  # a connection of its own, never a kept one (reqflow.pooled_postgresql)
    except Exception as exc:  # psycopg.OperationalError, a DNS failure (OSError): any of them is one line
        return f"the database (PostgreSQL at {where}) cannot be reached: {_one_line(exc)}"
    return None


def redis_problem() -> str | None:
    """None when there is no REDIS_URL or Redis answers a PING within CONNECT_TIMEOUT_S, else one line."""
    if not settings.REDIS_URL:
        return None
    parts = urlsplit(settings.REDIS_URL)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"Redis (REDIS_URL, at {where}) cannot be reached: {_one_line(exc)}"
    return None


def unreachable() -> str | None:
    """The first of the two problems, or None when both answer."""
    return database_problem() or redis_problem()
