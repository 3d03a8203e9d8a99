"""Read and validate the scenario files. A file is ``lab/scenarios/data/<id>.json``::

    {
      "id": "stale-reads",                       # lowercase words joined by hyphens; the file's name
      "concept": "cqrs-event-sourcing",          # the concept page it belongs to
      "claim": {"section": "what-it-costs-you",  # the section's anchor on that page
                "item": "Read models are eventually consistent with writes, ..."},  # the list item (or card title)
      "title": "Stale reads",                    # a short label for the "Try it" link
      "notice": "One sentence: what to notice.",
      "setup": {                                 # every key optional; applied in this order:
        "snapshot_interval": 10,                 #   0 to 1000 (0: off)
        "replay_rate": 2,                        #   events a second for a rebuild or catch-up, 0 to 1000 (0: unpaced)
        "lag_s": "5",                            #   0 to 10 in steps of 0.1, as text or a whole number
        "projector": "paused",                   #   "running" (default) | "paused" | "crashed"
        "crash_s": 10,                           #   how long a crash lasts, 1 to 60 (only with "crashed")
        "commands": [{"kind": "deposit", "amount": "50.00", "schema": 1},
                     {"kind": "withdraw", "amount": "20"}],   # at most 40; amounts by the write model's rules,
                                                 #   no overdraft; "schema" (1 or 2) only on a deposit
        "schema": 2,                             #   the deposit schema left on at the end (default 1)
        "poison": true,                          #   append the poison event after the commands
        "retro_model": true                      #   add the "largest deposit" read model last
      },
      "look": {"tool": "time-travel", "tt": 3}   # optional: the tool to open (lab.tools) and a time-travel version
    }

Unknown keys are errors too (a typo would otherwise silently do nothing). The whole folder is read once per
process; `manage.py check` reports every problem of every file (lab.scenarios.checks).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from lab.engine import decider
from lab.engine.messages import Deposit, Rejected, Withdraw
from lab.limits import DEPOSIT_SCHEMAS, check_replay_rate, check_snapshot_interval, parse_lag
from lab.tools import TOOLS

DEFAULT_DIR = Path(__file__).resolve().parent / "data"
TOP_KEYS = {"id", "concept", "claim", "title", "notice", "setup", "look"}
REQUIRED = ("id", "concept", "claim", "title", "notice", "setup")
SETUP_KEYS = {"snapshot_interval", "replay_rate", "lag_s", "projector", "crash_s", "commands", "schema", "poison",
              "retro_model", "mode"}  # fmt: skip
SCENARIO_MODES = ("event-sourced", "state-only")  # lab.models.MODES: which write model the fresh sandbox runs
PROJECTOR_STATES = ("running", "paused", "crashed")
MAX_COMMANDS = 40
NOTICE_MAX = 300
TITLE_MAX = 60
CRASH_S_RANGE = (1, 60)
DEFAULT_CRASH_S = 10
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message starts with the file's name."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path.name}: {problem}")


@dataclass(frozen=True)
class Step:
    kind: str  # "deposit" | "withdraw"
    amount: Decimal
    schema: int | None = None  # a deposit's schema (None: whatever the sandbox is set to)


@dataclass(frozen=True)
class Scenario:
    id: str
    concept: str
    section: str  # the claim's section anchor
    item: str  # the claim's text (a list item, or a card's title)
    title: str
    notice: str
    commands: tuple[Step, ...] = ()
    lag_ms: int | None = None
    projector: str = "running"
    crash_s: float = DEFAULT_CRASH_S
    schema: int = 1
    snapshot_interval: int | None = None
    replay_rate: int | None = None
    poison: bool = False
    retro_model: bool = False
    mode: str = "event-sourced"
    tool: str | None = None
    tt: int | None = None

    @property
    def events(self) -> int:
        """How many events the setup appends (the commands, and the poison event; none in state-only mode)."""
        if self.mode == "state-only":
            return 0
        return len(self.commands) + (1 if self.poison else 0)

    @property
    def tools(self) -> frozenset[str]:
        """The tools this situation needs on screen: the one to open and each one the setup uses."""
        used = {self.tool} if self.tool else set()
        used |= {"lag"} if self.lag_ms is not None else set()
        used |= {"projector"} if self.projector != "running" else set()
        used |= {"schema"} if self.schema != 1 or any(s.schema == 2 for s in self.commands) else set()
        used |= {"poison"} if self.poison else set()
        used |= {"retro"} if self.retro_model else set()
        used |= {"snapshots"} if self.snapshot_interval is not None else set()
        used |= {"rebuild"} if self.replay_rate is not None else set()
        used |= {"time-travel"} if self.tt is not None else set()
        return frozenset(used)


def scenario_dir() -> Path:
    return Path(getattr(settings, "LAB_SCENARIO_DIR", DEFAULT_DIR))


def catalog() -> dict[str, Scenario]:
    """The valid scenarios of the configured folder by id, read once per process (a bad file is left out here;
    `manage.py check` names it)."""
    return _cached(scenario_dir())


def get(scenario_id: str) -> Scenario | None:
    return catalog().get(scenario_id)


@functools.cache
def _cached(directory: Path) -> dict[str, Scenario]:
    return load_dir(directory)[0]


def load_dir(directory: Path) -> tuple[dict[str, Scenario], list[ScenarioError]]:
    """Every ``*.json`` in the folder: the valid scenarios by id, and every problem found."""
    if not directory.is_dir():
        return {}, [ScenarioError(directory, "the scenario folder does not exist")]
    found: dict[str, Scenario] = {}
    errors: list[ScenarioError] = []
    for path in sorted(directory.glob("*.json")):
        try:
            scenario = parse_file(path)
        except ScenarioError as exc:
            errors.append(exc)
            continue
        found[scenario.id] = scenario
    return found, errors


def parse_file(path: Path) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(path, f"cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(path, f"is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return parse(path, data)


def parse(path: Path, data: Any) -> Scenario:
    """Validate one scenario's data; raises ScenarioError naming `path` and the first problem."""
    if not isinstance(data, dict):
        raise ScenarioError(path, "must be a JSON object")
    _known(path, data, TOP_KEYS, "top-level")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ScenarioError(path, f"missing key(s): {', '.join(missing)}")
    for key in ("id", "concept", "title", "notice"):
        _text(path, data[key], key)
    if not _SLUG.match(data["id"]) or data["id"] != path.stem:
        raise ScenarioError(path, f"id {data['id']!r} must be lowercase words joined by hyphens, and the file's name")
    if len(data["title"]) > TITLE_MAX or len(data["notice"]) > NOTICE_MAX:
        raise ScenarioError(path, f"the title is at most {TITLE_MAX} characters and the notice {NOTICE_MAX}")
    section, item = _claim(path, data["claim"])
    fields = _setup(path, data["setup"])
    tool, tt = _look(path, data.get("look", {}), len(fields["commands"]) + int(fields["poison"]))
    return Scenario(id=data["id"], concept=data["concept"], section=section, item=item, title=data["title"],
                    notice=data["notice"], tool=tool, tt=tt, **fields)  # fmt: skip


