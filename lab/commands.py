"""Commands: what changes the write model. A deposit or withdrawal, and a snapshot on demand.

A command is one transaction (on SQLite a savepoint of a transaction shared with the commands that arrived
meanwhile: lab.store.group_commit): idempotency check, load (snapshot + tail), decide, append, snapshot, command
record. The projector's wake-up and the pushes to open pages go out only after that transaction committed
(lab.live.after_commit). Every function takes a Sandbox the caller resolved from the session.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction

from lab import live, modes, store
from lab.engine import decider
from lab.engine.messages import AccountState, Deposit, Deposited, Rejected, Withdraw, Withdrew
from lab.engine.replay import Loaded
from lab.engine.snapshots import fingerprint, is_due
from lab.engine.store import ConcurrencyError
from lab.engine.upcasting import UnreadableEvent
from lab.limits import check_command_id
from lab.models import Sandbox
from lab.timeline import event_view, snapshot_view
from lab.types import CommandOutcome, EventView, SnapshotView

KINDS: dict[str, type[Deposit] | type[Withdraw]] = {"deposit": Deposit, "withdraw": Withdraw}
RULE_CONCURRENCY = "concurrency"
RULE_LIMIT = "limit"
RULE_UNREADABLE = "unreadable"
RULE_ID_REUSED = "id_reused"


def send_command(
    sandbox: Sandbox,
    kind: str,
    amount: str | Decimal,
    command_id: str | None = None,
    expected_version: int | None = None,
) -> CommandOutcome:
    """Run one command. Never raises for a refused command: the outcome says why (a rule key, a message).

    `command_id` makes it idempotent (the same id returns the first outcome, appends nothing); `expected_version`
    is the version the learner saw, and a different head is a "concurrency" outcome. A text amount is parsed by
    the engine's rule; a Decimal goes to the decider as it is (the decider checks every amount it is given).
    Answered once the command's transaction committed; on SQLite that transaction is shared with the commands
    that arrived meanwhile (lab.store.group_commit), each in a savepoint of its own.
    """
    command_id, parsed = _checked(kind, amount, command_id)
    if modes.is_state_only(sandbox):  # CQRS without event sourcing: the same rules, a row updated in place
        return modes.send_state_command(sandbox, kind, parsed, command_id, expected_version)
    try:
        return store.group_commit.run(_work(sandbox, kind, parsed, command_id, expected_version))
    except (ConcurrencyError, IntegrityError):
        return _after_conflict(sandbox, kind, parsed, command_id)


async def asend_command(
    sandbox: Sandbox,
    kind: str,
    amount: str | Decimal,
    command_id: str | None = None,
    expected_version: int | None = None,
) -> CommandOutcome:
    """`send_command` for an async view: it waits for the commit on the event loop, not in the one thread that
    runs sync views, so the commands of concurrent requests can share a commit."""
    begun = await sync_to_async(begin_command)(sandbox, kind, amount, command_id, expected_version)
    return await finish_command(begun)


@dataclass(frozen=True)
class BegunCommand:
    """A command handed to the group commit (`pending`), or already answered (`outcome`)."""

    sandbox: Sandbox
    kind: str
    parsed: Decimal | Rejected
    command_id: str
    pending: store.group_commit.Pending | None = None
    outcome: CommandOutcome | None = None


def begin_command(
    sandbox: Sandbox,
    kind: str,
    amount: str | Decimal,
    command_id: str | None = None,
    expected_version: int | None = None,
) -> BegunCommand:
    """The first half of `asend_command`, on a sync thread: an async view calls it in the same trip to a thread
    that read its form and sandbox, and awaits `finish_command` on the event loop. Each trip there and back
    costs the web process's one busy thread, the event loop's, about a tenth of a millisecond."""
    command_id, parsed = _checked(kind, amount, command_id)
    begun = BegunCommand(sandbox, kind, parsed, command_id)
    if modes.is_state_only(sandbox):
        return replace(begun, outcome=modes.send_state_command(sandbox, kind, parsed, command_id, expected_version))
    try:
        return replace(
            begun, pending=store.group_commit.submit(_work(sandbox, kind, parsed, command_id, expected_version))
        )
    except (ConcurrencyError, IntegrityError):  # run inline (PostgreSQL) and rolled back
        return replace(begun, outcome=_after_conflict(sandbox, kind, parsed, command_id))


async def finish_command(begun: BegunCommand) -> CommandOutcome:
    """The second half, on the event loop: the outcome once the command's commit is durable."""
    if begun.outcome is not None:
        return begun.outcome
    if begun.pending is None:  # begin_command sets one of the two
        raise RuntimeError("a begun command has neither an outcome nor a commit to wait for")
    try:
        return cast(CommandOutcome, await store.group_commit.wait(begun.pending))
    except (ConcurrencyError, IntegrityError):
        return await sync_to_async(_after_conflict)(begun.sandbox, begun.kind, begun.parsed, begun.command_id)


