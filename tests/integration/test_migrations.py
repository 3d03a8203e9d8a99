"""The lab's models moved from the `concepts` app to `lab` in the migration state only (lab/migrations/0001,
concepts/migrations/0004): the `concepts_*` tables, their rows and the append-only triggers of
concepts/migrations/0002 must come through, on a fresh database and on one the previous schema created."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from lab import store
from lab.engine.messages import Deposited
from lab.models import Sandbox, StoredEvent

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]

EVENTS, SANDBOXES, PERMITS = "concepts_storedevent", "concepts_sandbox", "concepts_purgepermit"
BEFORE_THE_MOVE = ("concepts", "0003_event_sandbox_index_is_the_composite_one")
# The names concepts/migrations/0002_event_store_append_only.py gives its triggers.
TRIGGERS = {
    "sqlite": {"concepts_storedevent_no_update", "concepts_storedevent_no_delete"},
    "postgresql": {"concepts_storedevent_append_only", "concepts_storedevent_no_truncate"},
}
LAB_MODELS = [
    "BalanceView", "Checkpoint", "CommandRecord", "DeadLetter", "HistoryLine", "LargestDepositView", "LoadReport",
    "PurgePermit", "Sandbox", "Snapshot", "StoredEvent",
]  # fmt: skip


def migrate(*targets: tuple[str, str | None]) -> None:
    executor = MigrationExecutor(connection)  # a fresh one each time: it reads what is applied when built
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


def migration_state():
    """Django's model state after every migration on disk (what `makemigrations` compares models with)."""
    loader = MigrationExecutor(connection).loader
    return loader.project_state(loader.graph.leaf_nodes()).apps


def triggers_on_the_events_table() -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [EVENTS])
        else:
            cursor.execute(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE c.relname = %s AND NOT t.tgisinternal",
                [EVENTS],
            )
        return {name for (name,) in cursor.fetchall()}


