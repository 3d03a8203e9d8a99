"""The state-only mode's projection (lab.modes): copy the write model's current state to the read model.

There is no log to follow, so the projector copies the row: once the oldest change not yet copied
(Sandbox.state_pending_since) is as old as the sandbox's lag, one transaction writes the state as it is now into
the live balance read model and its checkpoint (its version counter), and clears the mark. The lag and the stale
reads stay; what the copy cannot carry is what happened in between: the read model jumps from one state to the
latest (v=2 to v=5), and it has no history lines, because the changes were never kept.

Like lab.projections.project it runs under the sandbox's advisory lock on PostgreSQL and re-checks the sandbox
inside its transaction (still state-only, not retired, paused or crashed). A command committing meanwhile waits
for the row lock; its change sets the mark again for the next copy.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import transaction
from django.utils import timezone

from lab.models import BALANCE, STATE_ONLY, BalanceView, Checkpoint, Sandbox
from lab.projections import Busy, Outcome, try_sandbox_lock

COPY_FIELDS = (
    "mode",
    "state_balance",
    "state_version",
    "state_pending_since",
    "live_generation",
    "projector_paused",
    "projector_crashed_until",
    "retired_at",
)


def copy_state(sandbox_id: uuid.UUID, *, lag: dt.timedelta, now: dt.datetime | None = None) -> Outcome:
    """Copy the state-only write model to the read model if the copy is due. `applied` is 1 when it copied;
    `next_due` (epoch seconds) says when a pending copy falls due."""
    now = now or timezone.now()
    out = Outcome()
    pending = Sandbox.objects.filter(pk=sandbox_id).values_list("state_pending_since", flat=True).first()
    if pending is None:
        return out
    if pending + lag > now:
        out.next_due = (pending + lag).timestamp()
        return out
    try:
        with transaction.atomic():
            try_sandbox_lock(sandbox_id)
            row = Sandbox.objects.select_for_update().filter(pk=sandbox_id).values(*COPY_FIELDS).first()
            if not _may_copy(row, now):
                return out
            assert row is not None
            generation, version = row["live_generation"], row["state_version"]
            BalanceView.objects.update_or_create(
                sandbox_id=sandbox_id,
                generation=generation,
                defaults={"amount": row["state_balance"], "version": version},
            )
            Checkpoint.objects.update_or_create(
                sandbox_id=sandbox_id, projection=BALANCE, generation=generation, defaults={"version": version}
            )
            Sandbox.objects.filter(pk=sandbox_id).update(state_pending_since=None)
    except Busy:  # another worker copies this sandbox right now
        out.more = True
        return out
    out.applied, out.version = 1, version
    return out


def _may_copy(row: dict[str, object] | None, now: dt.datetime) -> bool:
    if row is None or row["mode"] != STATE_ONLY or row["retired_at"] is not None or row["projector_paused"]:
        return False
    crashed = row["projector_crashed_until"]
    return row["state_pending_since"] is not None and not (isinstance(crashed, dt.datetime) and crashed > now)
