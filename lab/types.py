"""What the service layer returns and the panel renders: plain frozen dataclasses, no Django.

The service layer (lab.commands, lab.queries, lab.timeline, lab.controls) builds these from the store and the
read models; lab.panel turns them into HTML. This module imports only the standard library and the engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


class TemplateReadable:
    """For the objects the panel's templates read: `view["name"]` is `view.name`.

    The template language tries `obj[name]` before `getattr(obj, name)` for every dotted lookup; on a plain object
    that first try raises a TypeError, caught, about 400 times per concept page. Answered here, the page rendered
    15-20% faster in-process with byte-identical HTML (tests/unit/test_template_readable.py). A missing name is a
    KeyError, so the template goes on as before (to getattr, whose error it handles as it always did). Not
    iterable: without `__iter__ = None`, Python would iterate (and answer `in`) through `__getitem__(0)`."""

    __slots__ = ()
    __iter__: Any = None  # a subclass may define its own (ReplayFrame unpacks as a pair)

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str):
            raise KeyError(name)
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None


class Reasons(dict[str, str]):
    """name -> why (a field's error, a feature's reason to be unavailable) for the templates, where a missing name
    reads as "" (nothing to say). A plain dict sends each missing name down the template language's failed-lookup
    path (an exception and a dir() of the dict, about 20 µs), and the panel asks about seventeen of them per page."""

    def __missing__(self, key: str) -> str:
        return ""


def count(n: int, noun: str) -> str:
    """ "1 event", "2 events", "1,204 events": every count a learner reads."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class EventView(TemplateReadable):
    position: int
    stream_id: str
    version: int
    event_type: str  # "Deposited" | "Withdrew"
    schema_version: int
    recorded_at: dt.datetime
    raw_payload: dict[str, Any]  # exactly as stored
    upcast_payload: dict[str, Any]  # after the upcaster chain (equal to raw when nothing changed)
    event_id: str
    command_id: str
    correlation_id: str
    causation_id: str

    @property
    def was_upcast(self) -> bool:
        return self.raw_payload != self.upcast_payload


@dataclass(frozen=True)
class CommandOutcome(TemplateReadable):
    accepted: bool
    message: str  # "Deposited $50.00 → v=3" or "Rejected: would overdraw the account"
    # The broken rule's key when rejected: one of lab.engine.decider.RULE_*, or "concurrency", "limit" or
    # "unreadable" (lab.commands); the views add "input" for a form that did not validate.
    rule: str | None
    events: list[EventView]
    write_version: int
    last_position: int | None
    replayed: bool = False  # True when this command id was seen before and nothing was appended


@dataclass(frozen=True)
class LoadReportView(TemplateReadable):
    snapshot_version: int | None
    events_replayed: int
    events_without_snapshot: int

    @property
    def summary(self) -> str:  # "snapshot at v40 + 3 events; 43 without"
        if self.snapshot_version is None:
            return f"no snapshot: {count(self.events_replayed, 'event')} replayed"
        return (
            f"snapshot at v{self.snapshot_version} + {count(self.events_replayed, 'event')}; "
            f"{self.events_without_snapshot} without"
        )


@dataclass(frozen=True)
class WriteSide(TemplateReadable):
    balance: Decimal
    version: int
    load: LoadReportView
    # The same load as time travel shows it (lab.timeline.time_travel at this version); None for a blank or
    # state-only sandbox. Not compared: it repeats the fields above.
    at_head: TimeTravelView | None = field(default=None, compare=False)


@dataclass(frozen=True)
class HistoryLineView(TemplateReadable):
    position: int
    version: int
    kind: str
    amount: Decimal
    balance_after: Decimal
    recorded_at: dt.datetime


@dataclass(frozen=True)
class InFlightEvent(TemplateReadable):
    position: int
    version: int
    event_type: str
    recorded_at: dt.datetime
    due_at: dt.datetime  # recorded_at + lag: when the projector will apply it


@dataclass(frozen=True)
class DeadLetterView(TemplateReadable):
    """An event a read model could not apply: open (it stalls that model until Retry or Skip) or skipped (on the
    dead-letter list for good: every read model of the sandbox leaves it out)."""

    projection: str  # "balance" | "largest_deposit"
    position: int
    version: int | None  # the event's stream version and type (None only if the event is gone)
    event_type: str | None
    error: str
    skipped_at: dt.datetime | None


