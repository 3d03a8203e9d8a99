"""Least privilege on PostgreSQL: the role `manage.py grant_app_role` makes reads and writes rows, and cannot
drop the append-only triggers, alter a table or truncate the events, nor update or delete an event."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from tests.reliability.live import Learner, Site

# `postgres`: the SQLite pass of `make test` leaves these out, `make test-postgres` (-m backend) runs them, so CI
# never reports them skipped.
pytestmark = [pytest.mark.backend, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PASSWORD = "reqflow-fail-app-test"  # a throwaway role, dropped after the test
INSERT_EVENT = """INSERT INTO concepts_storedevent (sandbox_id, stream_id, version, event_type, schema_version,
    payload, event_id, command_id, correlation_id, causation_id, recorded_at)
    VALUES (%s, %s, 1, 'Deposited', 1, '{"amount": "5"}', %s, 'c1', %s, %s, now()) RETURNING position"""


@pytest.fixture
def app_role():
    if not settings.IS_POSTGRES:
        pytest.skip("roles are PostgreSQL's: `make test-postgres` runs this test")
    role = f"reqflow_fail_app_{uuid.uuid4().hex[:8]}"
    call_command("grant_app_role", role=role, password=PASSWORD)
    yield role
    with connection.cursor() as cur:
        cur.execute(f"DROP OWNED BY {role}")
        cur.execute(f"DROP ROLE {role}")


def connect_as(role: str) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432, dbname=connection.settings_dict["NAME"],
        user=role, password=PASSWORD, autocommit=True, connect_timeout=5,
    )  # fmt: skip


REFUSED = [
    "DROP TRIGGER concepts_storedevent_append_only ON concepts_storedevent",
    "DROP TRIGGER concepts_storedevent_no_truncate ON concepts_storedevent",
    "ALTER TABLE concepts_storedevent DISABLE TRIGGER ALL",
    "ALTER TABLE concepts_storedevent ADD COLUMN x int",
    "TRUNCATE concepts_storedevent",
    "DROP TABLE concepts_storedevent",
    "UPDATE concepts_storedevent SET payload = '{}'",
    "CREATE TABLE sneaky (x int)",
]


def test_the_app_role_reads_and_appends_but_cannot_touch_the_schema_or_the_triggers(app_role):
    sandbox = uuid.uuid4()
    with connect_as(app_role) as db:
        assert db.execute("SELECT current_user").fetchone() == (app_role,)
        ids = (sandbox, f"account-{sandbox}", uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
        position = db.execute(INSERT_EVENT, ids).fetchone()[0]
        assert db.execute("SELECT count(*) FROM concepts_storedevent WHERE position = %s", [position]).fetchone() == (
            1,
        )
        for statement in REFUSED:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
        # A delete is granted (a purge needs it), and the trigger still refuses it without the purge's permit.
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            db.execute("DELETE FROM concepts_storedevent WHERE position = %s", [position])
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'concepts_storedevent'::regclass AND NOT tgisinternal"
        )
        assert cur.fetchone()[0] >= 2
        cur.execute("SELECT count(*) FROM concepts_storedevent WHERE position = %s", [position])
        assert cur.fetchone()[0] == 1


def test_grant_app_role_refuses_a_bad_name_and_the_owner_itself():
    if not settings.IS_POSTGRES:
        pytest.skip("roles are PostgreSQL's: `make test-postgres` runs this test")
    with pytest.raises(CommandError, match="lower-case SQL name"):
        call_command("grant_app_role", role='x"; DROP TABLE y; --')
    with connection.cursor() as cur:
        cur.execute("SELECT current_user")
        owner = cur.fetchone()[0]
    with pytest.raises(CommandError, match="the owner"):
        call_command("grant_app_role", role=owner)


def test_the_site_serves_and_projects_as_the_app_role(app_role, tmp_path):
    db = settings.DATABASES["default"]
    url = (
        f"postgres://{app_role}:{PASSWORD}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
        f"/{connection.settings_dict['NAME']}"
    )
    site = Site(tmp_path / "site.log", DATABASE_URL=url)
    try:
        learner = Learner(site.base)
        assert learner.get("/lab/").status == 200
        assert learner.deposit("5").status == 200
        assert learner.deposit("7").status == 200
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM concepts_storedevent")
            assert cur.fetchone()[0] == 2
            deadline = time.monotonic() + 20
            while projected(cur) < 2 and time.monotonic() < deadline:  # the embedded projector, as the app role
                time.sleep(0.1)
            assert projected(cur) == 2, site.log()[-3000:]
        assert "permission denied" not in site.log(), site.log()[-3000:]
    finally:
        site.stop()


def projected(cur) -> int:
    cur.execute("SELECT coalesce(max(version), 0) FROM concepts_balanceview")
    return int(cur.fetchone()[0])
