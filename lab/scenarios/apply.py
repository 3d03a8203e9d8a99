"""Load a scenario into the learner's OWN sandbox: reset it (so Undo brings the old one back), then play the
setup through the real commands and controls, in the order lab/scenarios/catalog.py documents. Nothing here
writes a table directly; every step is what a learner's click would do, and tells open pages the same way."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.http import HttpRequest

from lab import commands, controls, facts, sandboxes
from lab.models import Sandbox
from lab.scenarios import catalog
from lab.scenarios.catalog import Scenario


class UnknownScenario(LookupError):
    """No scenario has this id (a 404)."""


class ScenarioFailed(ValueError):
    """A step of the setup was refused (a 400 saying which); the reset can be undone."""


@dataclass(frozen=True)
class Loaded:
    scenario: Scenario
    sandbox: Sandbox  # the fresh sandbox it was loaded into
    previous_id: object  # the sandbox the reset retired (Undo brings it back)
    tt: int | None  # the time-travel version to show (the link's, else the scenario's)


def load_scenario(
    request: HttpRequest, scenario_id: str, *, lag_ms: int | None = None, tt: int | None = None, mission: int = 0
) -> Loaded:
    """Reset the request's sandbox and set up the scenario in the fresh one. A shared link may set a different
    lag, a time-travel version and the mission to focus on (lab.share). Raises UnknownScenario, ScenarioFailed."""
    scenario = catalog.get(scenario_id)
    if scenario is None:
        raise UnknownScenario(f"There is no scenario {scenario_id!r}.")
    previous = sandboxes.sandbox_for_request(request)
    sandbox = sandboxes.reset_sandbox(request, mode=scenario.mode)
    apply_setup(sandbox, scenario)
    facts.note(sandbox.pk, facts.SCENARIO, detail=scenario.id, keep=facts.KEEP_LAST)
    apply_shared(sandbox, lag_ms=lag_ms, mission=mission)
    return Loaded(scenario, sandbox, previous.pk, tt if tt is not None else scenario.tt)


def apply_shared(sandbox: Sandbox, *, lag_ms: int | None, mission: int) -> None:
    """What a shared link adds on top of (or, without a scenario, to) the sandbox: its lag and mission."""
    if lag_ms is not None:
        controls.set_lag(sandbox, _seconds(lag_ms))
    if mission:
        facts.note(sandbox.pk, facts.MISSION_FOCUS, value=mission, keep=facts.KEEP_LAST)


def apply_setup(sandbox: Sandbox, scenario: Scenario) -> None:
    """Settings, then the projector's state, then the commands (switching the deposit schema where a step asks),
    then the final schema, the poison event and the retroactive model."""
    if scenario.snapshot_interval is not None:
        controls.set_snapshot_interval(sandbox, scenario.snapshot_interval)
    if scenario.replay_rate is not None:
        controls.set_replay_rate(sandbox, scenario.replay_rate)
    if scenario.lag_ms is not None:
        controls.set_lag(sandbox, _seconds(scenario.lag_ms))
    if scenario.projector == "paused":
        controls.pause_projection(sandbox)
    elif scenario.projector == "crashed":
        controls.crash_projector(sandbox, scenario.crash_s)
    sandbox.refresh_from_db()
    schema = sandbox.deposit_schema_version
    for number, step in enumerate(scenario.commands, start=1):
        if step.schema is not None and step.schema != schema:
            schema = controls.set_deposit_schema(sandbox, step.schema)
        outcome = commands.send_command(sandbox, step.kind, step.amount)
        if not outcome.accepted:
            raise ScenarioFailed(f"Step {number} of “{scenario.title}” was refused: {outcome.message}")
    if scenario.schema != schema:
        controls.set_deposit_schema(sandbox, scenario.schema)
    if scenario.poison:
        controls.append_poison_event(sandbox)
    if scenario.retro_model:
        controls.enable_retro_model(sandbox)


def _seconds(lag_ms: int) -> Decimal:
    return Decimal(lag_ms) / 1000