def _checked(kind: str, amount: str | Decimal, command_id: str | None) -> tuple[str, Decimal | Rejected]:
    if kind not in KINDS:
        raise ValueError(f"Unknown command {kind!r}: use deposit or withdraw.")
    command_id = check_command_id(command_id or uuid.uuid4().hex)
    return command_id, decider.parse_amount(amount) if isinstance(amount, str) else amount


def _work(
    sandbox: Sandbox, kind: str, parsed: Decimal | Rejected, command_id: str, expected_version: int | None
) -> Callable[[], CommandOutcome]:
    """The command's transaction (group_commit.run gives it one, or a savepoint of a shared one)."""

    def work() -> CommandOutcome:
        store.lock_for_append(sandbox)
        return _send_locked(sandbox, kind, parsed, command_id, expected_version)

    return work


def _after_conflict(sandbox: Sandbox, kind: str, parsed: Decimal | Rejected, command_id: str) -> CommandOutcome:
    """After the rollback: a twin request with the same id may have won; then its outcome is ours too."""
    first = store.command_outcome(sandbox, command_id)
    if first is not None:
        return _replayed_or_reused(sandbox, first, kind, parsed)
    now = store.head_version(sandbox)
    return _refused(RULE_CONCURRENCY, f"The account changed meanwhile (now v={now}): retry.", now)


def _send_locked(
    sandbox: Sandbox, kind: str, parsed: Decimal | Rejected, command_id: str, expected_version: int | None
) -> CommandOutcome:
    first = store.command_outcome(sandbox, command_id)
    if first is not None:
        return _replayed_or_reused(sandbox, first, kind, parsed)
    try:
        loaded = store.load_state(sandbox)
    except UnreadableEvent as exc:
        head = store.head_version(sandbox)
        return _refused(RULE_UNREADABLE, f"Rejected: the write model cannot load ({exc}).", head)
    state = loaded.state
    if expected_version is not None and expected_version != state.version:
        raise ConcurrencyError(sandbox.stream_id, expected_version, state.version)
    limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
    if state.version >= limit:
        return _refused(RULE_LIMIT, f"This sandbox is full ({limit:,} events): reset it to start again.", state.version)
    decision = parsed if isinstance(parsed, Rejected) else decider.decide(state, KINDS[kind](amount=parsed))
    store.record_load(sandbox, loaded)
    if isinstance(decision, Rejected):
        outcome = _record(sandbox, command_id, kind, accepted=False, message=f"Rejected: {decision.message}",
                          rule=decision.rule, version=state.version, positions=[], amount=parsed)  # fmt: skip
        return _outcome(outcome, [])
    return _append(sandbox, kind, command_id, loaded, decision)


def _append(
    sandbox: Sandbox, kind: str, command_id: str, loaded: Loaded, decision: list[Deposited | Withdrew]
) -> CommandOutcome:
    state = loaded.state
    # Inside the command's transaction, which took the sandbox's append lock first (_work) and is rolled back
    # whole when anything here raises: the append needs no savepoint or second lock of its own.
    recorded = store.append(sandbox, decision, state.version, command_id, caller_locked=True)
    new_state = decider.fold(decision, state)
    _snapshot_if_due(sandbox, loaded, state, new_state)
    message = f"{_describe(decision[-1])} → v={new_state.version}"
    outcome = _record(sandbox, command_id, kind, accepted=True, message=message, rule=None,
                      version=new_state.version, positions=[r.position for r in recorded],
                      amount=decision[-1].amount)  # fmt: skip
    # Open pages hold this push a moment for the projection when it is due at once (lag 0, projector running),
    # so one push shows both models at the new version instead of two racing the projector for the CPU.
    projects_at_once = sandbox.lag_ms == 0 and not sandbox.projector_paused and sandbox.projector_crashed_until is None
    live.after_commit(sandbox.pk, "command", write_version=new_state.version, projects_at_once=projects_at_once)
    return _outcome(outcome, [event_view(r) for r in recorded])


