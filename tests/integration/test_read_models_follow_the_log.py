"""Every read model equals the fold of the log, whatever happened to the sandbox before: commands, rebuilds (some
finished, some still running when more commands arrive), resets, and the retroactive model enabled at any time.

The projector is driven synchronously (lab.projector.drain) at lag 0, at points hypothesis chooses, so rebuilds
and the live projection interleave with commands in many orders."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab import commands, controls, queries, store
from lab.engine import projection
from lab.models import Sandbox
from lab.projector import drain

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

cents = st.integers(min_value=1, max_value=50_000)
actions = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["deposit", "withdraw"]), cents),
        st.tuples(st.sampled_from(["rebuild", "retro", "reset", "project"]), st.none()),
    ),
    max_size=30,
)


def logged(sandbox: Sandbox) -> list[tuple[int, int, object]]:
    return [(row.position, row.version, store.domain_event(row)) for row in store.read_stream(sandbox)]


def fresh_sandbox(previous: Sandbox | None) -> Sandbox:
    """What a reset does to the session's sandbox: the old one is retired, a new empty one takes its place."""
    with transaction.atomic():
        if previous is not None:
            Sandbox.objects.filter(pk=previous.pk).update(retired_at=timezone.now())
        # Unpaced replays: drain applies what is due now, and a paced rebuild would still be running after it.
        return Sandbox.objects.create(lag_ms=0, snapshot_interval=3, replay_rate=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions)
def test_every_read_model_equals_the_fold_of_the_log_after_any_history(history):
    Sandbox.objects.update(retired_at=timezone.now())  # examples share the database: start from no live sandbox
    sandbox = fresh_sandbox(None)
    retro_on = False
    for action, amount in history:
        if action in ("deposit", "withdraw"):
            commands.send_command(sandbox, action, f"{amount / 100:.2f}")
        elif action == "rebuild":
            controls.start_rebuild(sandbox)
        elif action == "retro":
            controls.enable_retro_model(sandbox)
            retro_on = True
        elif action == "reset":
            sandbox, retro_on = fresh_sandbox(sandbox), False
        else:
            drain([sandbox.pk])
    drain([sandbox.pk])

    events = logged(sandbox)
    balance, lines = projection.fold_balance(events)
    read = queries.read_side(sandbox)
    assert (read.balance, read.version, read.behind) == (balance.amount, balance.version, 0)
    assert [(h.position, h.version, h.amount, h.balance_after) for h in read.history] == [
        (x.position, x.version, x.amount, x.balance_after) for x in lines
    ]
    assert not queries.rebuild_progress(sandbox).running
    retro = queries.retro_model(sandbox)
    assert retro.enabled == retro_on
    if retro_on:
        largest = projection.fold_largest_deposit(events)
        assert (retro.largest_deposit, retro.largest_deposit_position, retro.deposits_seen) == (
            largest.amount,
            largest.position,
            largest.deposits_seen,
        )
        assert (retro.progress.done, retro.progress.running) == (balance.version, False)
