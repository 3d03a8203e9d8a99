"""A PostgreSQL that takes connections and then says nothing (hung, or a network dropping its packets): a command
answers 503 with Retry-After once connecting has taken DATABASE_CONNECT_TIMEOUT_S, instead of hanging until the
proxy in front gives up; one log line; once the server answers again the same learner goes on.

Real parts: a live daphne whose DATABASE_URL goes through the fault proxy to the test's PostgreSQL; the proxy's
pause() accepts every connection and forwards nothing, as a stopped server's kernel would."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.db import connection

from tests.reliability.faultproxy import FaultProxy
from tests.reliability.live import Learner, Site

pytestmark = [pytest.mark.backend, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CONNECT_TIMEOUT_S = 3


@pytest.fixture
def proxied_site(tmp_path) -> Iterator[tuple[FaultProxy, Site]]:
    if not settings.IS_POSTGRES:
        pytest.skip("hangs a PostgreSQL behind a proxy: `make test-postgres` runs this test")
    db = connection.settings_dict
    with FaultProxy(int(db.get("PORT") or 5432), db.get("HOST") or "127.0.0.1") as proxy:
        url = f"postgres://{db.get('USER') or 'postgres'}@127.0.0.1:{proxy.port}/{db['NAME']}"
        site = Site(
            tmp_path / "site.log", DATABASE_URL=url, EMBEDDED_PROJECTOR="0",
            DATABASE_CONNECT_TIMEOUT_S=str(CONNECT_TIMEOUT_S),
        )  # fmt: skip
        try:
            yield proxy, site
        finally:
            proxy.resume()
            site.stop()


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    answer = call()
    return time.monotonic() - started, answer


def test_a_hung_postgresql_is_a_503_after_the_connect_timeout_not_a_hang(proxied_site):
    proxy, site = proxied_site
    learner = Learner(site.base)
    assert learner.get("/lab/").status == 200
    baseline, first = timed(lambda: learner.deposit("5"))
    assert first.status == 200, first.body[:300]
    proxy.pause()
    took, answer = timed(lambda: learner.deposit("7"))
    assert answer.status == 503 and int(answer.headers["Retry-After"]) > 0, answer.body[:300]
    assert "cannot be reached" in answer.body
    # It waited for the connect timeout, and not much longer (the rest is what a command costs here).
    assert CONNECT_TIMEOUT_S - 0.5 <= took <= CONNECT_TIMEOUT_S + 2 * baseline + 2, (took, baseline)
    proxy.resume()
    assert learner.deposit("9").status == 200
    log = site.log()
    assert sum(line.startswith("database unavailable: answering 503") for line in log.splitlines()) == 1, log
    assert "Traceback" not in log, log[-3000:]
    print(f"\nhung PostgreSQL: a command answered 503 after {took:.1f} s (connect timeout {CONNECT_TIMEOUT_S} s, "
          f"a command {baseline * 1000:.0f} ms)")  # fmt: skip
