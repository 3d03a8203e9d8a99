"""The event table is append-only, enforced by the database itself (not just by the app's manners).

UPDATE is always refused. DELETE is refused unless the row's sandbox has a PurgePermit (written inside the purge
transaction, removed before it commits). A permit for the nil UUID allows every row: only `manage.py flush`
(lab/management/commands/flush.py, which test teardown also uses) writes that one. On PostgreSQL TRUNCATE,
which bypasses row triggers, is refused while the table still holds rows.
"""

from django.db import migrations

EVENTS = "concepts_storedevent"
PERMITS = "concepts_purgepermit"
NIL_SQLITE = "00000000000000000000000000000000"
NIL_PG = "00000000-0000-0000-0000-000000000000"

SQLITE_FORWARD = [
    f"""CREATE TRIGGER {EVENTS}_no_update BEFORE UPDATE ON {EVENTS}
    BEGIN SELECT RAISE(ABORT, 'append-only: events cannot be updated'); END""",
    f"""CREATE TRIGGER {EVENTS}_no_delete BEFORE DELETE ON {EVENTS}
    WHEN NOT EXISTS (SELECT 1 FROM {PERMITS} WHERE sandbox_id IN (OLD.sandbox_id, '{NIL_SQLITE}'))
    BEGIN SELECT RAISE(ABORT, 'append-only: events can only be deleted by purging their sandbox'); END""",
]
SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS {EVENTS}_no_update", f"DROP TRIGGER IF EXISTS {EVENTS}_no_delete"]

PG_FORWARD = [
    f"""CREATE OR REPLACE FUNCTION {EVENTS}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND EXISTS (
            SELECT 1 FROM {PERMITS} WHERE sandbox_id IN (OLD.sandbox_id, '{NIL_PG}'::uuid)
        ) THEN
            RETURN OLD;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            RAISE EXCEPTION 'append-only: events cannot be updated' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RAISE EXCEPTION 'append-only: events can only be deleted by purging their sandbox'
            USING ERRCODE = 'integrity_constraint_violation';
    END $$""",
    f"""CREATE TRIGGER {EVENTS}_append_only BEFORE UPDATE OR DELETE ON {EVENTS}
    FOR EACH ROW EXECUTE FUNCTION {EVENTS}_append_only()""",
    f"""CREATE OR REPLACE FUNCTION {EVENTS}_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM {EVENTS}) THEN
            RAISE EXCEPTION 'append-only: events cannot be truncated' USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER {EVENTS}_no_truncate BEFORE TRUNCATE ON {EVENTS}
    FOR EACH STATEMENT EXECUTE FUNCTION {EVENTS}_no_truncate()""",
]
PG_BACKWARD = [
    f"DROP TRIGGER IF EXISTS {EVENTS}_append_only ON {EVENTS}",
    f"DROP TRIGGER IF EXISTS {EVENTS}_no_truncate ON {EVENTS}",
    f"DROP FUNCTION IF EXISTS {EVENTS}_append_only()",
    f"DROP FUNCTION IF EXISTS {EVENTS}_no_truncate()",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, ()):
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("concepts", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": PG_FORWARD}),
            _run({"sqlite": SQLITE_BACKWARD, "postgresql": PG_BACKWARD}),
            elidable=False,
        ),
    ]
