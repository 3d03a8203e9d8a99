"""The asynchronous projector: follows each sandbox's events and keeps its read models, exactly once.

One loop (`Projector`) serves both runtimes: embedded in daphne (started on the server's own event loop by
`start_embedded_projector`) and as `manage.py run_projector` worker processes in the scaled-out mode.

How a turn works for one sandbox (`step`), following shared/design/event-store.md mechanisms 2, 5, 6 and 13:
  1. read the checkpoint and the events after it (outside any transaction: events never change, and on SQLite
     an IMMEDIATE transaction would take the write lock just to find there is nothing to do);
  2. keep the prefix that is due (recorded_at + lag <= now), stopping at the first event that is not: positions
     are in commit order, so applying a later event first would move the checkpoint past an unapplied one;
  3. in ONE transaction: lock the sandbox row (and a PostgreSQL advisory lock, so two workers never apply the
     same sandbox), fold the due events onto the stored read model, write it, and compare-and-set the
     checkpoint from the position read in step 1 (0 rows updated = another runner won: roll everything back);
  4. only after the commit, push "projected" to the sandbox's Channels group. Pushes are hints (at least once);
     the page re-reads, so a lost push loses nothing.

A poison event (decode or apply raises) is recorded in DeadLetter and stops that projection of that sandbox
only; skipping it would silently corrupt the read model. Scheduling is round-robin with bounded batches, so a
busy sandbox gets one batch per turn like everyone else. The loop sleeps until the next event falls due, or
until an append wakes it (`notify_appended`), with a slow full scan as the fallback.

All database work runs on one dedicated thread with its own connection: never on the event loop (which would
block every socket), and never in asgiref's thread-sensitive executor (where it would queue behind requests).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from redis.exceptions import TimeoutError as RedisTimeoutError

from concepts.engine import projection as fold
from concepts.engine.upcasting import decode

log = logging.getLogger("concepts.projector")

T = TypeVar("T")

BALANCE = "balance"
LARGEST_DEPOSIT = "largest_deposit"
RETRO_GENERATION = 1  # the retroactive model is never rebuilt blue/green; it always builds into generation 1

BATCH = 500  # events per sandbox per turn: big enough to catch up fast, small enough to stay fair
REBUILD_BATCH = 2000  # a rebuild turn holds the projector thread ~30 ms: others stay within their lag budget
FALLBACK_POLL_S = 5.0  # only for wake-ups that got lost (another process without Redis, a missed notify)
PUSH_TIMEOUT_S = 1.0  # a hung channel layer must not stall projection (reliability P6)
MAX_BACKOFF_S = 10.0
WAKEUP_GROUP = "projector-wakeup"
LISTENER_STOP_TRIES = 10
LISTENER_STOP_WAIT_S = 0.2


class _Abort(Exception):
    """The transaction found the world changed under it (generation swapped, paused, crashed, CAS lost)."""


class _Busy(Exception):
    """Another worker holds this sandbox's advisory lock; try again later."""


# --- Small database helpers ------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    from concepts.models import BalanceView, Checkpoint, HistoryLine, Sandbox, StoredEvent

    q = connection.ops.quote_name
    return {
        "event": q(StoredEvent._meta.db_table),
        "sandbox": q(Sandbox._meta.db_table),
        "checkpoint": q(Checkpoint._meta.db_table),
        "history": q(HistoryLine._meta.db_table),
        "balance": q(BalanceView._meta.db_table),
    }


def _uuid(value: object) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _uuid_param(value: uuid.UUID) -> Any:
    # SQLite keeps UUIDs as 32 hex characters, PostgreSQL as a native uuid.
    return value if connection.features.has_native_uuid_field else value.hex


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def _as_payload(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _advisory_key(sandbox_id: uuid.UUID) -> int:
    return (sandbox_id.int & ((1 << 62) - 1)) | (1 << 62)


def _try_sandbox_lock(sandbox_id: uuid.UUID) -> None:
    """On PostgreSQL, scaled-out workers share the load by sandbox: whoever holds the lock applies it."""
    if connection.vendor != "postgresql":
        return  # SQLite has one writer at a time; the checkpoint CAS is all it needs
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [_advisory_key(sandbox_id)])
        if not cur.fetchone()[0]:
            raise _Busy


