"""Applying a batch of events to one read model of one sandbox, exactly once.

`project` is the whole of it, used by the live projector and by a rebuild alike:
  1. read the checkpoint and the events after it (outside any transaction: events never change, and on SQLite
     an IMMEDIATE transaction would take the write lock just to find there is nothing to do);
  2. keep the prefix that is due (recorded_at + lag <= now), stopping at the first event that is not: positions
     are in commit order, so applying a later event first would move the checkpoint past an unapplied one;
  3. in ONE transaction: on PostgreSQL take the sandbox's advisory lock (two workers never apply the same
     sandbox), lock the sandbox row and check it is still in the state this batch was planned for, fold the due
     events onto the stored read model (lab.engine.projection), write it, and compare-and-set the checkpoint
     from the position read in step 1 (0 rows updated = another runner won: roll everything back).
Pushes to the pages come after the commit, from the projector (lab.projector).

A poison event (decoding or applying it raises) is recorded in DeadLetter and stops that projection of that
sandbox only; skipping it on its own would silently corrupt the read model. Only a learner's Skip
(lab.controls.skip_dead_letter) marks it skipped; from then on every projection of the sandbox, a rebuild's new
generation included, passes over that position: nothing is applied for it, but the checkpoint (position and
stream version) moves past it.
"""

# ruff: noqa: S608  (SQL is built only from model table names; every value is a parameter)
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from lab import read_rows, store
from lab.engine import projection as fold
from lab.engine.upcasting import decode
from lab.models import (
    BALANCE,
    LARGEST_DEPOSIT,
    BalanceView,
    Checkpoint,
    DeadLetter,
    HistoryLine,
    LargestDepositView,
    Sandbox,
)
from lab.store.values import db_time, db_uuid, py_json, py_time

log = logging.getLogger(__name__)

HISTORY = HistoryLine._meta.db_table

# (position, version, domain event or SKIPPED, recorded_at as the database returned it)
DueEvent = tuple[int, int, Any, Any]
SKIPPED = object()  # stands in for the event at a skipped position: it is neither decoded nor applied
# (position, version) of an applied event
Applied = tuple[int, int]

SANDBOX_FIELDS = (
    "lag_ms",
    "projector_paused",
    "projector_crashed_until",
    "retro_model_enabled",
    "live_generation",
    "rebuilding_generation",
    "retired_at",
    "replay_rate",
    "mode",
    "domain",
)


class Abort(Exception):
    """The transaction found the world changed under it (generation swapped, paused, crashed, CAS lost)."""


class Busy(Exception):
    """Another worker holds this sandbox's advisory lock; try again later."""


@dataclass
class Outcome:
    applied: int = 0
    position: int = 0
    version: int = 0
    more: bool = False
    next_due: float | None = None  # epoch seconds at which the first pending event falls due
    stalled: bool = False
    poison: tuple[int, str] | None = None


# Every step of the projector reads these (the sandbox's settings twice, the checkpoint, the dead letters): in SQL
# of their own, written out once, like lab.read_rows. Through the ORM, building the queries cost more than
# running them (the dead letters' Q objects most), and a step runs after every command.
SANDBOXES = Sandbox._meta.db_table
CHECKPOINTS = Checkpoint._meta.db_table
LETTERS = DeadLetter._meta.db_table
BALANCES = BalanceView._meta.db_table
_AMOUNT = BalanceView._meta.get_field("amount")  # its own rounding and type for the database (a DecimalField)
_SANDBOX_ROW = f"SELECT {', '.join(SANDBOX_FIELDS)} FROM {SANDBOXES} WHERE id = %s"
_FLAGS = ("projector_paused", "retro_model_enabled")  # SQLite returns 0 and 1
_TIMES = ("projector_crashed_until", "retired_at")  # SQLite returns text


def _one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()


def sandbox_row(sandbox_id: uuid.UUID, lock: bool = False) -> dict[str, Any] | None:
    """The sandbox's projection settings (SANDBOX_FIELDS); `lock` holds the row until the transaction ends
    (FOR UPDATE where the database has it: SQLite's IMMEDIATE transaction already holds every row)."""
    sql = _SANDBOX_ROW + (" FOR UPDATE" if lock and connection.features.has_select_for_update else "")
    found = _one(sql, [db_uuid(sandbox_id)])
    if found is None:
        return None
    row = dict(zip(SANDBOX_FIELDS, found, strict=True))
    for name in _FLAGS:
        row[name] = bool(row[name])
    for name in _TIMES:
        row[name] = py_time(row[name]) if row[name] is not None else None
    return row


