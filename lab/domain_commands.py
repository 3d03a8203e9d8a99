"""A command to a domain lab: one transaction under the sandbox's append lock, like the account's (lab.commands).

Idempotency check (the command id's first outcome, from the same CommandRecord table), load (the newest usable
snapshot plus the tail), decide, append with the loaded version as the expected one (optimistic concurrency per
stream), an automatic snapshot when one is due, the command record. The projector's wake-up and the pushes to open
pages go out only after the commit (lab.live.after_commit), under the same reasons the account lab sends.

Refusals by a rule are recorded (the same id is refused again, even if the state changed since); refusals that
depend on timing ("concurrency", "limit", "unreadable") and bad input are not, so the same id can try again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from lab import live, store
from lab.domain_inputs import BadInput, command_key, expected_version, parse
from lab.domain_summaries import summary
from lab.domain_types import DomainEventRow, DomainOutcome
from lab.engine.domains import DOMAINS
from lab.engine.domains.spec import Domain
from lab.engine.messages import Rejected
from lab.engine.snapshots import is_due
from lab.engine.store import ConcurrencyError, RecordedEvent
from lab.engine.upcasting import UnreadableEvent
from lab.limits import check_command_id
from lab.models import Sandbox

RULE_INPUT = "input"
RULE_CONCURRENCY = "concurrency"
RULE_LIMIT = "limit"
RULE_UNREADABLE = "unreadable"
RULE_ID_REUSED = "id_reused"


def send(sandbox: Sandbox, domain_name: str, fields: Mapping[str, str], command_id: str) -> DomainOutcome:
    """lab.domain_labs.send_domain_command: never raises for a learner's input; the outcome says why."""
    if sandbox.domain != domain_name or domain_name not in DOMAINS:
        raise ValueError(f"sandbox {sandbox.pk} runs {sandbox.domain!r}, not {domain_name!r}")
    domain = DOMAINS[domain_name]
    try:
        command_id = check_command_id(command_id)
        key = command_key(domain_name, fields)
        expected = expected_version(key)
    except BadInput as exc:
        return _refused(sandbox, RULE_INPUT, str(exc), field=exc.field)
    except ValueError as exc:
        return _refused(sandbox, RULE_INPUT, str(exc), field="command_id")
    try:
        with transaction.atomic():
            store.lock_for_append(sandbox)
            return _send_locked(sandbox, domain, key, command_id, expected)
    except (ConcurrencyError, IntegrityError):
        # After the rollback: a twin request with the same id may have won; then its outcome is ours too.
        first = store.command_outcome(sandbox, command_id)
        if first is not None:
            return _replayed_or_reused(sandbox, domain, first, key)
        head = store.head_version(sandbox)
        return _refused(sandbox, RULE_CONCURRENCY, f"The stream changed meanwhile (now v={head}): retry.", head)


def _send_locked(
    sandbox: Sandbox, domain: Domain, key: dict[str, str], command_id: str, expected: int | None
) -> DomainOutcome:
    first = store.command_outcome(sandbox, command_id)
    if first is not None:
        return _replayed_or_reused(sandbox, domain, first, key)
    try:
        loaded = store.load_domain(sandbox, domain)
    except UnreadableEvent as exc:
        return _refused(sandbox, RULE_UNREADABLE, f"Rejected: the write model cannot load ({exc}).")
    state = loaded.state
    if expected is not None and expected != state.version:
        raise ConcurrencyError(sandbox.stream_id, expected, state.version)
    limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
    if state.version >= limit:
        return _refused(sandbox, RULE_LIMIT, f"This lab is full ({limit:,} events).", state.version)
    try:
        command = parse(domain.name, key, state.version)
    except BadInput as exc:
        return _refused(sandbox, RULE_INPUT, str(exc), state.version, field=exc.field)
    decision = domain.decide(state, command)
    if isinstance(decision, Rejected):
        message = f"Rejected: {decision.message}"
        _record(sandbox, command_id, key, ok=False, message=message, rule=decision.rule, version=state.version)
        return DomainOutcome(ok=False, message=message, version=state.version, rule=decision.rule)
    return _append(sandbox, domain, key, command_id, loaded, decision)


def _append(
    sandbox: Sandbox, domain: Domain, key: dict[str, str], command_id: str, loaded: store.DomainLoad, events: Any
) -> DomainOutcome:
    state = loaded.state
    recorded = store.append_domain(sandbox, domain, events, state.version, command_id)
    new_state = domain.fold(events, state)
    if loaded.stale_snapshot_seen:  # a newer snapshot no longer fits the code: lay a fresh one where we loaded
        store.save_domain_snapshot(sandbox, domain, state, "replaced")
    if is_due(state.version, new_state.version, sandbox.snapshot_interval):
        store.save_domain_snapshot(sandbox, domain, new_state, "auto")
    rows = event_rows(domain, recorded)
    message = f"{'; '.join(row.summary for row in rows)} → v={new_state.version}"
    positions = [r.position for r in recorded]
    _record(sandbox, command_id, key, ok=True, message=message, rule=None, version=new_state.version,
            positions=positions)  # fmt: skip
    at_once = sandbox.lag_ms == 0 and not sandbox.projector_paused and sandbox.projector_crashed_until is None
    live.after_commit(sandbox.pk, "command", write_version=new_state.version, projects_at_once=at_once)
    return DomainOutcome(ok=True, message=message, events=tuple(rows), version=new_state.version)


def event_rows(domain: Domain, recorded: Sequence[RecordedEvent]) -> list[DomainEventRow]:
    return [
        DomainEventRow(
            r.version,
            r.event_type,
            describe(domain, r.event_type, r.schema_version, r.payload, r.version),
            r.recorded_at,
            r.position,
        )
        for r in recorded
    ]


def describe(domain: Domain, event_type: str, schema_version: int, payload: Any, version: int) -> str:
    """The event's one line, or why it cannot be read (a poison event still shows in the log)."""
    try:
        return summary(store.decode_row(domain, event_type, schema_version, payload, version))
    except UnreadableEvent as exc:
        return f"unreadable: {exc}"


def _record(
    sandbox: Sandbox,
    command_id: str,
    key: dict[str, str],
    *,
    ok: bool,
    message: str,
    rule: str | None,
    version: int,
    positions: list[int] | None = None,
) -> None:
    outcome = {"ok": ok, "message": message, "rule": rule, "version": version, "positions": positions or [],
               "command": key}  # fmt: skip
    store.record_command(sandbox, command_id, key["kind"], ok, outcome)


def _replayed_or_reused(sandbox: Sandbox, domain: Domain, first: dict[str, Any], key: dict[str, str]) -> DomainOutcome:
    if first.get("command") != key:
        return _refused(sandbox, RULE_ID_REUSED, "Refused: this command id was already used for another command; "
                        "a new command needs a new id.")  # fmt: skip
    recorded = store.event_store.read_positions(first.get("positions") or [])
    return DomainOutcome(
        ok=bool(first["ok"]),
        message=str(first["message"]),
        events=tuple(event_rows(domain, recorded)),
        version=int(first["version"]),
        rule=first.get("rule"),
        replayed=True,
    )


def _refused(
    sandbox: Sandbox, rule: str, message: str, version: int | None = None, *, field: str | None = None
) -> DomainOutcome:
    head = store.head_version(sandbox) if version is None else version
    return DomainOutcome(ok=False, message=message, version=head, rule=rule, field=field)