SANDBOX_FIELDS = (
    "lag_ms",
    "projector_paused",
    "projector_crashed_until",
    "retro_model_enabled",
    "live_generation",
    "rebuilding_generation",
    "retired_at",
)


def _sandbox_row(sandbox_id: uuid.UUID, lock: bool = False) -> dict[str, Any] | None:
    from concepts.models import Sandbox

    qs = Sandbox.objects.filter(pk=sandbox_id)
    if lock:
        qs = qs.select_for_update()
    return qs.values(*SANDBOX_FIELDS).first()


def _checkpoint(sandbox_id: uuid.UUID, projection: str, generation: int) -> tuple[int, int] | None:
    from concepts.models import Checkpoint

    row = (
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=generation)
        .values_list("position", "version")
        .first()
    )
    return (int(row[0]), int(row[1])) if row else None


def _fetch_events(sandbox_id: uuid.UUID, after: int, limit: int, upto: int | None = None) -> list[tuple]:
    t = _tables()
    # Only table names (from model metadata, quoted) are interpolated into SQL here; every value is a parameter.
    sql = (
        f"SELECT position, version, event_type, schema_version, payload, recorded_at FROM {t['event']} "  # noqa: S608
        "WHERE sandbox_id = %s AND position > %s"
    )
    params: list[Any] = [_uuid_param(sandbox_id), after]
    if upto is not None:
        sql += " AND position <= %s"
        params.append(upto)
    sql += " ORDER BY position LIMIT %s"
    params.append(limit)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _has_open_dead_letter(sandbox_id: uuid.UUID, projection: str) -> bool:
    from concepts.models import DeadLetter

    return DeadLetter.objects.filter(sandbox_id=sandbox_id, projection=projection, resolved_at__isnull=True).exists()


def _record_dead_letter(sandbox_id: uuid.UUID, projection: str, position: int, error: str) -> None:
    from concepts.models import DeadLetter

    with transaction.atomic():
        DeadLetter.objects.update_or_create(
            sandbox_id=sandbox_id,
            projection=projection,
            position=position,
            defaults={"error": error[:2000], "resolved_at": None},
        )


# --- One projection of one sandbox ------------------------------------------------------------------


@dataclass
class Outcome:
    applied: int = 0
    position: int = 0
    version: int = 0
    more: bool = False
    next_due: float | None = None  # epoch seconds at which the first pending event falls due
    stalled: bool = False
    poison: tuple[int, str] | None = None