def checkpoint(sandbox_id: uuid.UUID, projection: str, generation: int) -> tuple[int, int] | None:
    """(position, version) the projection's generation has applied up to, or None before its first batch."""
    return read_rows.checkpoint(sandbox_id, projection, generation)


def try_sandbox_lock(sandbox_id: uuid.UUID) -> None:
    """On PostgreSQL, scaled-out workers share the load by sandbox: whoever holds the lock applies it."""
    if connection.vendor != "postgresql":
        return  # SQLite has one writer at a time; the checkpoint CAS is all it needs
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [_advisory_key(sandbox_id)])
        if not cur.fetchone()[0]:
            raise Busy


def _advisory_key(sandbox_id: uuid.UUID) -> int:
    return (sandbox_id.int & ((1 << 62) - 1)) | (1 << 62)


def project(
    sandbox_id: uuid.UUID,
    projection: str,
    generation: int,
    *,
    lag: dt.timedelta | None,
    limit: int,
    rebuilding: bool = False,
    now: dt.datetime | None = None,
    hold_s: float = 0.0,
) -> Outcome:
    """Apply the due events after this projection's checkpoint, at most `limit`, in one transaction.

    `lag=None` applies every event, due or not (for callers that want the whole log at once).
    `rebuilding=True` guards on the sandbox still rebuilding into `generation`, otherwise on it being live.
    `hold_s` keeps the transaction open before commit: a fault-injection knob for the crash tests only.
    """
    cp = checkpoint(sandbox_id, projection, generation) or (0, 0)
    out = Outcome(position=cp[0], version=cp[1])
    stalled, skipped = dead_letters(sandbox_id, projection)
    if stalled:
        out.stalled = True
        return out
    rows = store.events_for_projection(sandbox_id, cp[0], limit + 1)
    out.more = len(rows) > limit
    cutoff = None if lag is None else (now or timezone.now()) - lag
    due = _due_prefix(rows[:limit], cutoff, lag, out, skipped)
    if due:
        try:
            with store.write_turn(), transaction.atomic():
                try_sandbox_lock(sandbox_id)
                _guard(sandbox_id, projection, generation, rebuilding)
                applied, poison = _apply(sandbox_id, projection, generation, cp, due)
                if hold_s:
                    time.sleep(hold_s)
        except Abort:
            out.more = False
            out.next_due = None
            return out
        if applied:
            out.applied = len(applied)
            out.position, out.version = applied[-1]
        if poison is not None:
            out.poison, out.more = poison, False
    if out.poison is not None:
        _stall(sandbox_id, projection, out)
    return out


def _due_prefix(
    rows: list[tuple[Any, ...]],
    cutoff: dt.datetime | None,
    lag: dt.timedelta | None,
    out: Outcome,
    skipped: frozenset[int] = frozenset(),
) -> list[DueEvent]:
    """The decoded events that are due, up to the first that is not (its due time goes into `out.next_due`) or
    the first that cannot be decoded (it goes into `out.poison`). A skipped position comes as SKIPPED, undecoded."""
    due: list[DueEvent] = []
    for position, version, event_type, schema_version, payload, recorded_at in rows:
        if cutoff is not None and lag is not None:
            at = py_time(recorded_at)
            if at > cutoff:
                out.next_due = (at + lag).timestamp()
                out.more = False
                break
        if position in skipped:
            due.append((position, version, SKIPPED, recorded_at))
            continue
        try:
            event = decode(event_type, schema_version, py_json(payload))
        except Exception as exc:  # any failure to read the event makes it a poison event
            out.poison = (position, f"{type(exc).__name__}: {exc}")
            out.more = False
            break
        due.append((position, version, event, recorded_at))
    return due


