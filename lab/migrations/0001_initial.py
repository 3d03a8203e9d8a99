"""The lab's models, taken over from the `concepts` app without touching the database.

The tables were created by concepts/migrations/0001-0003 (with the append-only triggers of 0002) and keep
their names (Meta.db_table). This migration only tells Django's model state that the `lab` app owns them now;
concepts/migrations/0004 removes them from the `concepts` state. Nothing is created, copied or dropped, so the
triggers and every stored event survive on SQLite and PostgreSQL alike.
"""

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("concepts", "0003_event_sandbox_index_is_the_composite_one"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Sandbox',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('session_key', models.CharField(blank=True, db_index=True, max_length=64)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_active_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                        ('retired_at', models.DateTimeField(blank=True, help_text='Set when a reset replaced it.', null=True)),
                        ('lag_ms', models.PositiveIntegerField(default=2000)),
                        ('snapshot_interval', models.PositiveIntegerField(default=10)),
                        ('deposit_schema_version', models.PositiveSmallIntegerField(default=1)),
                        ('projector_paused', models.BooleanField(default=False)),
                        ('projector_crashed_until', models.DateTimeField(blank=True, null=True)),
                        ('retro_model_enabled', models.BooleanField(default=False)),
                        ('live_generation', models.PositiveIntegerField(default=1)),
                        ('rebuilding_generation', models.PositiveIntegerField(blank=True, null=True)),
                        ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='sandboxes', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'concepts_sandbox',
                    },
                ),
                migrations.CreateModel(
                    name='PurgePermit',
                    fields=[
                        ('sandbox_id', models.UUIDField(primary_key=True, serialize=False)),
                    ],
                    options={
                        'db_table': 'concepts_purgepermit',
                    },
                ),
                migrations.CreateModel(
                    name='LoadReport',
                    fields=[
                        ('sandbox', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='load_report', serialize=False, to='lab.sandbox')),
                        ('snapshot_version', models.PositiveIntegerField(blank=True, null=True)),
                        ('events_replayed', models.PositiveIntegerField(default=0)),
                        ('events_without_snapshot', models.PositiveIntegerField(default=0)),
                        ('loaded_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'concepts_loadreport',
                    },
                ),
                migrations.CreateModel(
                    name='LargestDepositView',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('amount', models.DecimalField(blank=True, decimal_places=2, max_digits=14, null=True)),
                        ('position', models.BigIntegerField(blank=True, null=True)),
                        ('deposits_seen', models.PositiveIntegerField(default=0)),
                        ('version', models.PositiveIntegerField(default=0)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_largestdepositview',
                    },
                ),
                migrations.CreateModel(
                    name='HistoryLine',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('position', models.BigIntegerField()),
                        ('version', models.PositiveIntegerField()),
                        ('kind', models.CharField(max_length=16)),
                        ('amount', models.DecimalField(decimal_places=2, max_digits=14)),
                        ('balance_after', models.DecimalField(decimal_places=2, max_digits=14)),
                        ('recorded_at', models.DateTimeField()),
                        ('applied_count', models.PositiveSmallIntegerField(default=1, help_text='Proof of exactly-once in crash tests.')),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_historyline',
                        'ordering': ['position'],
                    },
                ),
                migrations.CreateModel(
                    name='DeadLetter',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('projection', models.CharField(max_length=32)),
                        ('position', models.BigIntegerField()),
                        ('error', models.TextField()),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='dead_letters', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_deadletter',
                    },
                ),
                migrations.CreateModel(
                    name='CommandRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('command_id', models.CharField(max_length=64)),
                        ('command_type', models.CharField(max_length=32)),
                        ('accepted', models.BooleanField()),
                        ('outcome', models.JSONField()),
                        ('recorded_at', models.DateTimeField(auto_now_add=True)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_commandrecord',
                    },
                ),
                migrations.CreateModel(
                    name='Checkpoint',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('projection', models.CharField(max_length=32)),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('position', models.BigIntegerField(default=0)),
                        ('version', models.PositiveIntegerField(default=0, help_text='Stream version of the last applied event.')),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checkpoints', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_checkpoint',
                    },
                ),
                migrations.CreateModel(
                    name='BalanceView',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('amount', models.DecimalField(decimal_places=2, default=0, max_digits=14)),
                        ('version', models.PositiveIntegerField(default=0)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_balanceview',
                    },
                ),
                migrations.CreateModel(
                    name='Snapshot',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('stream_id', models.CharField(max_length=80)),
                        ('version', models.PositiveIntegerField()),
                        ('state', models.JSONField()),
                        ('fingerprint', models.CharField(max_length=64)),
                        ('taken_at', models.DateTimeField(auto_now_add=True)),
                        ('reason', models.CharField(default='auto', max_length=16)),
                        ('sandbox', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='snapshots', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_snapshot',
                    },
                ),
                migrations.CreateModel(
                    name='StoredEvent',
                    fields=[
                        ('position', models.BigAutoField(primary_key=True, serialize=False)),
                        ('stream_id', models.CharField(max_length=80)),
                        ('version', models.PositiveIntegerField()),
                        ('event_type', models.CharField(max_length=64)),
                        ('schema_version', models.PositiveSmallIntegerField(default=1)),
                        ('payload', models.JSONField()),
                        ('event_id', models.UUIDField(default=uuid.uuid4, unique=True)),
                        ('command_id', models.CharField(max_length=64)),
                        ('correlation_id', models.UUIDField()),
                        ('causation_id', models.UUIDField()),
                        ('recorded_at', models.DateTimeField()),
                        ('sandbox', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='lab.sandbox')),
                    ],
                    options={
                        'db_table': 'concepts_storedevent',
                    },
                ),
                migrations.AddIndex(
                    model_name='sandbox',
                    index=models.Index(fields=['user', 'retired_at'], name='concepts_sa_user_id_ce3e25_idx'),
                ),
                migrations.AddIndex(
                    model_name='sandbox',
                    index=models.Index(fields=['session_key', 'retired_at'], name='concepts_sa_session_b46fd2_idx'),
                ),
                migrations.AddConstraint(
                    model_name='largestdepositview',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'generation'), name='largest_deposit_unique'),
                ),
                migrations.AddConstraint(
                    model_name='historyline',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'generation', 'position'), name='history_line_unique'),
                ),
                migrations.AddConstraint(
                    model_name='deadletter',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'projection', 'position'), name='dead_letter_unique'),
                ),
                migrations.AddConstraint(
                    model_name='commandrecord',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'command_id'), name='command_once_per_sandbox'),
                ),
                migrations.AddConstraint(
                    model_name='checkpoint',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'projection', 'generation'), name='checkpoint_unique'),
                ),
                migrations.AddConstraint(
                    model_name='balanceview',
                    constraint=models.UniqueConstraint(fields=('sandbox', 'generation'), name='balance_view_unique'),
                ),
                migrations.AddConstraint(
                    model_name='snapshot',
                    constraint=models.UniqueConstraint(fields=('stream_id', 'version'), name='snapshot_stream_version_unique'),
                ),
                migrations.AddIndex(
                    model_name='storedevent',
                    index=models.Index(fields=['sandbox', 'position'], name='concepts_st_sandbox_df93c5_idx'),
                ),
                migrations.AddConstraint(
                    model_name='storedevent',
                    constraint=models.UniqueConstraint(fields=('stream_id', 'version'), name='event_stream_version_unique'),
                ),
            ],
            database_operations=[],
        ),
    ]
