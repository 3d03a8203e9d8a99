"""The lab's models move to the `lab` app (lab/migrations/0001_initial.py); the tables stay where they are.

State only: the models leave the `concepts` app's state, and no table is dropped or renamed, so the events and
the append-only triggers of 0002 are untouched. The content types follow the models, so permissions and any
generic reference keep pointing at the same rows.
"""

from django.db import migrations

MODELS = [
    # Models that point at Sandbox first, Sandbox last.
    "balanceview",
    "checkpoint",
    "commandrecord",
    "deadletter",
    "historyline",
    "largestdepositview",
    "loadreport",
    "snapshot",
    "storedevent",
    "purgepermit",
    "sandbox",
]


def _move_content_types(from_app, to_app):
    def move(apps, schema_editor):
        content_type = apps.get_model("contenttypes", "ContentType")
        db = schema_editor.connection.alias
        for model in MODELS:
            if not content_type.objects.using(db).filter(app_label=to_app, model=model).exists():
                content_type.objects.using(db).filter(app_label=from_app, model=model).update(app_label=to_app)

    return move


class Migration(migrations.Migration):
    dependencies = [
        ("concepts", "0003_event_sandbox_index_is_the_composite_one"),
        ("lab", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name=name) for name in MODELS],
            database_operations=[],
        ),
        migrations.RunPython(_move_content_types("concepts", "lab"), _move_content_types("lab", "concepts")),
    ]
