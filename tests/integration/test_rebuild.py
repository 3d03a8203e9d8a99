"""Blue/green rebuilds through `manage.py rebuild_projection`, and what a rebuild may and may not show."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from lab import projector, queries, rebuild
from lab.models import BalanceView, Checkpoint, HistoryLine, Sandbox
from lab.types import Progress
from tests.integration.lab_events import append, new_sandbox

pytestmark = [pytest.mark.backend, pytest.mark.django_db(transaction=True)]


def projected(sandbox, amounts):
    for kind, amount in amounts:
        append(sandbox, kind, amount)
    projector.drain([sandbox.pk])
    return queries.read_side(sandbox)


def test_rebuild_projection_for_one_sandbox_swaps_in_an_equal_read_model():
    sandbox = new_sandbox()
    other = new_sandbox()
    before = projected(sandbox, [("Deposited", "50.00"), ("Withdrew", "20.00"), ("Deposited", "7.25")])
    projected(other, [("Deposited", "1.00")])
    out = io.StringIO()
    call_command("rebuild_projection", "--sandbox", str(sandbox.pk), stdout=out)
    assert f"sandbox {sandbox.pk}: rebuilt 3 events" in out.getvalue()
    after = queries.read_side(sandbox)
    assert (after.balance, after.version, after.history) == (before.balance, before.version, before.history)
    assert after.balance == Decimal("37.25")
    assert Sandbox.objects.get(pk=sandbox.pk).live_generation == 2
    assert Sandbox.objects.get(pk=other.pk).live_generation == 1  # only the one asked for
    assert set(HistoryLine.objects.filter(sandbox=sandbox).values_list("generation", flat=True)) == {2}
    assert set(Checkpoint.objects.filter(sandbox=sandbox).values_list("generation", flat=True)) == {2}


def test_rebuild_projection_without_a_sandbox_rebuilds_every_active_one():
    sandboxes = [new_sandbox() for _ in range(3)]
    for s in sandboxes:
        projected(s, [("Deposited", "2.00")])
    out = io.StringIO()
    call_command("rebuild_projection", stdout=out)
    assert "rebuilt 3 sandbox(es)" in out.getvalue()
    assert [Sandbox.objects.get(pk=s.pk).live_generation for s in sandboxes] == [2, 2, 2]
    assert [queries.query(s).balance for s in sandboxes] == [Decimal("2.00")] * 3


def test_rebuild_projection_refuses_an_unknown_or_malformed_sandbox_id():
    with pytest.raises(CommandError, match="not a sandbox id"):
        call_command("rebuild_projection", "--sandbox", "nope")
    with pytest.raises(CommandError, match="no sandbox"):
        call_command("rebuild_projection", "--sandbox", "00000000-0000-0000-0000-000000000000")


def test_a_rebuild_shows_what_the_live_model_showed_and_leaves_events_in_flight_in_flight():
    sandbox = new_sandbox(lag_ms=10_000)
    long_ago = timezone.now() - dt.timedelta(seconds=60)
    for amount in ["10.00", "20.00", "30.00"]:
        append(sandbox, "Deposited", amount, recorded_at=long_ago)
    append(sandbox, "Deposited", "1000.00")  # still within its 10 s lag
    projector.drain([sandbox.pk])
    assert queries.query(sandbox).read_version == 3
    rebuild.rebuild_now(sandbox.pk)
    answer = queries.query(sandbox)
    assert (answer.balance, answer.read_version, answer.write_version) == (Decimal("60.00"), 3, 4)
    assert [e.version for e in queries.in_flight(sandbox)] == [4]


def test_a_rebuild_reads_the_whole_log_even_where_the_projector_never_ran():
    # Scaled out with no worker started yet (or the embedded projector off), the live model is empty: a rebuild
    # that stopped at the live checkpoint "rebuilt" from 0 events.
    sandbox = new_sandbox()
    for kind, amount in [("Deposited", "50.00"), ("Withdrew", "20.00"), ("Deposited", "7.25")]:
        append(sandbox, kind, amount)
    out = io.StringIO()
    call_command("rebuild_projection", "--sandbox", str(sandbox.pk), stdout=out)
    assert f"sandbox {sandbox.pk}: rebuilt 3 events" in out.getvalue()
    answer = queries.query(sandbox)
    assert (answer.balance, answer.read_version, answer.stale) == (Decimal("37.25"), 3, False)
    assert [line.version for line in queries.read_side(sandbox).history] == [1, 2, 3]


def test_a_second_rebuild_uses_a_fresh_generation_and_drops_the_old_ones():
    sandbox = new_sandbox()
    projected(sandbox, [("Deposited", "5.00")] * 4)
    rebuild.rebuild_now(sandbox.pk)
    rebuild.rebuild_now(sandbox.pk)
    assert Sandbox.objects.get(pk=sandbox.pk).live_generation == 3
    assert set(BalanceView.objects.filter(sandbox=sandbox).values_list("generation", flat=True)) == {3}
    assert queries.rebuild_progress(sandbox) == Progress(4, 4, False)
    assert queries.query(sandbox).balance == Decimal("20.00")


def test_a_sandbox_never_rebuilt_reports_no_rebuild_progress():
    sandbox = new_sandbox()
    assert queries.rebuild_progress(sandbox) == Progress(0, 0, False)