def _stall(sandbox_id: uuid.UUID, projection: str, out: Outcome) -> None:
    assert out.poison is not None
    with transaction.atomic():
        # Locked first: a Skip committing meanwhile is seen here (PostgreSQL re-reads a row it waited for).
        letter = (
            DeadLetter.objects.select_for_update()
            .filter(sandbox_id=sandbox_id, projection=projection, position=out.poison[0])
            .values_list("pk", "skipped_at")
            .first()
        )
        if letter is not None and letter[1] is not None:
            # A Skip landed between this batch's read of the skips and its failure: never reopen a skipped letter;
            # the next batch passes over it.
            out.more = True
            return
        DeadLetter.objects.update_or_create(
            sandbox_id=sandbox_id,
            projection=projection,
            position=out.poison[0],
            defaults={"error": out.poison[1][:2000], "resolved_at": None},
        )
    out.stalled = True
    out.next_due = None
    log.warning("sandbox %s: %s stalled at #%s: %s", sandbox_id, projection, *out.poison)


def dead_letters(sandbox_id: uuid.UUID, projection: str) -> tuple[bool, frozenset[int]]:
    """(whether this projection has an open dead letter, the positions skipped in this sandbox), in one query.

    A skip holds for every projection of the sandbox: the learner moved that event to the dead-letter list, so
    the retroactive model and a rebuild leave it out too rather than stalling on it again."""
    sql = (
        f"SELECT position, resolved_at, skipped_at, projection FROM {LETTERS} WHERE sandbox_id = %s "
        "AND ((projection = %s AND resolved_at IS NULL) OR skipped_at IS NOT NULL)"
    )
    with connection.cursor() as cur:
        cur.execute(sql, [db_uuid(sandbox_id), projection])
        rows = cur.fetchall()
    stalled, skipped = False, set()
    for position, resolved_at, skipped_at, name in rows:
        if skipped_at is not None:
            skipped.add(int(position))
        elif resolved_at is None and name == projection:
            stalled = True
    return stalled, frozenset(skipped)


def _guard(sandbox_id: uuid.UUID, projection: str, generation: int, rebuilding: bool) -> None:
    """Inside the batch's transaction: the sandbox is still in the state the batch was planned for."""
    row = sandbox_row(sandbox_id, lock=True)
    if row is None or row["retired_at"] is not None:
        raise Abort
    if rebuilding:
        if row["rebuilding_generation"] != generation:
            raise Abort
        return
    crashed = row["projector_crashed_until"]
    if row["projector_paused"] or (crashed is not None and crashed > timezone.now()):
        raise Abort
    # Only the balance model is rebuilt blue/green, so only its live generation moves (with each swap). The
    # retroactive model always builds into RETRO_GENERATION: held to the balance's generation, it stopped for
    # good after the first rebuild.
    if projection == BALANCE and row["live_generation"] != generation:
        raise Abort


def _cas_checkpoint(
    sandbox_id: uuid.UUID, projection: str, generation: int, old: tuple[int, int], new: tuple[int, int]
) -> None:
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {CHECKPOINTS} SET position = %s, version = %s, updated_at = %s "
            "WHERE sandbox_id = %s AND projection = %s AND generation = %s AND position = %s",
            [new[0], new[1], db_time(timezone.now()), db_uuid(sandbox_id), projection, generation, old[0]],
        )
        if cur.rowcount == 1:
            return
    if old[0] == 0:
        # No checkpoint row yet. The unique constraint makes a racing creator fail instead of both winning.
        exists = Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=generation)
        if not exists.exists():
            Checkpoint.objects.create(
                sandbox_id=sandbox_id, projection=projection, generation=generation, position=new[0], version=new[1]
            )
            return
    raise Abort  # someone else moved the checkpoint: our read is stale, roll back


def _apply(
    sandbox_id: uuid.UUID, projection: str, generation: int, cp: tuple[int, int], due: list[DueEvent]
) -> tuple[list[Applied], tuple[int, str] | None]:
    """Inside the transaction: fold `due` onto the stored view, write it, CAS the checkpoint.

    Returns the (position, version) of each applied event and the poison event that stopped the fold, if any.
    """
    if projection == BALANCE:
        return _apply_balance(sandbox_id, generation, cp, due)
    if projection == LARGEST_DEPOSIT:
        return _apply_largest(sandbox_id, generation, cp, due)
    raise ValueError(f"unknown projection {projection!r}")


def _stored_version_matches(stored: int, cp: tuple[int, int]) -> None:
    if stored != cp[1]:
        # View and checkpoint always commit together; disagreeing means another writer got in between.
        raise Abort


