"""deploy/services.py, which `make cluster` and `make test-postgres` share: when no PostgreSQL or Redis answers at the
local addresses, throwaway ones start from the installed binaries, answer, and stop again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from deploy import services
from tests.integration.test_healthz import closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder():
    # Inside the project (ignored by git). Run as root, the throwaway PostgreSQL runs as the `postgres` account and
    # keeps its data under the system's temporary directory instead (services.postgres_data_dir): a fresh clone sits
    # in a private `mktemp -d` folder that account cannot enter.
    path = ROOT / ".cluster" / f"test-services-{uuid.uuid4().hex[:8]}"
    yield path
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(services.postgres_data_dir(path, "postgres").parent, ignore_errors=True)


def test_when_nothing_answers_locally_throwaway_servers_start_answer_and_stop(monkeypatch, folder):
    monkeypatch.setattr(services, "LOCAL_POSTGRES", f"postgres://postgres@127.0.0.1:{closed_port()}")
    monkeypatch.setattr(services, "LOCAL_REDIS", f"redis://127.0.0.1:{closed_port()}")
    database = services.postgres(None, database="reqflow_cluster_throwaway", folder=folder, create=True)
    redis = services.redis_service(None, db=2, folder=folder)
    try:
        assert (database.origin, redis.origin) == ("throwaway", "throwaway")
        assert services.postgres_error(database.url, "reqflow_cluster_throwaway") is None
        assert services.redis_error(redis.url) is None
        assert redis.url.endswith("/2")
    finally:
        services.stop(redis)
        services.stop(database)
    assert database.process is not None and database.process.returncode == 0
    assert redis.process is not None and redis.process.poll() is not None
    assert services.postgres_error(database.url) is not None and services.redis_error(redis.url) is not None


def test_a_named_server_that_does_not_answer_is_a_one_line_error(folder):
    url = f"postgres://postgres@127.0.0.1:{closed_port()}/reqflow"
    with pytest.raises(services.ServiceError) as error:
        services.postgres(url, database="reqflow", folder=folder)
    assert str(error.value).startswith(f"PostgreSQL at {url} does not answer:")
    assert "\n" not in str(error.value)


def test_as_a_command_it_runs_another_with_both_urls_and_passes_its_exit_code_on(folder):
    pg = f"postgres://postgres@127.0.0.1:{closed_port()}/reqflow"
    show = "import os, sys; print(os.environ['DATABASE_URL'], os.environ['REDIS_URL']); sys.exit(3)"
    redis = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/2"
    wrapper = [sys.executable, "-m", "deploy.services", "--dir", str(folder)]
    wrapper += ["--database-url", pg, "--redis-url", redis]
    done = subprocess.run(
        [*wrapper, "--", sys.executable, "-c", show],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The named PostgreSQL does not answer: said in one line, and the command still runs with it (the tests then
    # report SKIPPED outside CI, a failure in CI).
    assert done.returncode == 3
    assert done.stdout.split() == [pg, redis]
    assert f"PostgreSQL at {pg} does not answer" in done.stderr