def _snapshot_if_due(sandbox: Sandbox, loaded: Loaded, state: AccountState, new_state: AccountState) -> None:
    if loaded.stale_snapshot_seen:
        # The newest snapshot no longer matches the code: lay a fresh one at the head we just computed.
        store.save_snapshot(sandbox, state, "replaced")
    if is_due(state.version, new_state.version, sandbox.snapshot_interval):
        store.save_snapshot(sandbox, new_state, "auto")


def _record(
    sandbox: Sandbox,
    command_id: str,
    kind: str,
    *,
    accepted: bool,
    message: str,
    rule: str | None,
    version: int,
    positions: list[int],
    amount: Decimal | Rejected,
) -> dict[str, Any]:
    """Keep the command's first outcome, so that a re-sent command id returns it and appends nothing."""
    outcome = {"accepted": accepted, "message": message, "rule": rule, "write_version": version, "positions": positions,
               "kind": kind, "amount": _amount_key(amount)}  # fmt: skip
    store.record_command(sandbox, command_id, kind, accepted, outcome)
    return outcome


def _describe(event: Deposited | Withdrew) -> str:
    verb = "Deposited" if isinstance(event, Deposited) else "Withdrew"
    return f"{verb} ${event.amount:,.2f}"


def _refused(rule: str, message: str, version: int) -> CommandOutcome:
    return CommandOutcome(
        accepted=False, message=message, rule=rule, events=[], write_version=version, last_position=None
    )


def _outcome(data: dict[str, Any], events: list[EventView], replayed: bool = False) -> CommandOutcome:
    positions = data.get("positions") or []
    return CommandOutcome(
        accepted=bool(data["accepted"]),
        message=str(data["message"]),
        rule=data.get("rule"),
        events=events,
        write_version=int(data["write_version"]),
        last_position=positions[-1] if positions else None,
        replayed=replayed,
    )


def _amount_key(amount: Decimal | Rejected) -> str | None:
    """The amount as a record compares it: 50, 50.0 and 50.00 are one amount; an unreadable one is None."""
    return None if isinstance(amount, Rejected) else format(amount.normalize(), "f")


def _replayed_or_reused(
    sandbox: Sandbox, first: dict[str, Any], kind: str, amount: Decimal | Rejected
) -> CommandOutcome:
    """The same id again: the first outcome if it is the same command; a refusal (409) if the id now carries a
    different one, which a retry never does (records from before kind and amount were kept compare nothing)."""
    if first.get("kind", kind) != kind or first.get("amount", _amount_key(amount)) != _amount_key(amount):
        was = f"{first['kind']} ${Decimal(first['amount']):,.2f}" if first.get("amount") else first.get("kind")
        return _refused(RULE_ID_REUSED, f"Refused: this command id was already used for another command ({was}); "
                        "a new command needs a new id.", store.head_version(sandbox))  # fmt: skip
    return _replayed(first)


def _replayed(data: dict[str, Any]) -> CommandOutcome:
    events = [event_view(r) for r in store.event_store.read_positions(data.get("positions") or [])]
    return _outcome(data, events, replayed=True)


def take_snapshot(sandbox: Sandbox) -> SnapshotView:
    """Snapshot the write model at its head now (replacing a stale one at the same version). State-only mode has
    nothing to snapshot (lab.modes.ModeUnavailable)."""
    modes.require_event_sourced(sandbox, "snapshot")
    with transaction.atomic():
        store.lock_for_append(sandbox)
        loaded = store.load_state(sandbox)
        if loaded.state.version == 0:
            raise ValueError("Nothing to snapshot yet: the account has no events.")
        store.save_snapshot(sandbox, loaded.state, "manual")
        store.record_load(sandbox, loaded)
        live.after_commit(sandbox.pk, "snapshot", wake=False)
    return snapshot_view(store.snapshot_at(sandbox, loaded.state.version), fingerprint())