def _apply_balance(
    sandbox_id: uuid.UUID, generation: int, cp: tuple[int, int], due: list[DueEvent]
) -> tuple[list[Applied], tuple[int, str] | None]:
    stored = read_rows.balance(sandbox_id, generation)
    if stored is None:
        BalanceView.objects.create(sandbox_id=sandbox_id, generation=generation)
        stored = (fold.ZERO, 0)
    _stored_version_matches(stored[1], cp)
    state = fold.BalanceState(amount=stored[0], version=stored[1])
    lines: list[fold.Line] = []
    done: list[Applied] = []  # applied or passed over (skipped), in order
    poison = None
    for position, version, event, recorded_at in due:
        if event is SKIPPED:
            state = fold.pass_over(state, version)
            done.append((position, version))
            continue
        try:
            state, line = fold.apply_balance(state, event, position, version, recorded_at)
        except fold.ProjectionError as exc:
            poison = (position, f"ProjectionError: {exc}")
            break
        lines.append(line)
        done.append((position, version))
    if not done:
        return [], poison
    if lines:
        _insert_history(sandbox_id, generation, lines)
    with connection.cursor() as cur:
        cur.execute(
            f"UPDATE {BALANCES} SET amount = %s, version = %s WHERE sandbox_id = %s AND generation = %s",
            [_AMOUNT.get_db_prep_save(state.amount, connection), state.version, db_uuid(sandbox_id), generation],
        )
    _cas_checkpoint(sandbox_id, BALANCE, generation, cp, done[-1])
    return done, poison


def _insert_history(sandbox_id: uuid.UUID, generation: int, lines: list[fold.Line]) -> None:
    # Raw executemany: the ORM's per-object overhead alone would cap catch-up well below 25,000 events/s.
    # ON CONFLICT counts a second apply instead of failing, so a broken exactly-once shows up as
    # applied_count == 2 in the crash tests rather than hiding behind an IntegrityError. applied_at is this
    # batch's moment, inside its transaction (a second apply keeps the first): the chart's read line after a reload.
    sql = (
        f"INSERT INTO {HISTORY} (sandbox_id, generation, position, version, kind, amount, balance_after, "
        "recorded_at, applied_at, applied_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1) "
        f"ON CONFLICT (sandbox_id, generation, position) DO UPDATE SET applied_count = {HISTORY}.applied_count + 1"
    )
    sid = db_uuid(sandbox_id)
    adapt_time = connection.ops.adapt_datetimefield_value  # once: through the connection proxy it costs per line
    applied_at = adapt_time(timezone.now())
    params = [
        (
            sid,
            generation,
            line.position,
            line.version,
            line.kind,
            str(line.amount),
            str(line.balance_after),
            line.recorded_at if isinstance(line.recorded_at, str) else adapt_time(line.recorded_at),
            applied_at,
        )
        for line in lines
    ]
    with connection.cursor() as cur:
        cur.executemany(sql, params)


def _apply_largest(
    sandbox_id: uuid.UUID, generation: int, cp: tuple[int, int], due: list[DueEvent]
) -> tuple[list[Applied], tuple[int, str] | None]:
    stored = (
        LargestDepositView.objects.filter(sandbox_id=sandbox_id, generation=generation)
        .values_list("amount", "position", "deposits_seen", "version")
        .first()
    )
    if stored is None:
        LargestDepositView.objects.create(sandbox_id=sandbox_id, generation=generation)
        stored = (None, None, 0, 0)
    _stored_version_matches(stored[3], cp)
    state = fold.LargestDepositState(*stored)
    applied: list[Applied] = []
    poison = None
    for position, version, event, _recorded_at in due:
        if event is SKIPPED:
            state = fold.pass_over(state, version)
            applied.append((position, version))
            continue
        try:
            state = fold.apply_largest_deposit(state, event, position, version)
        except fold.ProjectionError as exc:
            poison = (position, f"ProjectionError: {exc}")
            break
        applied.append((position, version))
    if not applied:
        return [], poison
    LargestDepositView.objects.filter(sandbox_id=sandbox_id, generation=generation).update(
        amount=state.amount, position=state.position, deposits_seen=state.deposits_seen, version=state.version
    )
    _cas_checkpoint(sandbox_id, LARGEST_DEPOSIT, generation, cp, applied[-1])
    return applied, poison
