"""Command records (each command id's first outcome, so a re-sent command appends nothing) and load reports."""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils import timezone

from lab.engine.replay import Loaded
from lab.models import CommandRecord, LoadReport, Sandbox
from lab.store.values import db_json, db_time, db_uuid, py_json

COMMANDS = CommandRecord._meta.db_table
LOAD_REPORTS = LoadReport._meta.db_table


def command_outcome(sandbox: Sandbox, command_id: str) -> dict[str, Any] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT outcome FROM {COMMANDS} WHERE sandbox_id = %s AND command_id = %s",
            [db_uuid(sandbox.pk), command_id],
        )
        row = cursor.fetchone()
    return py_json(row[0]) if row else None


def record_command(
    sandbox: Sandbox, command_id: str, command_type: str, accepted: bool, outcome: dict[str, Any]
) -> None:
    now = db_time(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {COMMANDS} (sandbox_id, command_id, command_type, accepted, outcome, recorded_at) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                db_uuid(sandbox.pk),
                command_id,
                command_type,
                accepted,
                db_json(outcome),
                now,
            ],
        )


def record_load(sandbox: Sandbox, loaded: Loaded) -> None:
    now = db_time(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LOAD_REPORTS} (sandbox_id, snapshot_version, events_replayed, events_without_snapshot, "
            "loaded_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sandbox_id) DO UPDATE SET "
            "snapshot_version = excluded.snapshot_version, events_replayed = excluded.events_replayed, "
            "events_without_snapshot = excluded.events_without_snapshot, loaded_at = excluded.loaded_at",
            [db_uuid(sandbox.pk), loaded.snapshot_version, loaded.events_replayed, loaded.state.version, now],
        )