@dataclass(frozen=True)
class ProjectorStatus(TemplateReadable):
    state: str  # "running" | "paused" | "crashed" | "stalled" | "rebuilding" (of the live balance model)
    checkpoint_position: int
    read_version: int
    lag_ms: int
    crashed_until: dt.datetime | None
    stalled_reason: str | None  # the first open dead letter's error (the balance model's first)
    stalled_position: int | None
    # Which read model that dead letter stalls: "balance" | "largest_deposit" | None. A stalled retroactive model
    # leaves `state` "running" (the balance keeps flowing) and shows here and in `dead_letters`.
    stalled_projection: str | None = None
    dead_letters: list[DeadLetterView] = field(default_factory=list)  # open, oldest first: what Retry and Skip act on
    skipped: list[DeadLetterView] = field(default_factory=list)  # the dead-letter list, oldest first, one per event

    @property
    def can_resolve(self) -> bool:
        """Whether Retry and Skip have anything to act on."""
        return bool(self.dead_letters)


@dataclass(frozen=True)
class ReadSide(TemplateReadable):
    balance: Decimal
    version: int
    history: list[HistoryLineView]
    behind: int  # write version - read version


@dataclass(frozen=True)
class QueryAnswer(TemplateReadable):
    balance: Decimal
    read_version: int
    write_version: int
    answered_at: dt.datetime
    waited_ms: int
    stale: bool  # read_version < write_version when answered
    # During a blue/green rebuild the new generation answers too (until the swap): what it holds so far.
    rebuilding: GenerationView | None = None


@dataclass(frozen=True)
class SnapshotView(TemplateReadable):
    version: int
    state: dict[str, Any]
    taken_at: dt.datetime
    reason: str
    valid: bool  # fingerprint matches the current aggregate code and schema


@dataclass(frozen=True)
class TimeTravelView(TemplateReadable):
    version: int
    balance: Decimal
    state: dict[str, Any]
    snapshot_version: int | None  # the snapshot it started from, None = from the beginning
    events_applied: int
    # Set when travelling by time ("the balance at 09:12:30"): the moment asked for, in the site's time zone, and
    # when the event at `version` was recorded (None at v=0: the moment is before the first event).
    at: dt.datetime | None = None
    event_recorded_at: dt.datetime | None = None
    later_than_now: bool = False  # the moment has not come yet: the state shown is the latest

    @property
    def resolved_by_time(self) -> bool:
        return self.at is not None

    @property
    def before_first_event(self) -> bool:
        return self.at is not None and self.version == 0


@dataclass(frozen=True)
class ChartLine(TemplateReadable):
    """One line of the lab's chart, as steps: `before` holds from `since_ms` until the first point, and each
    point's version holds until the next one."""

    points: tuple[tuple[int, int], ...]  # (epoch ms, version), oldest first
    before: int  # the version just before the first point (0: nothing before it)
    since_ms: int  # exact from here: the window's start, or, when capped, the newest point left out