def project(
    sandbox_id: uuid.UUID,
    projection: str,
    generation: int,
    *,
    lag: dt.timedelta | None,
    limit: int,
    upto: int | None = None,
    rebuilding: bool = False,
    now: dt.datetime | None = None,
    hold_s: float = 0.0,
) -> Outcome:
    """Apply the due events after this projection's checkpoint, at most `limit`, in one transaction.

    `lag=None` applies everything up to `upto` (a rebuild replays what the live model already shows).
    `rebuilding=True` guards on the sandbox still rebuilding into `generation`, otherwise on it being live.
    `hold_s` keeps the transaction open before commit: a fault-injection knob for the crash tests only.
    """
    cp = _checkpoint(sandbox_id, projection, generation) or (0, 0)
    out = Outcome(position=cp[0], version=cp[1])
    if _has_open_dead_letter(sandbox_id, projection):
        out.stalled = True
        return out
    rows = _fetch_events(sandbox_id, cp[0], limit + 1, upto)
    out.more = len(rows) > limit
    rows = rows[:limit]
    cutoff = None if lag is None else (now or timezone.now()) - lag
    due: list[tuple[int, int, Any, Any]] = []
    for position, version, event_type, schema_version, payload, recorded_at in rows:
        if cutoff is not None:
            at = _as_datetime(recorded_at)
            if at > cutoff:
                out.next_due = (at + lag).timestamp()  # type: ignore[operator]
                out.more = False
                break
        try:
            event = decode(event_type, schema_version, _as_payload(payload))
        except Exception as exc:  # any failure to read the event makes it a poison event
            out.poison = (position, f"{type(exc).__name__}: {exc}")
            out.more = False
            break
        due.append((position, version, event, recorded_at))
    if due:
        try:
            with transaction.atomic():
                _try_sandbox_lock(sandbox_id)
                _guard(sandbox_id, generation, rebuilding)
                applied, poison = _apply(sandbox_id, projection, generation, cp, due)
                if hold_s:
                    time.sleep(hold_s)
        except _Abort:
            out.more = False
            out.next_due = None
            return out
        if applied:
            out.applied = len(applied)
            out.position, out.version = applied[-1][0], applied[-1][1]
        if poison is not None:
            out.poison, out.more = poison, False
    if out.poison is not None:
        _record_dead_letter(sandbox_id, projection, *out.poison)
        out.stalled = True
        out.next_due = None
        log.warning("sandbox %s: %s stalled at #%s: %s", sandbox_id, projection, *out.poison)
    return out


def _guard(sandbox_id: uuid.UUID, generation: int, rebuilding: bool) -> None:
    row = _sandbox_row(sandbox_id, lock=True)
    if row is None or row["retired_at"] is not None:
        raise _Abort
    if rebuilding:
        if row["rebuilding_generation"] != generation:
            raise _Abort
        return
    crashed = row["projector_crashed_until"]
    if row["projector_paused"] or (crashed is not None and crashed > timezone.now()):
        raise _Abort
    if row["live_generation"] != generation:
        raise _Abort


def _cas_checkpoint(
    sandbox_id: uuid.UUID, projection: str, generation: int, old: tuple[int, int], new: tuple[int, int]
) -> None:
    from concepts.models import Checkpoint

    updated = Checkpoint.objects.filter(
        sandbox_id=sandbox_id, projection=projection, generation=generation, position=old[0]
    ).update(position=new[0], version=new[1], updated_at=timezone.now())
    if updated == 1:
        return
    if old[0] == 0:
        # No checkpoint row yet. The unique constraint makes a racing creator fail instead of both winning.
        exists = Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=projection, generation=generation)
        if not exists.exists():
            Checkpoint.objects.create(
                sandbox_id=sandbox_id, projection=projection, generation=generation, position=new[0], version=new[1]
            )
            return
    raise _Abort  # someone else moved the checkpoint: our read is stale, roll back


def _apply(
    sandbox_id: uuid.UUID,
    projection: str,
    generation: int,
    cp: tuple[int, int],
    due: list[tuple[int, int, Any, Any]],
) -> tuple[list[tuple[int, int]], tuple[int, str] | None]:
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
        raise _Abort


def _apply_balance(
    sandbox_id: uuid.UUID, generation: int, cp: tuple[int, int], due: list[tuple[int, int, Any, Any]]
) -> tuple[list[tuple[int, int]], tuple[int, str] | None]:
    from concepts.models import BalanceView

    row = BalanceView.objects.filter(sandbox_id=sandbox_id, generation=generation).values_list("amount", "version")
    stored = row.first()
    if stored is None:
        BalanceView.objects.create(sandbox_id=sandbox_id, generation=generation)
        stored = (fold.ZERO, 0)
    _stored_version_matches(stored[1], cp)
    state = fold.BalanceState(amount=stored[0], version=stored[1])
    lines: list[fold.Line] = []
    poison = None
    for position, version, event, recorded_at in due:
        try:
            state, line = fold.apply_balance(state, event, position, version, recorded_at)
        except fold.ProjectionError as exc:
            poison = (position, f"ProjectionError: {exc}")
            break
        lines.append(line)
    if not lines:
        return [], poison
    _insert_history(sandbox_id, generation, lines)
    BalanceView.objects.filter(sandbox_id=sandbox_id, generation=generation).update(
        amount=state.amount, version=state.version
    )
    _cas_checkpoint(sandbox_id, BALANCE, generation, cp, (lines[-1].position, lines[-1].version))
    return [(line.position, line.version) for line in lines], poison


