"""The read models of the domain labs (lab.domain_labs), kept by the same projector loop as the account's.

A domain sandbox's read models are the engine's pure folds (`Domain.read_models`), stored as JSON, one
DomainReadModel row each. The projector's step for such a sandbox (`step_domain`, called by lab.projector) applies
the same rules as lab.projections does for the balance:
  - only the prefix of events that is due (recorded_at + lag <= now) is applied, so the version counter catches up
    visibly; pause and the teaching crash stop it; the sandbox row is locked and re-checked in the batch;
  - exactly once: the read-model rows and their checkpoint (Checkpoint, projection DOMAIN_LIVE) are written in ONE
    transaction, the checkpoint by compare-and-set from the position the batch was planned from, and every stored
    row must be at the checkpoint's version (a row and its checkpoint always commit together);
  - an event that cannot be decoded or applied is a dead letter that stalls the projection (lab.projections'
    DeadLetter rows, so Retry and Skip work alike); a skipped position is passed over.
The read models a learner adds after the fact (the ledger's auditor: ADDED_LATER) have a checkpoint of their own
(DOMAIN_LATE), start from zero when turned on (Sandbox.retro_model_enabled) and catch up over the whole log at the
sandbox's replay pace, as the account's retroactive model does.

`rebuild_live` is a plain fold-and-swap in one transaction: the live read models folded again from the first event
up to their checkpoint, replacing the stored rows at once (a domain log is capped at LAB_MAX_EVENTS_PER_SANDBOX
events, so one fold is bounded; the account's blue/green rebuild exists to be watched, which this one is not).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lab import domain_state_cache as state_cache
from lab import store
from lab.engine.domains import DOMAINS, codec
from lab.engine.domains.spec import Domain, ReadModel
from lab.engine.projection import ProjectionError
from lab.engine.upcasting import UnreadableEvent
from lab.models import DOMAIN_LATE, DOMAIN_LIVE, Checkpoint, DeadLetter, DomainReadModel
from lab.projections import Abort, Outcome, _cas_checkpoint, dead_letters, sandbox_row, try_sandbox_lock
from lab.rebuild import pace
from lab.store.values import py_json, py_time

GENERATION = 1  # domain read models are never rebuilt blue/green, so they keep one generation
# Read models added after the fact, per domain: off until a learner turns them on, then caught up from zero.
ADDED_LATER: Mapping[str, tuple[str, ...]] = {"ledger": ("auditor",)}


class StepSink(Protocol):
    """What the projector's StepResult offers a step (lab.projector): this module fills it in."""

    sandbox_id: uuid.UUID
    applied: int
    more: bool
    next_due: float | None
    pushes: list[tuple[str, dict[str, Any]]]


def late_names(domain: Domain) -> tuple[str, ...]:
    return ADDED_LATER.get(domain.name, ())


def live_names(domain: Domain) -> tuple[str, ...]:
    return tuple(name for name in domain.read_models if name not in late_names(domain))


def step_domain(result: StepSink, row: Mapping[str, Any], lag: dt.timedelta, now: dt.datetime, batch: int) -> None:
    """One bounded turn for a domain sandbox: its live read models, then the late ones when they are on."""
    domain = DOMAINS[row["domain"]]
    out = project_domain(result.sandbox_id, domain, DOMAIN_LIVE, lag=lag, limit=batch, now=now)
    _merge(result, out, "projected", DOMAIN_LIVE)
    if row["retro_model_enabled"] and late_names(domain):
        allowed = pace(result.sandbox_id, DOMAIN_LATE, GENERATION, row["replay_rate"], batch)
        late = project_domain(result.sandbox_id, domain, DOMAIN_LATE, lag=lag, limit=allowed.limit, now=now)
        allowed.hold(late)
        _merge(result, late, "retro", DOMAIN_LATE)


def _merge(result: StepSink, out: Outcome, reason: str, projection: str) -> None:
    result.applied += out.applied
    result.more |= out.more
    if out.next_due is not None:
        result.next_due = out.next_due if result.next_due is None else min(result.next_due, out.next_due)
    if out.applied:
        key = "read_version" if reason == "projected" else "done"
        result.pushes.append((reason, {key: out.version, "position": out.position}))
    if out.poison is not None:
        result.pushes.append(("stalled", {"projection": projection, "position": out.poison[0]}))


def names_of(domain: Domain, projection: str) -> tuple[str, ...]:
    return late_names(domain) if projection == DOMAIN_LATE else live_names(domain)


