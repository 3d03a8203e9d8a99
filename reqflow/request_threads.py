"""Django's sync work for HTTP requests runs on at most ASGI_THREADS threads per web process, so the process's
PostgreSQL connections are bounded.

Django's ASGI handler gives each request a thread of its own (asgiref's ThreadSensitiveContext creates a
one-thread executor per request), and a thread's database connection is its own: a web process opened as many
connections as it had requests in flight. Under `make load`, the web processes ran PostgreSQL out of connections
("too many clients already") and the refused ones failed pages, commands and socket handshakes. Here each request
enters a ThreadSensitiveContext whose executor is one pool of ASGI_THREADS threads for the whole process (Django's
own context, inside it, then reuses it): sync work past that many waits for a thread, and async waits (a
read-your-writes query, a group commit) hold none. A request's sync steps may run on different threads of the pool;
nothing spans them (no transaction does: ATOMIC_REQUESTS is off, and a SQLite connection a thread keeps between
requests holds none). daphne sizes its own default pool (/healthz's query, static files) from the same variable.
docs/deploy.md, "The connection budget", adds it up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import ThreadSensitiveContext
from django.db import close_old_connections

T = TypeVar("T")


class ClosingPool(ThreadPoolExecutor):
    """A pool whose threads let go of their database connection after each piece of sync work, as Django does at
    the end of a request: on PostgreSQL the process keeps it for the next thread that needs one
    (reqflow.pooled_postgresql), a SQLite file's stays with its thread (reqflow/settings.py).

    Django closes connections in its request_finished handler, on whichever pool thread that lands, while the
    view's queries may have run on another. The view thread's PostgreSQL connection then stayed open after its
    request, and the next request that thread served reused it unchecked: when the server had meanwhile hung, that
    request waited on the dead connection for ever instead of giving up after DATABASE_CONNECT_TIMEOUT_S
    (tests/reliability/test_hung_postgres.py caught it). Let go after each piece, a connection goes back to the
    kept ones, and each is shown to answer before it is lent again."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(_then_let_go, fn, *args, **kwargs)


def _then_let_go(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


class RequestThreads:
    def __init__(self, app: Any, threads: int) -> None:
        self.app = app
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    def pool(self) -> ThreadPoolExecutor:
        # Made on first use, and again in a forked child (a test's live server), which inherits no threads.
        if self._pool is None or self._pid != os.getpid():
            self._pool = ClosingPool(max_workers=self.threads, thread_name_prefix="reqflow-request")
            self._pid = os.getpid()
        return self._pool

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with ThreadSensitiveContext(executor=self.pool()):
            await self.app(scope, receive, send)