def _insert_history(sandbox_id: uuid.UUID, generation: int, lines: list[fold.Line]) -> None:
    # Raw executemany: the ORM's per-object overhead alone would cap catch-up well below the 25,000 events/s
    # target. ON CONFLICT counts a second apply instead of failing, so a broken exactly-once shows up as
    # applied_count == 2 in the crash tests rather than hiding behind an IntegrityError.
    t = _tables()
    sid = _uuid_param(sandbox_id)
    ops = connection.ops
    sql = (
        f"INSERT INTO {t['history']} (sandbox_id, generation, position, version, kind, amount, balance_after, "  # noqa: S608
        "recorded_at, applied_count) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 1) "
        f"ON CONFLICT (sandbox_id, generation, position) DO UPDATE SET applied_count = {t['history']}.applied_count + 1"
    )
    params = [
        (
            sid,
            generation,
            line.position,
            line.version,
            line.kind,
            str(line.amount),
            str(line.balance_after),
            line.recorded_at if isinstance(line.recorded_at, str) else ops.adapt_datetimefield_value(line.recorded_at),
        )
        for line in lines
    ]
    with connection.cursor() as cur:
        cur.executemany(sql, params)


def _apply_largest(
    sandbox_id: uuid.UUID, generation: int, cp: tuple[int, int], due: list[tuple[int, int, Any, Any]]
) -> tuple[list[tuple[int, int]], tuple[int, str] | None]:
    from concepts.models import LargestDepositView

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
    applied: list[tuple[int, int]] = []
    poison = None
    for position, version, event, _recorded_at in due:
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


# --- Rebuild (blue/green) --------------------------------------------------------------------------


def rebuild_step(sandbox_id: uuid.UUID, limit: int = REBUILD_BATCH) -> tuple[Outcome, bool]:
    """Advance the sandbox's rebuild by one batch; swap it live once it has caught up. Returns (outcome, swapped).

    The new generation replays from position 0 up to the live checkpoint (not further: it must show what the
    live model shows), chasing it while the live projector keeps moving; the swap happens in a transaction that
    holds the live checkpoint still, so no event can land between "caught up" and "now serving".
    """
    row = _sandbox_row(sandbox_id)
    if row is None or row["rebuilding_generation"] is None:
        return Outcome(), False
    new_gen, live_gen = row["rebuilding_generation"], row["live_generation"]
    live_cp = _checkpoint(sandbox_id, BALANCE, live_gen) or (0, 0)
    out = project(sandbox_id, BALANCE, new_gen, lag=None, limit=limit, upto=live_cp[0], rebuilding=True)
    if out.stalled or out.more:
        return out, False
    swapped = _try_swap(sandbox_id, new_gen, live_gen)
    if not swapped:
        out.more = True  # the live model moved on meanwhile: chase it next turn
    return out, swapped


