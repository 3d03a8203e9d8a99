"""Drop the events table's single-column sandbox index: the (sandbox, position) index serves every lookup by
sandbox, and each extra index is one more page written and fsynced per append.

The index is dropped by name rather than by AlterField: on SQLite AlterField rebuilds the whole table, which
would silently drop the append-only triggers of migration 0002.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "concepts_storedevent_sandbox_id_ecc5b8a3"


class Migration(migrations.Migration):
    dependencies = [
        ("concepts", "0002_event_store_append_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="storedevent",
                    name="sandbox",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="concepts.sandbox",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f"DROP INDEX IF EXISTS {INDEX}",
                    reverse_sql=f"CREATE INDEX {INDEX} ON concepts_storedevent (sandbox_id)",
                ),
            ],
        ),
    ]