def _known(path: Path, data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ScenarioError(path, f"unknown {where} key(s): {', '.join(map(str, unknown))}")


def _text(path: Path, value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScenarioError(path, f"{key!r} must be non-empty text")
    return value


def _claim(path: Path, claim: Any) -> tuple[str, str]:
    if not isinstance(claim, dict):
        raise ScenarioError(path, "'claim' must be an object with 'section' and 'item'")
    _known(path, claim, {"section", "item"}, "claim")
    return _text(path, claim.get("section"), "claim.section"), _text(path, claim.get("item"), "claim.item")


def _int(path: Path, value: Any, key: str, check: Any) -> int:
    try:
        return int(check(value))
    except ValueError as exc:
        raise ScenarioError(path, f"{key}: {exc}") from None


def _setup(path: Path, setup: Any) -> dict[str, Any]:
    if not isinstance(setup, dict):
        raise ScenarioError(path, "'setup' must be an object")
    _known(path, setup, SETUP_KEYS, "setup")
    fields: dict[str, Any] = {"commands": _commands(path, setup.get("commands", []))}
    if "lag_s" in setup:
        lag = setup["lag_s"]
        fields["lag_ms"] = _int(path, lag if not isinstance(lag, float) else str(lag), "lag_s", parse_lag)
    if "snapshot_interval" in setup:
        interval = setup["snapshot_interval"]
        fields["snapshot_interval"] = _int(path, interval, "snapshot_interval", check_snapshot_interval)
    if "replay_rate" in setup:
        fields["replay_rate"] = _int(path, setup["replay_rate"], "replay_rate", check_replay_rate)
    fields["projector"] = setup.get("projector", "running")
    if fields["projector"] not in PROJECTOR_STATES:
        raise ScenarioError(path, f"setup.projector must be one of {', '.join(PROJECTOR_STATES)}")
    fields.update(_crash_s(path, setup))
    fields["schema"] = setup.get("schema", 1)
    if isinstance(fields["schema"], bool) or fields["schema"] not in DEPOSIT_SCHEMAS:
        raise ScenarioError(path, "setup.schema must be 1 or 2")
    fields["mode"] = setup.get("mode", "event-sourced")
    if fields["mode"] not in SCENARIO_MODES:
        raise ScenarioError(path, f"setup.mode must be one of {', '.join(SCENARIO_MODES)}")
    if fields["mode"] == "state-only" and (fields["schema"] != 1 or setup.get("poison") or setup.get("retro_model")):
        raise ScenarioError(path, "setup.mode state-only has no log: no schema v2, poison event or retroactive model")
    for flag in ("poison", "retro_model"):
        fields[flag] = setup.get(flag, False)
        if not isinstance(fields[flag], bool):
            raise ScenarioError(path, f"setup.{flag} must be true or false")
    return fields


def _crash_s(path: Path, setup: dict[str, Any]) -> dict[str, Any]:
    if "crash_s" not in setup:
        return {}
    value = setup["crash_s"]
    low, high = CRASH_S_RANGE
    if setup.get("projector") != "crashed":
        raise ScenarioError(path, 'setup.crash_s is only for a crashed projector ("projector": "crashed")')
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScenarioError(path, f"setup.crash_s must be a number of seconds from {low} to {high}")
    return {"crash_s": float(value)}


def _commands(path: Path, commands: Any) -> tuple[Step, ...]:
    """Each command checked by the write model's own rules, in order, from an empty account: an amount it would
    refuse, or a withdrawal that would overdraw, is an error here rather than a surprise when a learner loads it."""
    if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
        raise ScenarioError(path, f"setup.commands must be a list of at most {MAX_COMMANDS} commands")
    state = decider.initial_state()
    steps = []
    for number, raw in enumerate(commands, start=1):
        where = f"setup.commands[{number}]"
        if not isinstance(raw, dict):
            raise ScenarioError(path, f"{where} must be an object with 'kind' and 'amount'")
        _known(path, raw, {"kind", "amount", "schema"}, where)
        kind, amount, schema = raw.get("kind"), raw.get("amount"), raw.get("schema")
        if kind not in ("deposit", "withdraw"):
            raise ScenarioError(path, f"{where}.kind must be 'deposit' or 'withdraw'")
        if schema is not None and (kind != "deposit" or isinstance(schema, bool) or schema not in DEPOSIT_SCHEMAS):
            raise ScenarioError(path, f"{where}.schema is 1 or 2, and only on a deposit")
        parsed = decider.parse_amount(amount) if isinstance(amount, str) else Rejected("amount", "must be text")
        if isinstance(parsed, Rejected):
            raise ScenarioError(path, f"{where}.amount {amount!r}: {parsed.message}")
        decision = decider.decide(state, Deposit(parsed) if kind == "deposit" else Withdraw(parsed))
        if isinstance(decision, Rejected):
            raise ScenarioError(path, f"{where}: {kind} {parsed} is refused by the write model ({decision.message})")
        state = decider.fold(decision, state)
        steps.append(Step(kind, parsed, schema))
    return tuple(steps)


def _look(path: Path, look: Any, events: int) -> tuple[str | None, int | None]:
    if not isinstance(look, dict):
        raise ScenarioError(path, "'look' must be an object with 'tool' and optionally 'tt'")
    _known(path, look, {"tool", "tt"}, "look")
    tool, tt = look.get("tool"), look.get("tt")
    if tool is not None and tool not in TOOLS:
        raise ScenarioError(path, f"look.tool {tool!r} is not a tool of the lab ({', '.join(sorted(TOOLS))})")
    if tt is not None and (isinstance(tt, bool) or not isinstance(tt, int) or not 0 <= tt <= events):
        raise ScenarioError(path, f"look.tt must be a version from 0 to {events} (the events the setup appends)")
    return tool, tt
