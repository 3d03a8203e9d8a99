"""Controls: what steers the lab without being a command. The sandbox's settings (lag, snapshot interval, deposit
schema), the projector's teaching faults (pause, crash, a poison event, retry or skip a dead letter), a rebuild,
and the retroactive model.

Each changes the sandbox's row (or the read models) and then, after the commit, wakes the projector and tells
the open pages (lab.live.after_commit). The limits and their messages live in lab.limits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lab import facts, live, modes, rebuild, store
from lab.engine import decider
from lab.engine.messages import InterestPaid
from lab.engine.snapshots import is_due
from lab.engine.upcasting import UnreadableEvent
from lab.limits import (
    check_crash_downtime,
    check_deposit_schema,
    check_replay_rate,
    check_snapshot_interval,
    parse_lag,
)
from lab.models import LARGEST_DEPOSIT, RETRO_GENERATION, Checkpoint, DeadLetter, LargestDepositView, Sandbox
from lab.rebuild import RebuildBusy
from lab.timeline import event_view
from lab.types import EventView, Progress

__all__ = [
    "RebuildBusy",
    "append_poison_event",
    "crash_projector",
    "enable_retro_model",
    "pause_projection",
    "resume_projection",
    "retry_dead_letter",
    "set_deposit_schema",
    "set_lag",
    "set_replay_rate",
    "set_snapshot_interval",
    "skip_dead_letter",
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
    modes.require_event_sourced(sandbox, "snapshot")
    _update_settings(sandbox, snapshot_interval=check_snapshot_interval(n))
    return n


def set_deposit_schema(sandbox: Sandbox, version: int) -> int:
    """Store new deposits in schema 1 or 2; stored ones keep theirs and are upcast on read."""
    modes.require_event_sourced(sandbox, "schema")
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
    facts.note(sandbox.pk, facts.CRASH, keep=facts.KEEP_LAST)  # the projector clears crashed_until on restart
    live.after_commit(sandbox.pk, "settings")
    return until


def retry_dead_letter(sandbox: Sandbox) -> int:
    """Mark the open dead letters resolved so the projection tries again (after the cause was fixed).
    If the event still fails it is dead-lettered again, with the new error: with the same code, the same stall."""
    count = DeadLetter.objects.filter(sandbox_id=sandbox.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    live.after_commit(sandbox.pk, "settings")
    return count


def skip_dead_letter(sandbox: Sandbox) -> list[int]:
    """Move the open dead letters to the dead-letter list for good (skipped and resolved). Every read model of the
    sandbox (a rebuild's new generation and the retroactive model too) then passes over those positions: the
    checkpoint moves past them, nothing is applied for them, and the events after them flow again. The read
    balance leaves them out from then on; the panel lists them. Returns the positions skipped (none: not stalled)."""
    with transaction.atomic():
        letters = DeadLetter.objects.select_for_update().filter(sandbox_id=sandbox.pk, resolved_at__isnull=True)
        found = list(letters.values_list("pk", "position"))
        if found:
            now = timezone.now()
            DeadLetter.objects.filter(pk__in=[pk for pk, _ in found]).update(resolved_at=now, skipped_at=now)
            live.after_commit(sandbox.pk, "settings")
    return sorted({int(position) for _, position in found})


POISON_TYPE = "InterestPaid"
POISON_AMOUNT = Decimal("1.00")


def unresolved_poison(sandbox: Sandbox) -> list[int]:
    """Positions of the sandbox's poison events not yet skipped to the dead-letter list (retrying one does not
    resolve it: the read side's code still cannot apply it)."""
    skipped = set(
        DeadLetter.objects.filter(sandbox_id=sandbox.pk, skipped_at__isnull=False).values_list("position", flat=True)
    )
    return [p for p in store.positions_of_type(sandbox, POISON_TYPE) if p not in skipped]


def append_poison_event(sandbox: Sandbox) -> EventView:
    """Append one InterestPaid ($1.00): the write side shipped this event type before the read side's code learned
    it, so the write model folds it while the read models have no handler and stall on it (this sandbox only).

    The store's normal append under the append lock, at the head version, with a snapshot if one falls due. No
    command record: no command was decided, and a repeated click is refused anyway, because only one poison may
    be unresolved at a time. Raises ValueError for that, for a full sandbox, or a write model that cannot load;
    lab.modes.ModeUnavailable in state-only mode."""
    modes.require_event_sourced(sandbox, "poison")
    with transaction.atomic():
        store.lock_for_append(sandbox)
        pending = unresolved_poison(sandbox)
        if pending:
            raise ValueError(
                f"{POISON_TYPE} #{pending[0]} is not resolved yet: once the projector stalls on it, skip it to the "
                "dead-letter list before appending another."
            )
        try:
            state = store.load_state(sandbox).state
        except UnreadableEvent as exc:
            raise ValueError(f"The write model cannot load ({exc}); nothing was appended.") from None
        limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
        if state.version >= limit:
            raise ValueError(f"This sandbox is full ({limit:,} events): reset it to start again.")
        event = InterestPaid(amount=POISON_AMOUNT)
        recorded = store.append(sandbox, [event], state.version, f"poison-{uuid.uuid4().hex}")
        after = decider.evolve(state, event)
        if is_due(state.version, after.version, sandbox.snapshot_interval):
            store.save_snapshot(sandbox, after, "auto")
        live.after_commit(sandbox.pk, "command", write_version=after.version, projects_at_once=False)
    return event_view(recorded[0])


def start_rebuild(sandbox: Sandbox) -> Progress:
    """Blue/green: build generation g+1 from position 0 while g keeps serving; the projector swaps it in.
    Raises RebuildBusy when too many rebuilds run at once (lab.rebuild.MAX_CONCURRENT_REBUILDS), and
    lab.modes.ModeUnavailable in state-only mode (no log to rebuild from)."""
    modes.require_event_sourced(sandbox, "rebuild")
    with transaction.atomic():
        started = rebuild.begin(sandbox.pk)
        rebuild.announce(sandbox.pk, started)
    return started


def enable_retro_model(sandbox: Sandbox) -> None:
    """Add the "largest deposit" model; the projector builds it from position 0 while the balance keeps serving.
    Raises lab.modes.ModeUnavailable in state-only mode (no past to build it from)."""
    modes.require_event_sourced(sandbox, "retro")
    with transaction.atomic():
        Sandbox.objects.filter(pk=sandbox.pk).update(retro_model_enabled=True)
        Checkpoint.objects.get_or_create(sandbox_id=sandbox.pk, projection=LARGEST_DEPOSIT, generation=RETRO_GENERATION)
        LargestDepositView.objects.get_or_create(sandbox_id=sandbox.pk, generation=RETRO_GENERATION)
        live.after_commit(sandbox.pk, "settings")
