"""Controls: what steers the lab without being a command. The sandbox's settings (lag, snapshot interval, deposit
schema), the projector's teaching faults (pause, crash, retry a dead letter), a rebuild, and the retroactive model.

Each changes the sandbox's row (or the read models) and then, after the commit, wakes the projector and tells
the open pages (lab.live.after_commit). The limits and their messages live in lab.limits.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from lab import live, rebuild
from lab.limits import (
    check_crash_downtime,
    check_deposit_schema,
    check_replay_rate,
    check_snapshot_interval,
    parse_lag,
)
from lab.models import LARGEST_DEPOSIT, RETRO_GENERATION, Checkpoint, DeadLetter, LargestDepositView, Sandbox
from lab.rebuild import RebuildBusy
from lab.types import Progress

__all__ = [
    "RebuildBusy",
    "crash_projector",
    "enable_retro_model",
    "pause_projection",
    "resume_projection",
    "retry_dead_letter",
    "set_deposit_schema",
    "set_lag",
    "set_replay_rate",
    "set_snapshot_interval",
    "start_rebuild",
]


def _update_settings(sandbox: Sandbox, **fields: Any) -> None:
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(**fields)
        # A shorter lag makes waiting events due now, and a faster replay pace allows the next event sooner;
        # without a wake-up the projector would sleep on until the deadline it computed under the old setting.
        # Other settings do not change what the projector does.
        live.after_commit(sandbox.pk, "settings", wake=bool({"lag_ms", "replay_rate"} & fields.keys()))
    for name, value in fields.items():
        setattr(sandbox, name, value)


def set_lag(sandbox: Sandbox, seconds: str | Decimal | int) -> int:
    """Set the projector's lag for this sandbox; returns it in milliseconds."""
    lag_ms = parse_lag(seconds)
    _update_settings(sandbox, lag_ms=lag_ms)
    return lag_ms


def set_snapshot_interval(sandbox: Sandbox, n: int) -> int:
    """Snapshot automatically every n events (0 = off)."""
    _update_settings(sandbox, snapshot_interval=check_snapshot_interval(n))
    return n


def set_deposit_schema(sandbox: Sandbox, version: int) -> int:
    """Store new deposits in schema 1 or 2; stored ones keep theirs and are upcast on read."""
    _update_settings(sandbox, deposit_schema_version=check_deposit_schema(version))
    return version


def set_replay_rate(sandbox: Sandbox, rate: int) -> int:
    """How fast a rebuild and the retroactive model's catch-up replay the log, in events a second (0 = as fast as
    possible). Takes effect at once, in the middle of a rebuild too: the projector is woken to re-pace."""
    _update_settings(sandbox, replay_rate=check_replay_rate(rate))
    return rate


def pause_projection(sandbox: Sandbox) -> None:
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_paused=True)
    live.after_commit(sandbox.pk, "settings")


def resume_projection(sandbox: Sandbox) -> None:
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_paused=False)
    live.after_commit(sandbox.pk, "settings")


def crash_projector(sandbox: Sandbox, downtime_s: float = 3.0) -> dt.datetime:
    """A teaching fault: the sandbox's projector acts dead for `downtime_s`, then restarts from its checkpoint."""
    until = timezone.now() + dt.timedelta(seconds=check_crash_downtime(downtime_s))
    Sandbox.objects.filter(pk=sandbox.pk).update(projector_crashed_until=until)
    live.after_commit(sandbox.pk, "settings")
    return until


def retry_dead_letter(sandbox: Sandbox) -> int:
    """Mark the open dead letters resolved so the projection tries again (after the cause was fixed).
    If the event still fails it is dead-lettered again, with the new error."""
    count = DeadLetter.objects.filter(sandbox_id=sandbox.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    live.after_commit(sandbox.pk, "settings")
    return count


def start_rebuild(sandbox: Sandbox) -> Progress:
    """Blue/green: build generation g+1 from position 0 while g keeps serving; the projector swaps it in.
    Raises RebuildBusy when too many rebuilds run at once (lab.rebuild.MAX_CONCURRENT_REBUILDS)."""
    with transaction.atomic():
        started = rebuild.begin(sandbox.pk)
        rebuild.announce(sandbox.pk, started)
    return started


def enable_retro_model(sandbox: Sandbox) -> None:
    """Add the "largest deposit" model; the projector builds it from position 0 while the balance keeps serving."""
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(retro_model_enabled=True)
        Checkpoint.objects.get_or_create(sandbox_id=sandbox.pk, projection=LARGEST_DEPOSIT, generation=RETRO_GENERATION)
        LargestDepositView.objects.get_or_create(sandbox_id=sandbox.pk, generation=RETRO_GENERATION)
        live.after_commit(sandbox.pk, "settings")