def project_domain(
    sandbox_id: uuid.UUID,
    domain: Domain,
    projection: str,
    *,
    lag: dt.timedelta | None,
    limit: int,
    now: dt.datetime | None = None,
) -> Outcome:
    """Apply the due events after the projection's checkpoint to its read models, at most `limit`, exactly once."""
    cp = store_checkpoint(sandbox_id, projection)
    out = Outcome(position=cp[0], version=cp[1])
    stalled, skipped = dead_letters(sandbox_id, projection)
    if stalled:
        out.stalled = True
        return out
    rows = store.events_for_projection(sandbox_id, cp[0], limit + 1)
    out.more = len(rows) > limit
    cutoff = None if lag is None else (now or timezone.now()) - lag
    due = _due(domain, rows[:limit], cutoff, lag, out, skipped)
    if due:
        try:
            with transaction.atomic():
                try_sandbox_lock(sandbox_id)
                _guard(sandbox_id)
                applied = _apply(sandbox_id, domain, projection, cp, due, out)
        except Abort:
            out.more, out.next_due = False, None
            return out
        if applied:
            out.applied = len(applied)
            out.position, out.version = applied[-1]
    if out.poison is not None:
        _stall(sandbox_id, projection, out)
    return out


def store_checkpoint(sandbox_id: uuid.UUID, projection: str) -> tuple[int, int]:
    """(position, version) the projection has applied up to; (0, 0) before its first batch."""
    found = (
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=GENERATION)
        .values_list("position", "version")
        .first()
    )
    return (int(found[0]), int(found[1])) if found else (0, 0)


# (position, version, domain event or None for a skipped position)
Due = tuple[int, int, Any]


def _due(
    domain: Domain,
    rows: list[tuple[Any, ...]],
    cutoff: dt.datetime | None,
    lag: dt.timedelta | None,
    out: Outcome,
    skipped: frozenset[int],
) -> list[Due]:
    """The decoded due events, up to the first that is not due yet (its due time goes into out.next_due) or the
    first that cannot be decoded (out.poison)."""
    due: list[Due] = []
    for position, version, event_type, schema_version, payload, recorded_at in rows:
        if cutoff is not None and lag is not None:
            at = py_time(recorded_at)
            if at > cutoff:
                out.next_due, out.more = (at + lag).timestamp(), False
                break
        if position in skipped:
            due.append((position, version, None))
            continue
        try:
            due.append((position, version, domain.decode(event_type, schema_version, py_json(payload))))
        except Exception as exc:  # any failure to read the event makes it a poison event
            out.poison, out.more = (position, f"{type(exc).__name__}: {exc}"), False
            break
    return due


def _guard(sandbox_id: uuid.UUID) -> None:
    row = sandbox_row(sandbox_id, lock=True)
    if row is None or row["retired_at"] is not None or row["projector_paused"]:
        raise Abort
    crashed = row["projector_crashed_until"]
    if crashed is not None and crashed > timezone.now():
        raise Abort


def _apply(
    sandbox_id: uuid.UUID, domain: Domain, projection: str, cp: tuple[int, int], due: list[Due], out: Outcome
) -> list[tuple[int, int]]:
    """Inside the transaction: fold `due` onto the stored rows, write them, CAS the checkpoint."""
    models = {name: domain.read_models[name] for name in names_of(domain, projection)}
    states = stored_states(sandbox_id, models, expect_version=cp[1])
    done: list[tuple[int, int]] = []
    for position, version, event in due:
        try:
            states = {name: _fold_one(model, states[name], event, version) for name, model in models.items()}
        except Exception as exc:  # a fold that raises (ProjectionError or worse) is a poison event, not a crash
            out.poison, out.more = (position, f"{type(exc).__name__}: {exc}"), False
            break
        done.append((position, version))
    if done:
        write_states(sandbox_id, models, states)
        _cas_checkpoint(sandbox_id, projection, GENERATION, cp, done[-1])
    return done


def _fold_one(model: ReadModel, state: Any, event: Any, version: int) -> Any:
    if event is None:  # a skipped position: passed over, but the version moves past it
        return dataclasses.replace(state, version=version)
    return model.apply_at(state, event, version)


