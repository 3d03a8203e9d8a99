"""PostgreSQL connections are kept and lent again (reqflow.pooled_postgresql), for real: the same server session
serves the next piece of work; one that died while kept (its session terminated, as a restart does) is replaced
without the caller seeing an error; one left in a transaction or after an error is closed, never lent; threads
never hold more connections than there are threads; a forked child and an idle minute start afresh.

A hung server (a kept connection that answers nothing) is tests/reliability/test_hung_postgres.py."""

from __future__ import annotations

import os
import resource
import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import ProgrammingError, connection, transaction

from reqflow.pooled_postgresql import base as kept_module
from reqflow.pooled_postgresql.base import KeptConnections, close_kept

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.backend, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _only_kept_postgresql():
    if not settings.IS_POSTGRES:
        pytest.skip("keeps PostgreSQL connections: `make test-postgres` runs this test")
    if settings.DATABASES["default"]["ENGINE"] != "reqflow.pooled_postgresql":
        pytest.fail("DATABASE_POOL=0 turns off what these tests check: run them without it")
    connection.close()
    close_kept()
    yield
    connection.close()
    close_kept()


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def terminate(pid: int) -> None:
    """End a server session from outside, as a PostgreSQL restart does to every one."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"], autocommit=True
    ) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)


def test_a_connection_let_go_serves_the_next_piece_of_work():
    first = backend_pid()
    connection.close()  # what each request's sync step does when it ends (reqflow.request_threads)
    assert backend_pid() == first


def test_a_connection_that_died_while_kept_is_replaced_and_the_caller_sees_no_error():
    first = backend_pid()
    connection.close()
    terminate(first)
    assert backend_pid() != first


def test_a_connection_left_after_an_error_is_closed_not_lent():
    first = backend_pid()
    with pytest.raises(ProgrammingError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_here")
    connection.close()
    assert backend_pid() != first


def test_a_connection_closed_inside_a_transaction_is_closed_not_lent():
    with transaction.atomic():
        first = backend_pid()
        connection.close()  # Django refuses to go on in this block; the transaction dies with the connection
    connection.close()
    assert backend_pid() != first


def test_threads_never_hold_more_connections_than_there_are_threads_and_a_second_burst_connects_nothing():
    threads, gate = 6, threading.Barrier(6)
    seen: list[set[int]] = [set(), set()]

    def work(burst: int) -> None:
        try:
            gate.wait(10)  # all at once, so that none can reuse another's
            seen[burst].add(backend_pid())
            gate.wait(10)
        finally:
            connection.close()

    for burst in (0, 1):
        workers = [threading.Thread(target=work, args=(burst,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert len(seen[0]) == threads
    assert seen[1] == seen[0]  # every connection of the second burst was a kept one


def test_a_forked_child_never_lends_its_parents_connections():
    kept = KeptConnections()
    parent_conn = object()
    kept.keep(parent_conn)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        os._exit(0 if kept.take() is None else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kept.take() is parent_conn


def test_a_connection_idle_past_the_limit_is_closed(monkeypatch):
    first = backend_pid()
    connection.close()
    monkeypatch.setattr(kept_module, "KEEP_IDLE_S", -1.0)  # everything kept is already too old
    assert backend_pid() != first
    monkeypatch.undo()
    assert session_ends(first)


def session_ends(pid: int, within_s: float = 5.0) -> bool:
    """Whether the server session `pid` is gone within `within_s` (its process exits just after the client leaves)."""
    db = connection.settings_dict
    deadline = time.monotonic() + within_s
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"], autocommit=True
    ) as other:
        while time.monotonic() < deadline:
            if other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() == (0,):
                return True
            time.sleep(0.05)
    return False


def test_the_check_works_on_a_descriptor_past_1024(tmp_path):
    # A web process with a thousand WebSockets open has descriptors past select()'s limit; the check must not care.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this machine allows only {hard} open files; the test needs 1,200")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    filler = [open(tmp_path / "filler", "a") for _ in range(1100)]  # held open on purpose
    try:
        connection.close()
        close_kept()
        first = backend_pid()  # a new connection, on a descriptor past 1,024
        assert connection.connection.pgconn.socket > 1024
        connection.close()
        assert backend_pid() == first  # lent again after the check
    finally:
        for f in filler:
            f.close()
        connection.close()
        close_kept()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_fork_while_a_thread_holds_the_lock_leaves_the_child_a_free_one():
    kept = kept_module.KEPT.setdefault(("fork-test",), KeptConnections())
    try:
        with kept._lock:  # as a parent's thread would, taking or keeping a connection at the moment of the fork
            child = os.fork()
            if child == 0:  # pragma: no cover - the child reports through its exit status
                os._exit(0 if kept.take() is None else 1)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(child, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        if done == (0, 0):
            os.kill(child, 9)
            os.waitpid(child, 0)
            pytest.fail("the child waited for a lock that no thread of its own held")
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        del kept_module.KEPT[("fork-test",)]
