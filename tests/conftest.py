"""Fixtures shared by every test layer: named learners, logged-in clients, and the backend check."""

from __future__ import annotations

import os

import pytest
from django.conf import settings


def pytest_sessionstart(session: pytest.Session) -> None:
    """A PostgreSQL run that cannot reach PostgreSQL must say so: skipped outside CI, a failure in CI."""
    if not settings.IS_POSTGRES:
        return
    import psycopg

    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=db.get("PORT") or 5432,
            user=db.get("USER") or "postgres",
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.exit(f"PostgreSQL is required in CI but not reachable: {exc}", returncode=1)
        pytest.exit(f"SKIPPED the PostgreSQL run: no PostgreSQL reachable ({exc})", returncode=0)


@pytest.hookimpl(trylast=True)  # after `-m` has deselected what this run leaves out
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `redis` need processes talking through Redis. `make test` leaves them out of the SQLite run
    (`-m "not redis"`) and runs them in `make test-postgres`; a plain `pytest` without REDIS_URL skips them,
    except in CI, where a test that cannot run is a failure."""
    if settings.REDIS_URL:
        return
    needing = [item for item in items if item.get_closest_marker("redis")]
    if not needing:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"{len(needing)} test(s) need REDIS_URL in CI; run them with `make test-postgres`")
    skip = pytest.mark.skip(reason="needs REDIS_URL (a cross-process channel layer); `make test-postgres` runs it")
    for item in needing:
        item.add_marker(skip)


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct-horse-battery-1")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user(username="bob", password="correct-horse-battery-2")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(alice, bob):
    from django.test import Client

    other = Client()
    other.force_login(bob)
    return other
