"""Facts: what a learner saw or did in a sandbox that no table records, for the missions (lab.missions) to read.

The store keeps the events, the read models keep what the projector built; neither remembers that a query came
back stale, that the learner travelled to v=3, or that the projector was crashed a minute ago (the projector
clears that flag when it restarts). The code paths where those happen (lab.queries, lab.controls, lab.views,
lab.scenarios) note them here: one SandboxFact row per name and sandbox, so a fact costs at most one small write
the first time, and one indexed read each later time it happens again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from lab import store
from lab.models import SandboxFact

STALE_READ = "stale-read"  # a plain query answered behind the write model; value: the lag then (ms), the largest
FRESH_AFTER_WAIT = "fresh-after-wait"  # read-your-writes waited for the projector and came back fresh
CRASH = "crash"  # the projector was crashed; at: the latest crash
SCENARIO = "scenario"  # detail: the scenario loaded into this sandbox
MISSION_FOCUS = "mission-focus"  # value: the mission a shared link pointed at
TRAVEL_PREFIX = "time-travel-v"  # + the version reached by time travel (only the first few versions are noted)
TRAVEL_NOTED_MAX = 20

KEEP_FIRST, KEEP_MAX, KEEP_LAST = "first", "max", "last"


@dataclass(frozen=True)
class Fact:
    value: int
    detail: str
    at: dt.datetime


def note(sandbox_id: Any, name: str, *, value: int = 0, detail: str = "", keep: str = KEEP_FIRST) -> None:
    """Record that `name` happened in the sandbox. KEEP_FIRST keeps the first occurrence, KEEP_MAX the one with
    the largest value, KEEP_LAST the latest. Reads first, so a fact that changes nothing writes nothing."""
    now = timezone.now()
    found = SandboxFact.objects.filter(sandbox_id=sandbox_id, name=name).values_list("value", flat=True).first()
    if found is None:
        try:
            with transaction.atomic():
                SandboxFact.objects.create(sandbox_id=sandbox_id, name=name, value=value, detail=detail, at=now)
            return
        except IntegrityError:  # noted by a twin request meanwhile: fall through to the update rule
            found = SandboxFact.objects.filter(sandbox_id=sandbox_id, name=name).values_list("value", flat=True).get()
    if keep == KEEP_LAST or (keep == KEEP_MAX and value > found):
        SandboxFact.objects.filter(sandbox_id=sandbox_id, name=name).update(value=value, detail=detail, at=now)


def note_time_travel(sandbox: Any, requested: int | None) -> None:
    """Time travel was asked for version `requested`; the version shown is that, clamped to the stream's head."""
    if requested is None or not 0 < requested <= TRAVEL_NOTED_MAX:
        return
    version = min(requested, store.head_version(sandbox))
    if version > 0:
        note(sandbox.pk, f"{TRAVEL_PREFIX}{version}")


def fact_rows(sandbox_id: Any) -> QuerySet[SandboxFact, tuple[str, int, str, dt.datetime]]:
    """(name, value, detail, at) of each fact of the sandbox, not yet run."""
    return SandboxFact.objects.filter(sandbox_id=sandbox_id).values_list("name", "value", "detail", "at")


def facts_of(sandbox_id: Any) -> dict[str, Fact]:
    """Every fact of the sandbox by name: one query."""
    return {name: Fact(value, detail, at) for name, value, detail, at in fact_rows(sandbox_id)}