def _try_swap(sandbox_id: uuid.UUID, new_gen: int, live_gen: int) -> bool:
    from concepts.models import BalanceView, Checkpoint, HistoryLine, Sandbox

    with transaction.atomic():
        _try_sandbox_lock(sandbox_id)
        row = _sandbox_row(sandbox_id, lock=True)
        if row is None or row["rebuilding_generation"] != new_gen or row["live_generation"] != live_gen:
            return False
        live_cp = (
            Checkpoint.objects.select_for_update()
            .filter(sandbox_id=sandbox_id, projection=BALANCE, generation=live_gen)
            .values_list("position", flat=True)
            .first()
        ) or 0
        new_cp = _checkpoint(sandbox_id, BALANCE, new_gen) or (0, 0)
        if new_cp[0] != live_cp:
            return False
        if not BalanceView.objects.filter(sandbox_id=sandbox_id, generation=new_gen).exists():
            BalanceView.objects.create(sandbox_id=sandbox_id, generation=new_gen)
        if not Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=BALANCE, generation=new_gen).exists():
            Checkpoint.objects.create(sandbox_id=sandbox_id, projection=BALANCE, generation=new_gen)
        Sandbox.objects.filter(pk=sandbox_id).update(live_generation=new_gen, rebuilding_generation=None)
        # The old generation goes with the swap. A reader that picked it just before re-checks the live
        # generation after reading and retries, so it never shows an emptied view.
        for model in (HistoryLine, BalanceView):
            model.objects.filter(sandbox_id=sandbox_id, generation__lt=new_gen).delete()
        Checkpoint.objects.filter(sandbox_id=sandbox_id, projection=BALANCE, generation__lt=new_gen).delete()
    return True


# --- A whole turn for one sandbox -----------------------------------------------------------------


@dataclass
class StepResult:
    sandbox_id: uuid.UUID
    applied: int = 0
    more: bool = False
    next_due: float | None = None
    pushes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def step(
    sandbox_id: object, *, batch: int = BATCH, rebuild_batch: int = REBUILD_BATCH, hold_s: float = 0.0
) -> StepResult:
    """One bounded turn for one sandbox: live balance, then rebuild, then the retroactive model."""
    sid = _uuid(sandbox_id)
    result = StepResult(sid)
    row = _sandbox_row(sid)
    if row is None or row["retired_at"] is not None:
        return result
    now = timezone.now()
    crashed = row["projector_crashed_until"]
    if crashed is not None:
        if crashed > now:
            result.next_due = crashed.timestamp()
            return result
        from concepts.models import Sandbox

        # The "restart" after a teaching crash: nothing to recover but the checkpoint, which is in the database.
        if Sandbox.objects.filter(pk=sid, projector_crashed_until=crashed).update(projector_crashed_until=None):
            result.pushes.append(("settings", {"projector": "restarted"}))
    if row["projector_paused"]:
        return result
    lag = dt.timedelta(milliseconds=row["lag_ms"])

    out = project(sid, BALANCE, row["live_generation"], lag=lag, limit=batch, now=now, hold_s=hold_s)
    result.applied += out.applied
    result.more |= out.more
    result.next_due = _earliest(result.next_due, out.next_due)
    if out.applied:
        result.pushes.append(("projected", {"read_version": out.version, "position": out.position}))
    if out.poison is not None:
        result.pushes.append(("stalled", {"position": out.poison[0], "error": out.poison[1]}))

    if row["rebuilding_generation"] is not None:
        rb, swapped = rebuild_step(sid, rebuild_batch)
        result.more |= rb.more
        if rb.applied or swapped:
            total = (_checkpoint(sid, BALANCE, row["live_generation"]) or (0, 0))[1]
            result.pushes.append(
                ("rebuild", {"done": rb.version, "total": max(total, rb.version), "running": not swapped})
            )
        if swapped:
            result.pushes.append(("projected", {"read_version": rb.version, "position": rb.position, "swapped": True}))

    if row["retro_model_enabled"]:
        retro = project(sid, LARGEST_DEPOSIT, RETRO_GENERATION, lag=lag, limit=batch, now=now)
        result.more |= retro.more
        result.next_due = _earliest(result.next_due, retro.next_due)
        if retro.applied:
            result.pushes.append(("retro", {"done": retro.version, "position": retro.position}))
        if retro.poison is not None:
            result.pushes.append(("stalled", {"projection": LARGEST_DEPOSIT, "position": retro.poison[0]}))
    return result


