"""The raw reads on the hot paths (the projector's step, a push, every lab request) return exactly what the ORM
returned before them, value and type, on SQLite and PostgreSQL: the sandbox's settings, its row, the dead letters a
projection honours, the retroactive model's row and the snapshots list."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from lab import commands, projections, read_rows, sandboxes
from lab.models import (
    BALANCE,
    LARGEST_DEPOSIT,
    RETRO_GENERATION,
    STATE_ONLY,
    DeadLetter,
    LargestDepositView,
    Sandbox,
    Snapshot,
)
from lab.projections import SANDBOX_FIELDS
from lab.store import snapshots_of
from tests.integration.lab_events import append, new_sandbox

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]


def orm_row(sandbox: Sandbox) -> dict:
    return Sandbox.objects.filter(pk=sandbox.pk).values(*SANDBOX_FIELDS).first()


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"projector_paused": True, "retro_model_enabled": True, "rebuilding_generation": 2, "replay_rate": 50},
        {"projector_crashed_until": "soon", "retired_at": "now", "mode": STATE_ONLY, "lag_ms": 12345},
    ],
)
def test_the_projectors_sandbox_row_equals_the_orms(fields):
    now = timezone.now()
    times = {"soon": now + dt.timedelta(seconds=3), "now": now}
    sandbox = new_sandbox(**{k: times.get(v, v) if isinstance(v, str) else v for k, v in fields.items()})
    raw = projections.sandbox_row(sandbox.pk)
    assert raw == orm_row(sandbox)
    assert [type(raw[f]) for f in SANDBOX_FIELDS] == [type(v) for v in orm_row(sandbox).values()]
    with transaction.atomic():
        assert projections.sandbox_row(sandbox.pk, lock=True) == raw
    assert projections.sandbox_row(Sandbox().pk) is None


def test_the_projectors_dead_letters_equal_the_orms():
    sandbox, other = new_sandbox(), new_sandbox()
    events = [append(sandbox, "Deposited", "1.00") for _ in range(5)]
    now = timezone.now()
    letters = [(BALANCE, None, None), (LARGEST_DEPOSIT, None, None), (BALANCE, now, None), (BALANCE, now, now),
               (LARGEST_DEPOSIT, now, now)]  # fmt: skip
    for event, (projection, resolved, skipped) in zip(events, letters, strict=True):
        DeadLetter.objects.create(sandbox=sandbox, projection=projection, position=event.position, error="x",
                                  resolved_at=resolved, skipped_at=skipped)  # fmt: skip
    DeadLetter.objects.create(sandbox=other, projection=BALANCE, position=events[0].position, error="elsewhere")
    for projection in (BALANCE, LARGEST_DEPOSIT):
        rows = DeadLetter.objects.filter(
            Q(projection=projection, resolved_at__isnull=True) | Q(skipped_at__isnull=False), sandbox_id=sandbox.pk
        )
        stalled = any(r.skipped_at is None and r.projection == projection for r in rows)
        skipped = frozenset(r.position for r in rows if r.skipped_at is not None)
        assert projections.dead_letters(sandbox.pk, projection) == (stalled, skipped)
    assert projections.dead_letters(sandbox.pk, BALANCE) == (True, frozenset({events[3].position, events[4].position}))


def test_the_retroactive_models_row_equals_the_orms():
    sandbox = new_sandbox()
    assert read_rows.largest_deposit(sandbox.pk, RETRO_GENERATION) is None
    view = LargestDepositView.objects.create(sandbox=sandbox, generation=RETRO_GENERATION)
    assert read_rows.largest_deposit(sandbox.pk, RETRO_GENERATION) == (None, None, 0, 0)
    LargestDepositView.objects.filter(pk=view.pk).update(amount=Decimal("99999999.99"), position=2**40,
                                                          deposits_seen=7, version=9)  # fmt: skip
    view.refresh_from_db()
    found = read_rows.largest_deposit(sandbox.pk, RETRO_GENERATION)
    assert found == (view.amount, view.position, view.deposits_seen, view.version)
    assert isinstance(found[0], Decimal) and found[0].as_tuple().exponent == -2


def test_the_snapshots_list_equals_the_orms():
    sandbox = new_sandbox(snapshot_interval=2)
    for _ in range(7):
        commands.send_command(sandbox, "deposit", "2.50")
    orm = list(Snapshot.objects.filter(sandbox_id=sandbox.pk).order_by("-version"))
    assert len(orm) == 3
    for limit, expected in ((None, orm), (2, orm[:2])):
        raw = snapshots_of(sandbox, limit)
        assert [(s.pk, s.version, s.state, s.fingerprint, s.taken_at, s.reason) for s in raw] == [
            (s.pk, s.version, s.state, s.fingerprint, s.taken_at, s.reason) for s in expected
        ]
        assert all(isinstance(s.state, dict) and s.taken_at.tzinfo is not None for s in raw)
        fields = Snapshot._meta.concrete_fields
        assert [{f.attname: (getattr(s, f.attname), type(getattr(s, f.attname))) for f in fields} for s in raw] == [
            {f.attname: (getattr(s, f.attname), type(getattr(s, f.attname))) for f in fields} for s in expected
        ]
        assert all((s._state.adding, s._state.db) == (False, "default") for s in raw)


def test_a_sandbox_by_id_is_the_orms_row():
    sandbox = new_sandbox(lag_ms=777)
    found = sandboxes._by_id(str(sandbox.pk))
    assert found == sandbox
    expected = Sandbox.objects.get(pk=sandbox.pk)
    assert {f.attname: getattr(found, f.attname) for f in Sandbox._meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in Sandbox._meta.concrete_fields
    }
    assert {f.attname: type(getattr(found, f.attname)) for f in Sandbox._meta.concrete_fields} == {
        f.attname: type(getattr(expected, f.attname)) for f in Sandbox._meta.concrete_fields
    }
    assert (found._state.adding, found._state.db) == (False, "default")  # saved as an update, as the ORM's would be
    assert sandboxes._by_id(str(Sandbox().pk)) is None
    assert sandboxes._by_id("not a uuid") is None
