"""The read side's raw reads (lab/read_rows.py) and the event feed (lab.store.reads.events_after) return exactly
what the ORM returned before them, value and type, on SQLite and PostgreSQL: Decimals to the cent, aware datetimes,
the same rows in the same order."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from lab import projector, read_rows, store
from lab.models import BALANCE, BalanceView, Checkpoint, DeadLetter, HistoryLine, StoredEvent
from lab.store.values import py_money
from tests.integration.lab_events import append, new_sandbox

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]

AMOUNTS = ["0.01", "10.10", "99999999.99", "0.30", "12345.67", "1.00"]


def test_balance_history_and_checkpoint_equal_the_orms():
    sandbox = new_sandbox()
    for amount in AMOUNTS:
        append(sandbox, "Deposited", amount)
    append(sandbox, "Withdrew", "0.31")
    projector.drain([sandbox.pk])
    generation = read_rows.live_generation(sandbox.pk)
    orm = BalanceView.objects.filter(sandbox_id=sandbox.pk, generation=generation).values_list("amount", "version")
    assert read_rows.balance(sandbox.pk, generation) == orm.first()
    assert read_rows.balance(sandbox.pk, generation + 1) is None
    lines = read_rows.history(sandbox.pk, generation, 5)
    rows = list(HistoryLine.objects.filter(sandbox_id=sandbox.pk, generation=generation).order_by("-position")[:5])
    assert [(h.position, h.version, h.kind, h.amount, h.balance_after, h.recorded_at) for h in lines] == [
        (r.position, r.version, r.kind, r.amount, r.balance_after, r.recorded_at) for r in reversed(rows)
    ]
    assert all(isinstance(h.amount, Decimal) and h.amount.as_tuple().exponent == -2 for h in lines)
    assert all(h.recorded_at.tzinfo is not None for h in lines)
    cp = Checkpoint.objects.filter(sandbox_id=sandbox.pk, projection=BALANCE, generation=generation)
    assert read_rows.checkpoint(sandbox.pk, BALANCE, generation) == cp.values_list("position", "version").first()
    assert read_rows.checkpoint(sandbox.pk, BALANCE, generation + 1) is None


def test_dead_letters_leave_out_the_retried_ones_as_the_orm_did():
    sandbox = new_sandbox()
    first, second, third = (append(sandbox, "Deposited", "1.00") for _ in range(3))
    now = timezone.now()
    DeadLetter.objects.create(sandbox=sandbox, projection=BALANCE, position=first.position, error="open")
    DeadLetter.objects.create(sandbox=sandbox, projection=BALANCE, position=second.position, error="retried",
                              resolved_at=now)  # fmt: skip
    DeadLetter.objects.create(sandbox=sandbox, projection=BALANCE, position=third.position, error="skipped",
                              resolved_at=now, skipped_at=now)  # fmt: skip
    orm = (
        DeadLetter.objects.filter(sandbox_id=sandbox.pk)
        .exclude(resolved_at__isnull=False, skipped_at__isnull=True)
        .order_by("position", "projection")
        .values_list("projection", "position", "error", "skipped_at")
    )
    assert read_rows.dead_letters(sandbox.pk, 100) == list(orm)
    assert [error for _, _, error, _ in read_rows.dead_letters(sandbox.pk, 100)] == ["open", "skipped"]


def test_the_events_after_a_position_equal_the_orms():
    sandbox = new_sandbox()
    events = [append(sandbox, "Deposited", "2.50") for _ in range(4)]
    orm = (
        StoredEvent.objects.filter(sandbox_id=sandbox.pk, position__gt=events[0].position)
        .order_by("position")
        .values_list("position", "version", "event_type", "recorded_at")[:2]
    )
    assert store.events_after(sandbox.pk, events[0].position, 2) == list(orm)


@pytest.mark.parametrize("stored", [0, 7, 0.1, 12345.67, 99999999.99, Decimal("5.5"), Decimal("0.01")])
def test_money_reads_as_the_orm_reads_a_two_place_decimal(stored):
    assert py_money(stored) == Decimal(str(stored)).quantize(Decimal("0.01"))
    assert py_money(stored).as_tuple().exponent == -2


def test_recorded_times_come_back_aware():
    sandbox = new_sandbox()
    when = dt.datetime(2026, 11, 30, 12, 0, 1, 234567, tzinfo=dt.UTC)
    event = append(sandbox, "Deposited", "1.00", recorded_at=when)
    assert store.events_after(sandbox.pk, event.position - 1, 1)[0][3] == when


@pytest.mark.parametrize("event_type", [None, "Withdrew"])
def test_a_log_page_equals_the_orms(event_type):
    sandbox = new_sandbox()
    for n in range(7):
        append(sandbox, "Withdrew" if n % 3 == 0 else "Deposited", "3.00")
    rows, page, pages, total = store.event_page(sandbox, 2, 2, event_type)
    orm = StoredEvent.objects.filter(sandbox_id=sandbox.pk).order_by("-position")
    if event_type:
        orm = orm.filter(event_type=event_type)
    assert (page, pages, total) == (2, -(-orm.count() // 2), orm.count())
    fields = ("position", "stream_id", "version", "event_type", "schema_version", "payload", "event_id", "command_id",
              "correlation_id", "causation_id", "recorded_at")  # fmt: skip
    assert [tuple(getattr(r, f) for f in fields) for r in rows] == [
        tuple(getattr(r, f) for f in fields) for r in orm[2:4]
    ]
    assert store.event_page(sandbox, 99, 2, event_type)[1] == pages  # past the end clamps to the last page