def pending_sandboxes() -> list[uuid.UUID]:
    """Sandboxes that may have work: events past the live checkpoint, a rebuild, a retro model, a crash to end."""
    t = _tables()
    sql = f"""
        SELECT s.id FROM {t["sandbox"]} s
        WHERE s.retired_at IS NULL AND (
            s.rebuilding_generation IS NOT NULL
            OR s.projector_crashed_until IS NOT NULL
            OR (s.projector_paused = %s AND EXISTS (
                SELECT 1 FROM {t["event"]} e WHERE e.sandbox_id = s.id AND e.position > COALESCE((
                    SELECT c.position FROM {t["checkpoint"]} c
                    WHERE c.sandbox_id = s.id AND c.projection = %s AND c.generation = s.live_generation), 0)))
            OR (s.retro_model_enabled = %s AND EXISTS (
                SELECT 1 FROM {t["event"]} e WHERE e.sandbox_id = s.id AND e.position > COALESCE((
                    SELECT c.position FROM {t["checkpoint"]} c
                    WHERE c.sandbox_id = s.id AND c.projection = %s AND c.generation = %s), 0)))
        )
    """  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql, [False, BALANCE, True, LARGEST_DEPOSIT, RETRO_GENERATION])
        return [_uuid(r[0]) for r in cur.fetchall()]


def _close_connection() -> None:
    # A function, not `connection.close`: the proxy must resolve to this thread's connection when called.
    connection.close()


# --- The loop --------------------------------------------------------------------------------------


_LOCAL: set[Projector] = set()  # projectors running in this process, for notify_appended
_LOCAL_LOCK = threading.Lock()