def sql(statement: str, params: list | tuple = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def refused(statement: str, params: list | tuple = ()) -> str:
    """Run raw SQL in a savepoint (PostgreSQL aborts the transaction on error) and return the database's refusal."""
    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        sql(statement, params)
    return str(raised.value)


def db(field: models.Field, value):
    """A value as raw SQL must pass it to this database (SQLite keeps UUIDs as hex, JSON and times as text)."""
    return field.get_db_prep_save(value, connection)


def insert_sandbox_and_events_with_raw_sql(amounts: list[str]) -> uuid.UUID:
    """Rows as the previous schema (concepts/migrations/0001-0003) stores them, written without any model."""
    sandbox_id, now = uuid.uuid4(), timezone.now()
    sql(
        f"INSERT INTO {SANDBOXES} (id, session_key, created_at, last_active_at, retired_at, lag_ms, snapshot_interval,"
        " deposit_schema_version, projector_paused, projector_crashed_until, retro_model_enabled, live_generation,"
        " rebuilding_generation, user_id) VALUES (%s, '', %s, %s, NULL, 0, 10, 1, %s, NULL, %s, 1, NULL, NULL)",
        [
            db(models.UUIDField(), sandbox_id),
            db(models.DateTimeField(), now),
            db(models.DateTimeField(), now),
            False,
            False,
        ],
    )
    for version, amount in enumerate(amounts, start=1):
        cause = uuid.uuid4()
        sql(
            f"INSERT INTO {EVENTS} (stream_id, version, event_type, schema_version, payload, event_id, command_id,"
            " correlation_id, causation_id, recorded_at, sandbox_id) VALUES (%s, %s, 'Deposited', 1, %s, %s, %s, %s,"
            " %s, %s, %s)",
            [
                f"account-{sandbox_id}",
                version,
                db(models.JSONField(), {"amount": amount}),
                db(models.UUIDField(), uuid.uuid4()),
                f"old-{version}",
                db(models.UUIDField(), cause),
                db(models.UUIDField(), cause),
                db(models.DateTimeField(), now),
                db(models.UUIDField(), sandbox_id),
            ],
        )
    return sandbox_id


def assert_the_triggers_exist_and_refuse_changes(sandbox_id: uuid.UUID) -> None:
    assert TRIGGERS[connection.vendor] <= triggers_on_the_events_table()
    rows = StoredEvent.objects.filter(sandbox_id=sandbox_id).count()
    assert rows > 0, "nothing to refuse"
    assert "append-only" in refused(f"UPDATE {EVENTS} SET event_type = 'Withdrew'")
    assert "append-only" in refused(f"DELETE FROM {EVENTS} WHERE sandbox_id = %s", [db(models.UUIDField(), sandbox_id)])
    assert StoredEvent.objects.filter(sandbox_id=sandbox_id).count() == rows
    assert set(StoredEvent.objects.filter(sandbox_id=sandbox_id).values_list("event_type", flat=True)) == {"Deposited"}


def purge_with_a_permit(sandbox_id: uuid.UUID) -> None:
    """What lab.store.purge_sandbox does, in raw SQL: the triggers still read the permits table."""
    permit = db(models.UUIDField(), sandbox_id)
    with transaction.atomic():
        sql(f"INSERT INTO {PERMITS} (sandbox_id) VALUES (%s)", [permit])
        sql(f"DELETE FROM {EVENTS} WHERE sandbox_id = %s", [permit])
        sql(f"DELETE FROM {PERMITS} WHERE sandbox_id = %s", [permit])


def assert_the_lab_app_owns_the_models_in_the_migration_state() -> None:
    state = migration_state()
    for name in LAB_MODELS:
        model = state.get_model("lab", name)
        assert model._meta.db_table == f"concepts_{name.lower()}"
        with pytest.raises(LookupError):
            state.get_model("concepts", name)


def test_on_a_freshly_migrated_database_the_append_only_triggers_exist_and_refuse_changes():
    sandbox = Sandbox.objects.create()
    store.append(sandbox, [Deposited(Decimal("50.00")), Deposited(Decimal("5.00"))], 0, "seed")
    assert_the_triggers_exist_and_refuse_changes(sandbox.pk)
    assert_the_lab_app_owns_the_models_in_the_migration_state()
    purge_with_a_permit(sandbox.pk)
    assert not StoredEvent.objects.filter(sandbox_id=sandbox.pk).exists()


def test_a_database_the_previous_schema_created_keeps_its_events_and_triggers_when_the_lab_takes_the_models():
    try:
        migrate(("concepts", None))  # lab/0001 and concepts/0004 depend on concepts: they go first
        assert EVENTS not in connection.introspection.table_names()
        migrate(BEFORE_THE_MOVE)
        assert ("concepts", "0003_event_sandbox_index_is_the_composite_one") in MigrationExecutor(
            connection
        ).loader.applied_migrations
        assert not any(app == "lab" for app, _ in MigrationExecutor(connection).loader.applied_migrations)
        sandbox_id = insert_sandbox_and_events_with_raw_sql(["50.00", "7.25", "0.75"])
        assert TRIGGERS[connection.vendor] <= triggers_on_the_events_table()  # the old schema had them

        migrate()  # every leaf: lab/0001 and concepts/0004 (state only)

        sandbox = Sandbox.objects.get(pk=sandbox_id)
        assert [(e.version, e.event_type, e.payload) for e in store.read_stream(sandbox)] == [
            (1, "Deposited", {"amount": "50.00"}),
            (2, "Deposited", {"amount": "7.25"}),
            (3, "Deposited", {"amount": "0.75"}),
        ]
        assert [store.domain_event(e).amount for e in store.read_stream(sandbox)] == [
            Decimal("50.00"),
            Decimal("7.25"),
            Decimal("0.75"),
        ]
        store.append(sandbox, [Deposited(Decimal("2.00"))], 3, "after-the-move")  # the stream goes on at v4
        assert store.head_version(sandbox) == 4
        assert_the_triggers_exist_and_refuse_changes(sandbox_id)
        assert_the_lab_app_owns_the_models_in_the_migration_state()
        assert set(ContentType.objects.filter(model="storedevent").values_list("app_label", flat=True)) == {"lab"}
        purge_with_a_permit(sandbox_id)
        assert not StoredEvent.objects.filter(sandbox_id=sandbox_id).exists()
    finally:
        migrate()  # the tests after this one expect the full schema
