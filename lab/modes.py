"""The sandbox's mode: event-sourced (the default) or state-only, which is CQRS without event sourcing.

In state-only mode the write model keeps only its current state, an updated row (Sandbox.state_balance and
state_version): a command decides with the same rules (lab.engine.decider), then overwrites the row and appends
nothing. The projector copies that row to the read model once the oldest uncopied change is as old as the lag
(lab.copying), so the lag and stale reads remain. Replay, time travel, the event log, snapshots, rebuilds, the
retroactive read model, the poison event and export need a log, and refuse with a reason (UNAVAILABLE).

Switching mode starts a fresh sandbox in the other mode (a reset, so Undo brings the old one back).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from lab import live, sandboxes, store
from lab.engine import decider
from lab.engine.messages import AccountState, CommandEvent, Deposit, Deposited, Rejected, Withdraw
from lab.models import EVENT_SOURCED, MODES, STATE_ONLY, Sandbox
from lab.types import CommandOutcome, Reasons

__all__ = ["EVENT_SOURCED", "MODES", "STATE_ONLY"]  # re-exported: the names callers of this module use

MODE_MESSAGE = f"The mode must be {EVENT_SOURCED} or {STATE_ONLY}."
LABELS = {EVENT_SOURCED: "Event-sourced", STATE_ONLY: "State-only (CQRS without event sourcing)"}

# What state-only mode cannot do, and why: each sentence is shown to the learner as it is.
UNAVAILABLE = {
    "replay": "There is no event log to replay in state-only mode: the write model keeps only its current state.",
    "time_travel": (
        "There is no past to travel to in state-only mode: each command overwrites the write model's state, so "
        "the earlier versions are gone."
    ),
    "log": "There is no event log in state-only mode: a command updates the write model's row and appends nothing.",
    "rebuild": (
        "There is nothing to rebuild from in state-only mode: without an event log the read model can only be "
        "copied from the current state, which the projector already does."
    ),
    "retro": (
        "A new read model cannot start from the past in state-only mode: the deposits it would need were never "
        "kept, only the current balance."
    ),
    "snapshot": (
        "There is nothing to snapshot in state-only mode: a snapshot caches a fold of the event log, and the write "
        "model is already just its current state."
    ),
    "poison": "There is no event log to append an event to in state-only mode.",
    "schema": "There are no stored events to version in state-only mode: the write model is one row.",
    "export": "There is no event log to export in state-only mode: switch back to event-sourced to record one.",
}


class ModeUnavailable(ValueError):
    """A feature the sandbox's mode does not have; the text says why. A ValueError, so a control shows it."""

    def __init__(self, feature: str) -> None:
        self.feature = feature
        super().__init__(UNAVAILABLE[feature])


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise ValueError(MODE_MESSAGE)
    return str(mode)


def is_state_only(sandbox: Sandbox) -> bool:
    return sandbox.mode == STATE_ONLY


def require_event_sourced(sandbox: Sandbox, feature: str) -> None:
    """Raise ModeUnavailable(feature) when the sandbox runs state-only."""
    if is_state_only(sandbox):
        raise ModeUnavailable(feature)


def unavailable(sandbox: Sandbox) -> Reasons:
    """What the sandbox's mode cannot do, feature -> why (empty in event-sourced mode)."""
    return Reasons(UNAVAILABLE) if is_state_only(sandbox) else Reasons()


def switch_mode(request: HttpRequest, mode: str) -> Sandbox | None:
    """Start a fresh sandbox in `mode` (a reset: Undo brings the current one back). None when the current sandbox
    already runs that mode: nothing changes."""
    mode = check_mode(mode)
    if sandboxes.sandbox_to_show(request).mode == mode:  # a blank sandbox runs the default mode
        return None
    return sandboxes.reset_sandbox(request, mode=mode)


# --- The state-only write model ---------------------------------------------------------------------------------


def send_state_command(
    sandbox: Sandbox, kind: str, parsed: Decimal | Rejected, command_id: str, expected_version: int | None
) -> CommandOutcome:
    """A command in state-only mode: the same rules, then the row is overwritten (nothing is appended).

    One transaction holding the sandbox row: the command-id check, the decision, the update and the command
    record. `expected_version` different from the row's version is a "concurrency" outcome, as with events.
    """
    with transaction.atomic():
        row = Sandbox.objects.select_for_update().filter(pk=sandbox.pk).values("state_balance", "state_version").get()
        first = store.command_outcome(sandbox, command_id)
        if first is not None:
            return _outcome(first, replayed=True)
        state = AccountState(balance=row["state_balance"], version=row["state_version"])
        if expected_version is not None and expected_version != state.version:
            message = f"The account changed meanwhile (now v={state.version}): retry."
            return _outcome(_refused("concurrency", message, state.version))
        limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
        if state.version >= limit:
            message = f"This sandbox is full ({limit:,} commands): reset it to start again."
            return _outcome(_refused("limit", message, state.version))
        if isinstance(parsed, Rejected):
            decision: list[CommandEvent] | Rejected = parsed
        else:
            decision = decider.decide(state, Deposit(amount=parsed) if kind == "deposit" else Withdraw(amount=parsed))
        if isinstance(decision, Rejected):
            outcome = _refused(decision.rule, f"Rejected: {decision.message}", state.version)
        else:
            outcome = _overwrite(sandbox, state, decision)
        store.record_command(sandbox, command_id, kind, bool(outcome["accepted"]), outcome)
    return _outcome(outcome)


def _overwrite(sandbox: Sandbox, state: AccountState, decision: list[CommandEvent]) -> dict[str, Any]:
    """Write the decided state over the row, and mark the change for the copy (kept if one is already pending)."""
    new = decider.fold(decision, state)
    now = Value(timezone.now(), output_field=DateTimeField())
    Sandbox.objects.filter(pk=sandbox.pk).update(
        state_balance=new.balance, state_version=new.version, state_pending_since=Coalesce("state_pending_since", now)
    )
    live.after_commit(sandbox.pk, "command", write_version=new.version, projects_at_once=False)
    verb = "Deposited" if isinstance(decision[-1], Deposited) else "Withdrew"
    text = f"{verb} ${decision[-1].amount:,.2f} → v={new.version} (the row now holds ${new.balance:,.2f})"
    return {"accepted": True, "message": text, "rule": None, "write_version": new.version, "positions": []}


def _refused(rule: str, message: str, version: int) -> dict[str, Any]:
    return {"accepted": False, "message": message, "rule": rule, "write_version": version, "positions": []}


def _outcome(data: dict[str, Any], replayed: bool = False) -> CommandOutcome:
    return CommandOutcome(
        accepted=bool(data["accepted"]),
        message=str(data["message"]),
        rule=data.get("rule"),
        events=[],
        write_version=int(data["write_version"]),
        last_position=None,
        replayed=replayed,
    )