@dataclass(frozen=True)
class ChartSeries(TemplateReadable):
    """The chart's history from the server, so it survives a reload: the write version at each event's recorded
    time, the read version at each history line's applied time."""

    now_ms: int  # the server's clock when read (a page aligns its own clock to it)
    window_ms: int
    write: ChartLine
    read: ChartLine

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, all times epoch ms: {"now", "window", "write": [[ms, v], ...], "read": [[ms, v], ...],
        "write_before", "read_before", "write_since", "read_since"}."""
        out: dict[str, Any] = {"now": self.now_ms, "window": self.window_ms}
        for name, line in (("write", self.write), ("read", self.read)):
            out[name] = [[ms, version] for ms, version in line.points]
            out[f"{name}_before"], out[f"{name}_since"] = line.before, line.since_ms
        return out


@dataclass(frozen=True)
class GenerationView(TemplateReadable):
    """One generation of the balance read model: during a rebuild the new one fills up beside the live one."""

    generation: int
    balance: Decimal
    version: int


@dataclass(frozen=True)
class FoldStep(TemplateReadable):
    """The event a replay (a rebuild, the retroactive model's catch-up) applied last, and the fold's arithmetic.

    For the balance `before`/`after` are the balance; for the largest deposit they are the largest deposit so far
    (None: no deposit yet). A withdrawal's sign is the minus sign, U+2212."""

    version: int  # the event's number in the sandbox's stream, from 1 (the event log's v=)
    position: int
    event_type: str  # "Deposited" | "Withdrew" | another type the model passes over
    amount: Decimal | None
    before: Decimal | None
    after: Decimal | None
    model: str = "balance"  # "balance" | "largest_deposit"

    @property
    def sign(self) -> str:
        return MINUS if self.event_type == "Withdrew" else "+"

    @property
    def arithmetic(self) -> str:
        """The fold's step in words: $35.00 + $50.00 = $85.00; for the largest deposit max($35.00, $50.00) =
        $50.00, or $50.00 stays when the event is not a deposit."""
        if self.model == "balance":
            if self.amount is None or self.event_type not in ("Deposited", "Withdrew"):
                return f"{_usd(self.after)} stays"
            return f"{_usd(self.before)} {self.sign} {_usd(self.amount)} = {_usd(self.after)}"
        if self.event_type == "Deposited" and self.amount is not None:
            return f"max({_usd(self.before)}, {_usd(self.amount)}) = {_usd(self.after)}"
        return f"{_usd(self.after)} stays"


MINUS = "\u2212"  # the fold's arithmetic prints a withdrawal with a real minus sign


def _usd(amount: Decimal | None) -> str:
    return "none" if amount is None else f"${amount:,.2f}"


@dataclass(frozen=True)
class Progress(TemplateReadable):
    done: int
    total: int
    running: bool
    # While running: the event applied last with its arithmetic, and (a rebuild only) the new generation so far.
    current: FoldStep | None = None
    rebuilding: GenerationView | None = None


@dataclass(frozen=True)
class RetroModelView(TemplateReadable):
    enabled: bool
    largest_deposit: Decimal | None
    largest_deposit_position: int | None
    deposits_seen: int
    progress: Progress


@dataclass(frozen=True)
class EventPage(TemplateReadable):
    events: list[EventView]  # newest first
    page: int
    pages: int
    total: int
    event_type: str | None


@dataclass(frozen=True)
class LabState(TemplateReadable):
    """Everything the panel renders, read in one go."""

    sandbox: Any  # the lab.models.Sandbox row it was read from (Any: this module does not import Django)
    write: WriteSide
    read: ReadSide
    projector: ProjectorStatus
    in_flight: list[InFlightEvent]
    snapshot_interval: int
    deposit_schema_version: int
    rebuild: Progress
    retro: RetroModelView
    event_count: int
    event_limit: int
    # time.time_ns() taken before reading: a read that started later is at least as new, so a page keeps the
    # highest stamp it has applied and ignores older pushes or responses (never going backwards).
    stamp: int = 0
    server_now: dt.datetime | None = None
    mode: str = "event-sourced"  # "event-sourced" | "state-only" (lab.modes)
    unavailable: Reasons = field(default_factory=Reasons)  # state-only mode: feature -> why it is unavailable
    copy_due_at: dt.datetime | None = None  # state-only mode: when the pending change is copied to the read side

    @property
    def state_only(self) -> bool:
        return self.mode == "state-only"


@dataclass(frozen=True)
class ReplayFrame(TemplateReadable):
    """One step of a replay: the event at `version` and the state right after it (version 0: no event yet)."""

    state: TimeTravelView
    event: EventView | None
    head_version: int
    amount: Decimal | None = None  # the event's amount whatever its schema (a v2 deposit stores cents)

    @property
    def version(self) -> int:
        return self.state.version

    @property
    def at_end(self) -> bool:
        return self.state.version >= self.head_version

    def __iter__(self) -> Iterator[Any]:  # unpacks as (state, event)
        return iter((self.state, self.event))


@dataclass(frozen=True)
class MissionView(TemplateReadable):
    """One mission as the page lists it (lab.missions): `done` once its check held (or was met before)."""

    id: str
    number: int  # 1-based, in order
    title: str
    goal: str
    hint: str
    done: bool
    tools: tuple[str, ...]  # the tools it reveals (lab.tools ids)


@dataclass(frozen=True)
class MissionProgress(TemplateReadable):
    """The missions in order, how many are met, the one to do next, and which tools the page shows."""

    missions: tuple[MissionView, ...]
    current: MissionView | None  # the first mission not met yet (None: all done)
    focus: int  # the mission a shared link pointed at (0: none)
    revealed_tools: frozenset[str]  # the core loop, every tool up to the current (or focused) mission, a scenario's
    scenario: str = ""  # the id of the scenario loaded into this sandbox ("" none): what "Copy link" shares

    @property
    def done_count(self) -> int:
        return sum(1 for m in self.missions if m.done)

    @property
    def total(self) -> int:
        return len(self.missions)

    @property
    def percent(self) -> int:
        return round(100 * self.done_count / self.total) if self.total else 100

    @property
    def all_done(self) -> bool:
        return self.done_count == self.total