def stored_states(
    sandbox_id: uuid.UUID, models: Mapping[str, ReadModel], expect_version: int | None = None, *, fresh: bool = False
) -> dict[str, Any]:
    """The stored state of each read model (its initial state when it has no row yet). With `expect_version`,
    inside a batch: a row at another version means another writer got in between (Abort). A row unchanged since
    this process last decoded or wrote it comes from lab.domain_state_cache instead of being decoded again, unless
    `fresh` (a rebuild compares with exactly what is stored)."""
    rows = DomainReadModel.objects.filter(sandbox_id=sandbox_id, name__in=list(models))
    stamps = {name: (version, at) for name, version, at in rows.values_list("name", "version", "updated_at")}
    found = {name: None if fresh else state_cache.get(sandbox_id, name, *stamp) for name, stamp in stamps.items()}
    missing = [name for name, state in found.items() if state is None]
    for name, data in rows.filter(name__in=missing).values_list("name", "state") if missing else ():
        found[name] = codec.from_dict(models[name].state_type, py_json(data))
        state_cache.put(sandbox_id, name, *stamps[name], found[name])
    states: dict[str, Any] = {}
    for name, model in models.items():
        state = found.get(name)
        states[name] = model.initial() if state is None else state
        if expect_version is not None and states[name].version != expect_version:
            raise Abort
    return states


def write_states(sandbox_id: uuid.UUID, models: Mapping[str, ReadModel], states: Mapping[str, Any]) -> None:
    for name in models:
        state = states[name]
        row, _ = DomainReadModel.objects.update_or_create(
            sandbox_id=sandbox_id, name=name, defaults={"state": codec.to_dict(state), "version": state.version}
        )
        # Cached as written; if this transaction rolls back, the row keeps its old stamp and the entry is unused.
        state_cache.put(sandbox_id, name, state.version, row.updated_at, state)


def _stall(sandbox_id: uuid.UUID, projection: str, out: Outcome) -> None:
    assert out.poison is not None
    with transaction.atomic():
        skipped_at = (
            DeadLetter.objects.select_for_update()
            .filter(sandbox_id=sandbox_id, projection=projection, position=out.poison[0])
            .values_list("skipped_at", flat=True)
            .first()
        )
        if skipped_at is not None:
            out.more = True  # a Skip landed meanwhile: never reopen it; the next batch passes over it
            return
        DeadLetter.objects.update_or_create(
            sandbox_id=sandbox_id,
            projection=projection,
            position=out.poison[0],
            defaults={"error": out.poison[1][:2000], "resolved_at": None},
        )
    out.stalled, out.next_due = True, None


@dataclass(frozen=True)
class Rebuilt:
    version: int
    events: int  # events folded
    equal: bool  # the rebuilt read models equal the ones they replaced


def rebuild_live(sandbox_id: uuid.UUID, domain: Domain) -> Rebuilt:
    """Fold the live read models again from the first event up to their checkpoint and swap them in, in one
    transaction under the sandbox row's lock (a projector batch planned meanwhile loses its checkpoint CAS).
    Raises ValueError when an event cannot be folded (the dead letter says which)."""
    models = {name: domain.read_models[name] for name in live_names(domain)}
    with transaction.atomic():
        try_sandbox_lock(sandbox_id)
        sandbox_row(sandbox_id, lock=True)
        position, version = store_checkpoint(sandbox_id, DOMAIN_LIVE)
        before = stored_states(sandbox_id, models, fresh=True)
        _, skipped = dead_letters(sandbox_id, DOMAIN_LIVE)
        rows = store.events_for_projection(sandbox_id, 0, settings.LAB_MAX_EVENTS_PER_SANDBOX + 1)
        states = {name: model.initial() for name, model in models.items()}
        folded = 0
        for row_position, row_version, event_type, schema, payload, _at in rows:
            if row_position > position:
                break
            try:
                event = None if row_position in skipped else domain.decode(event_type, schema, py_json(payload))
                states = {name: _fold_one(m, states[name], event, row_version) for name, m in models.items()}
            except (UnreadableEvent, ProjectionError) as exc:
                raise ValueError(f"event v={row_version} cannot be folded: {exc}") from exc
            folded += 1
        write_states(sandbox_id, models, states)
    return Rebuilt(version, folded, equal=all(states[name] == before[name] for name in models))


def open_dead_letter(sandbox_id: uuid.UUID) -> str | None:
    """Why a domain lab's read models are stalled (the oldest open dead letter), or None."""
    letter = (
        DeadLetter.objects.filter(
            sandbox_id=sandbox_id,
            projection__in=(DOMAIN_LIVE, DOMAIN_LATE),
            resolved_at__isnull=True,
            skipped_at__isnull=True,
        )
        .order_by("position")
        .values_list("projection", "position", "error")
        .first()
    )
    return None if letter is None else f"{letter[0]} stalled at #{letter[1]}: {letter[2]}"