class Projector:
    """The projector loop. Run it with `await projector.run()`; stop it with `projector.stop()`."""

    def __init__(
        self,
        *,
        batch: int = BATCH,
        rebuild_batch: int = REBUILD_BATCH,
        fallback_poll_s: float = FALLBACK_POLL_S,
        hold_s: float = 0.0,
        listen_for_wakeups: bool | None = None,
        name: str = "projector",
    ) -> None:
        self.batch = batch
        self.rebuild_batch = rebuild_batch
        self.fallback_poll_s = fallback_poll_s
        self.hold_s = hold_s
        self.name = name
        # Across processes only when the layer crosses processes; the in-memory layer cannot.
        self.listen_for_wakeups = bool(settings.REDIS_URL) if listen_for_wakeups is None else listen_for_wakeups
        self.applied_total = 0
        self._due: dict[uuid.UUID, float] = {}  # insertion order = round-robin order
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"reqflow-{name}")
        self._loop: asyncio.AbstractEventLoop | None = None
        # asyncio.Event binds to a loop only when first awaited, so creating it here is safe.
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._scan_now = True
        self._failures: dict[uuid.UUID | None, int] = {}
        self._last_error_log = 0.0

    # Called from any thread.
    def notify(self, sandbox_id: object | None = None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        sid = None if sandbox_id is None else _uuid(sandbox_id)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._mark(sid)
        else:
            try:
                loop.call_soon_threadsafe(self._mark, sid)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def stop(self) -> None:
        """Ask the loop to finish its current step and exit. Safe from any thread, before or during run()."""
        self._stopping = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wakeup.set()
        else:
            try:
                loop.call_soon_threadsafe(self._wakeup.set)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _mark(self, sid: uuid.UUID | None) -> None:
        if sid is None:
            self._scan_now = True
        else:
            self._due[sid] = 0.0
        self._wakeup.set()

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            close_old_connections()  # drops a connection that broke (errors, a restarted database)
            try:
                return fn(*args, **kwargs)
            finally:
                # This thread belongs to the projector and lives as long as its loop, so it keeps its connection
                # from step to step instead of closing it by CONN_MAX_AGE = 0: a new connection per step (connect,
                # pragmas, a cold page cache) cost a third of catch-up speed. run() closes it on the way out.
                connection.close_at = None

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        with _LOCAL_LOCK:
            _LOCAL.add(self)
        listener = asyncio.ensure_future(self._listen()) if self.listen_for_wakeups else None
        last_scan = -1e9
        try:
            while not self._stopping:
                self._wakeup.clear()
                if self._scan_now or time.monotonic() - last_scan >= self.fallback_poll_s:
                    self._scan_now = False
                    last_scan = time.monotonic()
                    try:
                        for sid in await self._db(pending_sandboxes):
                            self._due.setdefault(sid, 0.0)
                    except Exception:
                        self._log_failure(None)
                        await self._db(_close_connection)
                if await self.turn():
                    await asyncio.sleep(0)  # let sockets and requests breathe between full batches
                    continue
                timeout = self.fallback_poll_s - (time.monotonic() - last_scan)
                if self._due:
                    timeout = min(timeout, min(self._due.values()) - time.time())
                if timeout > 0:
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
                    except TimeoutError:
                        pass
        finally:
            if listener is not None:
                await _stop_listener(listener)
            with _LOCAL_LOCK:
                _LOCAL.discard(self)
            # The dedicated thread owns a connection; close it there, or PostgreSQL keeps the session open.
            await self._loop.run_in_executor(self._executor, _close_connection)
            self._executor.shutdown(wait=True)

    async def turn(self) -> bool:
        """Give every sandbox that is due one bounded step, in round-robin order. True if any has more."""
        now = time.time()
        ready = [sid for sid, due in self._due.items() if due <= now]
        more = False
        for sid in ready:
            if self._stopping:
                break
            self._due.pop(sid, None)  # re-inserted at the back if it has more: that is the round robin
            try:
                result = await self._db(
                    step, sid, batch=self.batch, rebuild_batch=self.rebuild_batch, hold_s=self.hold_s
                )
            except Exception:
                failures = self._log_failure(sid)
                self._due[sid] = time.time() + min(MAX_BACKOFF_S, 0.1 * 2**failures)
                await self._db(_close_connection)
                continue
            self._failures.pop(sid, None)
            self._failures.pop(None, None)
            self.applied_total += result.applied
            for reason, fields in result.pushes:
                await self._publish(sid, reason, fields)
            if result.more:
                self._due[sid] = 0.0
                more = True
            elif result.next_due is not None:
                self._due[sid] = min(self._due.get(sid, result.next_due), result.next_due)
        return more

    async def _publish(self, sid: uuid.UUID, reason: str, fields: dict[str, Any]) -> None:
        from concepts import live

        try:
            await asyncio.wait_for(live.apublish(sid, reason, **fields), PUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("push %s to sandbox %s timed out", reason, sid)

    async def _listen(self) -> None:
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return
        channel = None
        while not self._stopping:
            try:
                if channel is None:
                    channel = await layer.new_channel()
                    await layer.group_add(WAKEUP_GROUP, channel)
                message = await layer.receive(channel)
                self._mark(_uuid(message["sandbox"]) if message.get("sandbox") else None)
            except asyncio.CancelledError:
                if channel is not None:
                    try:
                        await asyncio.wait_for(layer.group_discard(WAKEUP_GROUP, channel), PUSH_TIMEOUT_S)
                    except Exception:  # noqa: S110 (the group entry expires on its own)
                        pass
                raise
            except RedisTimeoutError:
                # Nothing arrived within a read timeout: an idle listener, not a failure. Same channel, go again.
                continue
            except Exception:
                log.warning("projector wake-up listener failed; retrying", exc_info=True)
                channel = None
                await asyncio.sleep(1.0)

    def _log_failure(self, sid: uuid.UUID | None) -> int:
        failures = self._failures.get(sid, 0) + 1
        self._failures[sid] = failures
        if time.monotonic() - self._last_error_log > 10:  # rate-limited: a down database must not flood logs
            self._last_error_log = time.monotonic()
            log.exception("projector %s: step for %s failed (%d in a row)", self.name, sid or "scan", failures)
        return failures


# --- Process-level entry points --------------------------------------------------------------------

_EMBEDDED: Projector | None = None
_EMBEDDED_TASK: asyncio.Task[None] | None = None
_EMBEDDED_LOCK = threading.Lock()


def start_embedded_projector() -> Projector:
    """Start the in-process projector on the running event loop (daphne's), once per process."""
    global _EMBEDDED, _EMBEDDED_TASK
    loop = asyncio.get_running_loop()
    with _EMBEDDED_LOCK:
        if _EMBEDDED is None or _EMBEDDED_TASK is None or _EMBEDDED_TASK.done():
            _EMBEDDED = Projector(name="embedded")
            _EMBEDDED_TASK = loop.create_task(_EMBEDDED.run(), name="reqflow-embedded-projector")
            log.info("embedded projector started (pid %s)", os.getpid())
        return _EMBEDDED


async def stop_embedded_projector() -> None:
    """Stop and forget the embedded projector (tests; daphne simply exits)."""
    global _EMBEDDED, _EMBEDDED_TASK
    with _EMBEDDED_LOCK:
        projector, task = _EMBEDDED, _EMBEDDED_TASK
        _EMBEDDED = _EMBEDDED_TASK = None
    if projector is not None and task is not None:
        projector.stop()
        await task


def embedded_projector() -> Projector | None:
    return _EMBEDDED


def notify_appended(sandbox_id: object) -> None:
    """Wake the projector after an append committed. Thread-safe; cheap when no projector runs here."""
    with _LOCAL_LOCK:
        local = list(_LOCAL)
    for projector in local:
        projector.notify(sandbox_id)
    if settings.REDIS_URL and not (local and settings.EMBEDDED_PROJECTOR):
        _send_wakeup(sandbox_id)


def _send_wakeup(sandbox_id: object) -> None:
    """Tell worker processes (scaled-out mode) through the channel layer. Best effort: the fallback scan
    catches anything a lost wake-up leaves behind."""
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "projector.wakeup", "sandbox": str(sandbox_id)}

    async def send() -> None:
        try:
            await asyncio.wait_for(layer.group_send(WAKEUP_GROUP, message), PUSH_TIMEOUT_S)
        except Exception:
            log.warning("projector wake-up could not be sent", exc_info=True)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(send())
        _PENDING_SENDS.add(task)
        task.add_done_callback(_PENDING_SENDS.discard)
    else:
        async_to_sync(send)()


_PENDING_SENDS: set[asyncio.Task[None]] = set()


async def _stop_listener(listener: asyncio.Task[None]) -> None:
    """Cancel the wake-up listener and wait for it, bounded.

    One cancel is not always enough: on Python 3.11, asyncio.wait_for (inside redis-py's connect) swallows a
    cancellation that arrives just as the connection completes, and the listener then sat in Redis' blocking
    receive for good, so stopping the projector hung. Cancelling again reaches it at its next wait.
    """
    for _ in range(LISTENER_STOP_TRIES):
        listener.cancel()
        done, _ = await asyncio.wait({listener}, timeout=LISTENER_STOP_WAIT_S)
        if done:
            if not listener.cancelled() and listener.exception() is not None:
                log.debug("the wake-up listener ended with %r", listener.exception())
            return
    log.warning("the projector's wake-up listener did not stop; leaving it to the event loop's shutdown")


def drain(sandbox_ids: Iterable[object] | None = None, *, batch: int = BATCH, max_steps: int = 1_000_000) -> int:
    """Synchronously apply everything due (no waiting for lag): for management commands and benchmarks."""
    ids = [_uuid(s) for s in sandbox_ids] if sandbox_ids is not None else pending_sandboxes()
    applied = 0
    queue = list(ids)
    steps = 0
    while queue and steps < max_steps:
        sid = queue.pop(0)
        result = step(sid, batch=batch)
        applied += result.applied
        steps += 1
        if result.more:
            queue.append(sid)
    return applied
