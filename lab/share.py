"""Shareable situations: a plain query string on the concept page (``?scenario=stale-reads&lag=5&tt=3&mission=2``)
that another learner opens in their OWN sandbox.

The link names no sandbox, so it cannot reach anyone's: whoever opens it gets a confirm box on the page
("Load this situation into your sandbox"), and only its POST to `lab:scenario` changes anything, in the sandbox
of the session that sends it. A GET never changes state, so a reload, a preview bot or a prefetch leaves the
lab alone. Nothing is secret in it, so it is not signed: every value is validated instead, and a bad one is left
out of the box with a message (on the page) or refused with a 400 (on the POST).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.http import QueryDict

from lab.limits import LAG_MESSAGE, LAG_TEXT_MAX, parse_lag
from lab.missions import MISSIONS
from lab.scenarios import catalog
from lab.scenarios.catalog import Scenario
from lab.types import TemplateReadable

KEYS = ("scenario", "lag", "tt", "mission")


@dataclass(frozen=True)
class SharedState(TemplateReadable):
    """A situation as a link carries it; every field optional, at least one set."""

    scenario: str | None = None
    lag_ms: int | None = None
    tt: int | None = None
    mission: int = 0

    @property
    def lag(self) -> str | None:
        return None if self.lag_ms is None else f"{self.lag_ms / 1000:g}"

    def params(self) -> dict[str, str]:
        """The link's query parameters (and the confirm form's hidden fields), in a stable order."""
        values = {"scenario": self.scenario, "lag": self.lag, "tt": self.tt, "mission": self.mission or None}
        return {key: str(value) for key, value in values.items() if value is not None}

    def query(self) -> str:
        return urlencode(self.params())

    def link(self, path: str) -> str:
        """The link to `path` (a concept page) that opens this situation, landing on the lab."""
        return f"{path}?{self.query()}#lab" if self.params() else f"{path}#lab"


class ShareForm(forms.Form):
    """What a shared link (or a "Try it" button) posts to `lab:scenario`. `scenario` names a scenario file;
    without one, the lag and the mission apply to the learner's current sandbox."""

    scenario = forms.SlugField(max_length=60, required=False)
    lag = forms.CharField(max_length=LAG_TEXT_MAX, required=False, error_messages={"max_length": LAG_MESSAGE})
    tt = forms.IntegerField(min_value=0, required=False)
    mission = forms.IntegerField(min_value=1, max_value=len(MISSIONS), required=False)

    def clean_scenario(self) -> str | None:
        value = self.cleaned_data.get("scenario") or None
        if value is not None and catalog.get(value) is None:
            raise forms.ValidationError(f"There is no scenario {value!r}.", code="unknown")
        return value

    def clean_tt(self) -> int | None:
        value: int | None = self.cleaned_data.get("tt")
        limit = settings.LAB_MAX_EVENTS_PER_SANDBOX
        if value is not None and value > limit:
            raise forms.ValidationError(f"A time-travel version is at most {limit:,}.")
        return value

    def clean_lag(self) -> int | None:
        text = (self.cleaned_data.get("lag") or "").strip()
        if not text:
            return None
        try:
            return parse_lag(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and all(data.get(key) in (None, "") for key in KEYS):
            raise forms.ValidationError("Nothing to load: the link names no scenario, lag, time travel or mission.")
        return data

    @property
    def unknown_scenario(self) -> bool:
        return self.has_error("scenario", code="unknown")

    def shared(self) -> SharedState:
        data = self.cleaned_data
        return SharedState(data["scenario"], data["lag"], data["tt"], data["mission"] or 0)


@dataclass(frozen=True)
class Landing(TemplateReadable):
    """What the concept page shows when it is opened from a shared link: the situation to confirm, its scenario
    (title and what to notice), and why a part of the link was left out."""

    state: SharedState | None
    scenario: Scenario | None = None
    problems: list[str] = field(default_factory=list)


def landing(params: QueryDict | dict[str, Any]) -> Landing | None:
    """The shared situation a page's query string asks for; None when it carries none of the share keys. Each
    bad value is dropped with its message; what is left (if anything) can still be loaded. Reads only."""
    if not any(params.get(key) for key in KEYS):
        return None
    good: dict[str, Any] = {}
    problems: list[str] = []
    for key in KEYS:
        value = params.get(key)
        if not value:
            continue
        one = ShareForm({key: value})
        if one.is_valid() or key not in one.errors:
            good[key] = value
        else:
            problems.append(f"{key}: {one.errors[key][0]} (left out)")
    form = ShareForm(good)
    state = form.shared() if good and form.is_valid() else None
    scenario = catalog.get(state.scenario) if state is not None and state.scenario else None
    return Landing(state, scenario, problems)
