"""Missions: short goals in order, each checked against the sandbox's real state, not against clicks.

A check reads what the store and the read models hold (events, versions, generations, the retroactive model, the
deposit schema, skipped dead letters) and the few facts no table keeps (lab.facts: a stale answer, a wait that came
back fresh, a crash, a time travel). A mission is done as soon as its check holds, and stays done: it is kept per
account, or for a visitor per browser session (MissionDone), because a reset or a scenario starts a new sandbox.

`mission_progress` costs three queries (the sandbox row with its checkpoints, one aggregate of its events, its facts
together with the missions already met), plus one insert the first time a mission is met, so a push can afford it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from lab import facts, store
from lab.models import (
    BALANCE,
    LARGEST_DEPOSIT,
    RETRO_GENERATION,
    Checkpoint,
    DeadLetter,
    MissionDone,
    Sandbox,
    SandboxFact,
)
from lab.sandboxes import is_blank
from lab.scenarios import catalog
from lab.store import EventTally
from lab.store.values import db_uuid, py_time, py_uuid
from lab.tools import CORE_TOOLS
from lab.types import MissionProgress, MissionView

STALE_LAG_MS = 5000  # mission 2 asks for a lag of 5 s or more
TRAVEL_VERSION = 3  # mission 7: the balance at v=3
DONE_MARK = "mission-done"  # marks a MissionDone row in the one query that reads facts and missions met


@dataclass(frozen=True)
class Situation:
    """What the checks read, gathered in three queries."""

    tally: EventTally
    read_version: int
    retro_version: int
    lag_ms: int
    schema: int
    retro_enabled: bool
    live_generation: int
    rebuilding: bool
    crashed_until: dt.datetime | None
    skipped_letter: bool
    facts: dict[str, facts.Fact]
    now: dt.datetime
    user_id: Any = None  # whose sandbox it is: the account, else the visitor's browser session
    session_key: str = ""

    @property
    def caught_up(self) -> bool:
        return self.tally.head >= 1 and self.read_version == self.tally.head


def _crash_recovered(s: Situation) -> bool:
    """Crashed, a command landed after the crash began, the projector is back, and it applied everything."""
    crash = s.facts.get(facts.CRASH)
    if crash is None or s.tally.last_recorded_at is None or s.tally.last_recorded_at < crash.at:
        return False
    return (s.crashed_until is None or s.crashed_until <= s.now) and s.caught_up


def _stale_read(s: Situation) -> bool:
    fact = s.facts.get(facts.STALE_READ)
    return fact is not None and fact.value >= STALE_LAG_MS


@dataclass(frozen=True)
class Mission:
    id: str
    title: str
    goal: str
    hint: str
    tools: tuple[str, ...]
    check: Callable[[Situation], bool]


MISSIONS: tuple[Mission, ...] = (
    Mission("watch-it-trail", "Watch the read model trail",
            "Deposit any amount and watch the read model catch up with the write model a moment later.",
            "Type 50 and press Deposit. The write model changes at once; the read model keeps the old balance until "
            "the projector applies the event, after the lag.",
            ("command", "event-log", "query"), lambda s: s.tally.deposits >= 1 and s.caught_up),
    Mission("stale-read", "Get a stale answer",
            "Set the lag to 5 s or more, deposit, and query before the projector catches up: the answer is stale.",
            "Drag Lag to 5 s, deposit, and press Query balance at once. The answer says which version it read, "
            "and that the write model is ahead.",
            ("lag",), _stale_read),
    Mission("read-your-writes", "Read your own write",
            "Deposit, tick Read your writes and query: the query waits for the projector and answers fresh.",
            "Set the lag to about 3 s (the query waits at most 5 s), deposit, tick Read your writes, then query. It "
            "waits until the read model has your command's version.",
            ("read-your-writes",), lambda s: facts.FRESH_AFTER_WAIT in s.facts),
    Mission("crash", "Crash the projector, lose nothing",
            "Crash the projector, deposit while it is down, and watch the read model catch up after the restart.",
            "Press Crash the projector, then Deposit: commands still succeed. The projector restarts from its "
            "checkpoint and applies what it missed, each event exactly once.",
            ("projector",), _crash_recovered),
    Mission("rebuild", "Rebuild the read model from the log",
            "Rebuild the read model: a new one replays every event from the log and takes over once caught up.",
            "Open Rebuild and press Rebuild read model; a slow pace shows each event being folded. The old model "
            "answers queries until the swap.",
            ("rebuild", "snapshots"),
            lambda s: s.tally.head >= 1 and s.live_generation > 1 and not s.rebuilding),
    Mission("retro-model", "Add a read model after the fact",
            "Add the “largest deposit” read model and let it catch up over the deposits already in the log.",
            "Open Largest deposit and press Add. It starts from event #1, although those deposits were made before "
            "it existed.",
            ("retro",),
            lambda s: s.retro_enabled and s.tally.deposits >= 1 and s.retro_version == s.tally.head),
    Mission("time-travel", "Find the balance at v=3",
            "Use time travel to show the balance as it was right after the third event.",
            "Make at least three commands, open Time travel and move the slider to v=3: the state is folded from "
            "the log (or a snapshot), not read from the read model.",
            ("time-travel", "replay"), lambda s: f"{facts.TRAVEL_PREFIX}{TRAVEL_VERSION}" in s.facts),
    Mission("schema-v2", "Ship deposit v2, read an old event",
            "Ship deposit v2 while the log holds v1 deposits, then read an old deposit in the event log.",
            "Deposit once, then open Schema and press Ship deposit v2. An old deposit keeps its stored v1 payload "
            "and is upcast to v2 each time it is read; nothing is rewritten.",
            ("schema",), lambda s: s.schema == 2 and s.tally.v1_deposits >= 1),
    Mission("poison", "Get past a poison event",
            "Append a poison event, watch the projector stall on it, and skip it so the read model flows again.",
            "Press Append a poison event and wait for “Stalled at event #n”. Retry fails the same way; Skip moves "
            "it to the dead-letter list and the events after it flow again.",
            ("poison",), lambda s: s.skipped_letter and s.caught_up),
)  # fmt: skip
MISSION_IDS = tuple(m.id for m in MISSIONS)


def mission_progress(sandbox: Sandbox) -> MissionProgress:
    """Each mission with whether it is done (its check holds now, or it was met before by this account or browser
    session), the one to do next, and the tools the page shows. Records missions met for the first time; a blank
    sandbox (none created yet: lab.sandboxes.sandbox_to_show) records nothing and shows what its owner met before."""
    blank = is_blank(sandbox)
    situation, met_before = _blank_situation(sandbox) if blank else _situation(sandbox)
    done = {m.id for m in MISSIONS if m.id in met_before or m.check(situation)}
    if not blank:
        _remember(situation, done - met_before)
    views = tuple(
        MissionView(m.id, n, m.title, m.goal, m.hint, m.id in done, m.tools) for n, m in enumerate(MISSIONS, start=1)
    )
    current = next((v for v in views if not v.done), None)
    focus_fact = situation.facts.get(facts.MISSION_FOCUS)
    focus = focus_fact.value if focus_fact is not None and 1 <= focus_fact.value <= len(MISSIONS) else 0
    reach = max(current.number if current else len(views), focus)
    revealed = set(CORE_TOOLS).union(*(v.tools for v in views[:reach]))
    scenario_fact = situation.facts.get(facts.SCENARIO)
    scenario = catalog.get(scenario_fact.detail) if scenario_fact is not None else None
    if scenario is not None:
        revealed |= scenario.tools
    return MissionProgress(views, current, focus, frozenset(revealed), scenario.id if scenario is not None else "")


# The sandbox row with its two checkpoints and whether it skipped a dead letter, in SQL of its own: a push reads it
# after every command, and building the ORM's subqueries cost several times running them.
SITUATION_SQL = f"""
    SELECT s.lag_ms, s.deposit_schema_version, s.retro_model_enabled, s.live_generation, s.rebuilding_generation,
           s.projector_crashed_until, s.user_id, s.session_key,
           (SELECT c.version FROM {Checkpoint._meta.db_table} c
             WHERE c.sandbox_id = s.id AND c.projection = %s AND c.generation = s.live_generation),
           (SELECT c.version FROM {Checkpoint._meta.db_table} c
             WHERE c.sandbox_id = s.id AND c.projection = %s AND c.generation = %s),
           EXISTS (SELECT 1 FROM {DeadLetter._meta.db_table} d WHERE d.sandbox_id = s.id AND d.skipped_at IS NOT NULL)
      FROM {Sandbox._meta.db_table} s WHERE s.id = %s"""  # noqa: S608  (table names only; values are parameters)


def _situation_row(sandbox_id: Any) -> dict[str, Any]:
    with connection.cursor() as cur:
        cur.execute(SITUATION_SQL, [BALANCE, LARGEST_DEPOSIT, RETRO_GENERATION, db_uuid(py_uuid(sandbox_id))])
        found = cur.fetchone()
    if found is None:
        raise Sandbox.DoesNotExist(f"no sandbox {sandbox_id}")
    lag, schema, retro, live, rebuilding, crashed, user_id, session_key, read, retro_read, skipped = found
    return {
        "lag_ms": int(lag), "deposit_schema_version": int(schema), "retro_model_enabled": bool(retro),
        "live_generation": int(live), "rebuilding_generation": rebuilding,
        "projector_crashed_until": py_time(crashed) if crashed is not None else None,
        "user_id": user_id, "session_key": session_key or "",
        "read_version": read, "retro_version": retro_read, "skipped_letter": bool(skipped),
    }  # fmt: skip


def _situation(sandbox: Sandbox) -> tuple[Situation, set[str]]:
    row = _situation_row(sandbox.pk)
    known, met = _facts_and_missions_met(sandbox.pk, row["user_id"], row["session_key"])
    situation = Situation(
        tally=store.event_tally(sandbox.pk),
        read_version=int(row["read_version"] or 0),
        retro_version=int(row["retro_version"] or 0),
        lag_ms=row["lag_ms"],
        schema=row["deposit_schema_version"],
        retro_enabled=row["retro_model_enabled"],
        live_generation=row["live_generation"],
        rebuilding=row["rebuilding_generation"] is not None,
        crashed_until=row["projector_crashed_until"],
        skipped_letter=bool(row["skipped_letter"]),
        facts=known,
        now=timezone.now(),
        user_id=row["user_id"],
        session_key=row["session_key"],
    )
    return situation, met


def _blank_situation(sandbox: Sandbox) -> tuple[Situation, set[str]]:
    """A sandbox not created yet: its defaults, and the missions its owner (the account, or the browser session)
    met before; no query at all for a visitor without a session."""
    user_id, session_key = sandbox.user_id, sandbox.session_key
    known, met = _facts_and_missions_met(sandbox.pk, user_id, session_key) if user_id or session_key else ({}, set())
    situation = Situation(
        tally=EventTally(0, 0, 0, None),
        read_version=0,
        retro_version=0,
        lag_ms=sandbox.lag_ms,
        schema=sandbox.deposit_schema_version,
        retro_enabled=sandbox.retro_model_enabled,
        live_generation=sandbox.live_generation,
        rebuilding=False,
        crashed_until=None,
        skipped_letter=False,
        facts=known,
        now=timezone.now(),
        user_id=user_id,
        session_key=session_key,
    )
    return situation, met


def _owner_sql(user_id: Any, session_key: str) -> tuple[str, list[Any]] | None:
    """Whose missions met count here, as a WHERE clause: the account's (and those its sandbox's browser session met
    before signing in), or a visitor's browser session's."""
    visitor = ("(m.user_id IS NULL AND m.session_key = %s)", [session_key]) if session_key else None
    if user_id is None:
        return visitor
    account = ("m.user_id = %s", [user_id])
    if visitor is None:
        return account
    return f"({account[0]} OR {visitor[0]})", [*account[1], *visitor[1]]


FACTS = SandboxFact._meta.db_table
MET = MissionDone._meta.db_table


def _facts_and_missions_met(sandbox_id: Any, user_id: Any, session_key: str) -> tuple[dict[str, facts.Fact], set[str]]:
    """The sandbox's facts and the missions its owner met before, in one query (a UNION), in SQL of its own as
    _situation's is."""
    sql = f"SELECT f.name, f.value, f.detail, f.at FROM {FACTS} f WHERE f.sandbox_id = %s"  # noqa: S608
    params: list[Any] = [db_uuid(py_uuid(sandbox_id))]
    owner = _owner_sql(user_id, session_key)
    if owner is not None:
        sql += f" UNION ALL SELECT '{DONE_MARK}', 0, m.mission, m.done_at FROM {MET} m WHERE {owner[0]}"  # noqa: S608
        params += owner[1]
    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    known: dict[str, facts.Fact] = {}
    missions: set[str] = set()
    for name, value, detail, at in rows:
        if name == DONE_MARK:
            missions.add(detail)
        else:
            known[name] = facts.Fact(int(value), detail, py_time(at))
    return known, missions


def _remember(situation: Situation, newly: set[str]) -> None:
    """Keep missions met for the first time for the sandbox's account, else for its browser session."""
    user_id, session_key = situation.user_id, situation.session_key
    if not newly or (user_id is None and not session_key):
        return
    rows = [
        MissionDone(user_id=user_id, session_key="" if user_id else session_key, mission=m, done_at=situation.now)
        for m in sorted(newly)
    ]
    MissionDone.objects.bulk_create(rows, ignore_conflicts=True)


def carry_to_account(session_key: str, user: Any) -> int:
    """At sign-in: the missions a visitor met in this browser session become the account's. Returns how many."""
    if not session_key:
        return 0
    visitor = MissionDone.objects.filter(user__isnull=True, session_key=session_key)
    rows = [MissionDone(user=user, mission=m, done_at=at) for m, at in visitor.values_list("mission", "done_at")]
    MissionDone.objects.bulk_create(rows, ignore_conflicts=True)
    visitor.delete()
    return len(rows)
