"""Validation of everything the lab accepts from a browser. Bad input becomes a form error (a 4xx), never a 500."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils import timezone

from lab.engine.decider import parse_amount
from lab.engine.messages import Rejected
from lab.limits import (
    COMMAND_ID,
    COMMAND_ID_MAX,
    DEPOSIT_SCHEMAS,
    LAG_MESSAGE,
    LAG_TEXT_MAX,
    REPLAY_RATE_MAX,
    REPLAY_RATE_MESSAGE,
    SNAPSHOT_INTERVAL_MAX,
    SNAPSHOT_INTERVAL_MESSAGE,
    parse_lag,
)
from lab.modes import MODE_MESSAGE, MODES
from lab.predictions import MOMENTS

AMOUNT_PRESETS = ("10", "25", "50", "100", "500")


class AmountField(forms.CharField):
    """Money as text parsed by the engine's own rule, so the form and the write model never disagree."""

    def __init__(self, **kwargs: Any) -> None:
        messages = {
            "null_characters_not_allowed": "Enter an amount such as 50 or 12.34.",
            "max_length": "Enter an amount such as 50 or 12.34.",
            **kwargs.pop("error_messages", {}),
        }
        super().__init__(max_length=32, strip=True, error_messages=messages, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        parsed = parse_amount(text)
        if isinstance(parsed, Rejected):
            raise forms.ValidationError(f"Enter a valid amount: {parsed.message}.")
        return parsed


class PlainIntegerField(forms.IntegerField):
    """A whole number in ASCII digits. Python's int() also reads Arabic-Indic or full-width digits ("\u0665" is 5),
    so `expected_version=\u0665\u0660` was taken as 50: what the learner sent and what the lab used would differ."""

    def to_python(self, value: Any) -> int | None:
        if isinstance(value, str) and not value.strip().isascii():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class OneValueEach(forms.Form):
    """A field sent twice (`kind=deposit&kind=withdraw`) is refused: Django would silently take the last value,
    and which one the learner meant is anybody's guess."""

    def clean(self) -> dict[str, Any]:
        getlist = getattr(self.data, "getlist", None)
        repeated = [name for name in self.fields if getlist is not None and len(getlist(name)) > 1]
        if repeated:
            raise forms.ValidationError(f"Send each field once: {', '.join(repeated)} came more than once.")
        super().clean()
        return self.cleaned_data


class CommandForm(OneValueEach):
    # Django's message repeats the value sent (10 kB of it, or markup): a 400 names the rule, never echoes input.
    kind = forms.ChoiceField(
        choices=[("deposit", "Deposit"), ("withdraw", "Withdraw")],
        error_messages={"invalid_choice": "Choose deposit or withdraw."},
    )
    amount = AmountField(error_messages={"required": "Enter an amount, for example 50."})
    command_id = forms.CharField(max_length=COMMAND_ID_MAX, required=False)
    expected_version = PlainIntegerField(min_value=0, required=False)

    def clean_command_id(self) -> str | None:
        value = self.cleaned_data.get("command_id") or ""
        # The service layer's rule (ASCII letters, digits, - and _): ids are stored and shown back in the event log.
        if value and not COMMAND_ID.fullmatch(value):
            raise forms.ValidationError("Invalid command id.")
        return value or None


class LagForm(OneValueEach):
    lag = forms.CharField(max_length=LAG_TEXT_MAX, error_messages={"required": LAG_MESSAGE, "max_length": LAG_MESSAGE})

    def clean_lag(self) -> str:
        """The lag as typed, once the rule (lab.limits.parse_lag) accepts it."""
        text: str = self.cleaned_data["lag"].strip()
        try:
            parse_lag(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


class SnapshotIntervalForm(OneValueEach):
    interval = PlainIntegerField(
        min_value=0,
        max_value=SNAPSHOT_INTERVAL_MAX,
        error_messages={
            "required": "Enter how many events between snapshots (0 turns them off).",
            "invalid": SNAPSHOT_INTERVAL_MESSAGE,
            "min_value": SNAPSHOT_INTERVAL_MESSAGE,
            "max_value": SNAPSHOT_INTERVAL_MESSAGE,
        },
    )


class ReplayRateForm(OneValueEach):
    """The pace of a rebuild and of the retroactive model's catch-up: events a second, 0 = as fast as possible.
    The panel offers lab.limits.REPLAY_RATE_PRESETS; any whole number from 0 to REPLAY_RATE_MAX is accepted."""

    rate = PlainIntegerField(
        min_value=0,
        max_value=REPLAY_RATE_MAX,
        error_messages={
            "required": REPLAY_RATE_MESSAGE,
            "invalid": REPLAY_RATE_MESSAGE,
            "min_value": REPLAY_RATE_MESSAGE,
            "max_value": REPLAY_RATE_MESSAGE,
        },
    )


class SchemaForm(OneValueEach):
    version = forms.TypedChoiceField(choices=[(str(v), str(v)) for v in DEPOSIT_SCHEMAS], coerce=int)


class ProjectorForm(OneValueEach):
    action = forms.ChoiceField(
        choices=[
            ("pause", "Pause"),
            ("resume", "Resume"),
            ("crash", "Crash"),
            ("retry", "Retry the failed event"),
            ("skip", "Skip it to the dead-letter list"),
            ("poison", "Append a poison event"),
        ]
    )


class VersionForm(forms.Form):
    """A version picked on a slider or by a step button; clamped to the stream later, so only the type is checked."""

    version = PlainIntegerField(min_value=0, max_value=10_000_000, required=False)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # how an ISO date (and time) starts; a time of day never does
FRACTION = re.compile(r":\d{2}[.,]\d")  # seconds with a fraction: an exact instant
AT_MESSAGE = (
    "Enter a time such as 09:12:30 (today, in the site's time zone) or a date and time such as 2026-03-01T09:12:30."
)


def parse_moment(text: str) -> dt.datetime:
    """The last instant a typed moment covers, as an aware datetime. Raises ValueError with AT_MESSAGE.

    "HH:MM[:SS[.ffffff]]" is a time of day today in the site's time zone (TIME_ZONE; the event log shows times in
    it); otherwise an ISO date and time ("2026-03-01T09:12:30", with an offset or "Z", or naive: the site's zone),
    or an ISO date alone. A moment typed to the second covers that whole second, as the log shows it (the event
    listed at 09:12:30 is in the balance at 09:12:30), a date alone covers that whole day ("the balance on
    March 1"), and fractions of a second are exact. <input type="time" step="1"> sends "HH:MM" at :00 seconds."""
    text = text.strip()
    try:
        if ISO_DATE.match(text):
            moment = dt.datetime.fromisoformat(text)
            covers = dt.timedelta(days=1) if len(text) == len("2026-03-01") else dt.timedelta(seconds=1)
        else:
            moment = dt.datetime.combine(timezone.localdate(), dt.time.fromisoformat(text))
            covers = dt.timedelta(seconds=1)
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
        last = moment if FRACTION.search(text) else moment + covers - dt.timedelta(microseconds=1)
        return timezone.localtime(last.astimezone(dt.UTC))  # both conversions in range, or a ValueError here
    except (ValueError, OverflowError):
        raise ValueError(AT_MESSAGE) from None


class TimeTravelAtForm(forms.Form):
    """Time travel by time: `at` as <input type="time" step="1"> sends it, or an ISO date and time."""

    at = forms.CharField(max_length=40, error_messages={"required": AT_MESSAGE, "max_length": AT_MESSAGE})

    def clean_at(self) -> dt.datetime:
        try:
            return parse_moment(self.cleaned_data["at"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


def time_travel_at(params: QueryDict | dict[str, Any]) -> dt.datetime | None:
    """The moment a request's `at` asks to travel to; None when it has none (travel by `tt`, the version) or it
    is not valid (the time-travel endpoint answers that with a 400 before it gets here)."""
    if not params.get("at"):
        return None
    form = TimeTravelAtForm({"at": params.get("at")})
    return form.cleaned_data["at"] if form.is_valid() else None


class LogForm(forms.Form):
    page = PlainIntegerField(min_value=1, max_value=100_000, required=False)
    type = forms.ChoiceField(
        choices=[("", "All"), ("Deposited", "Deposited"), ("Withdrew", "Withdrew"), ("InterestPaid", "InterestPaid")],
        required=False,
        # Django's own message quotes the value sent; an answer never echoes its input.
        error_messages={"invalid_choice": "Filter by Deposited, Withdrew or InterestPaid, or show all events."},
    )


class PredictForm(forms.Form):
    """A learner's answer to a "Predict" question: which moment, and the choice's value (shown back, never stored)."""

    moment = forms.ChoiceField(
        choices=[(m, m) for m in MOMENTS], error_messages={"invalid_choice": "Unknown question."}
    )
    choice = forms.CharField(max_length=80, error_messages={"required": "Pick one of the answers."})


class ModeForm(forms.Form):
    """Which write model the fresh sandbox runs (lab.modes)."""

    mode = forms.ChoiceField(
        choices=[(m, m) for m in MODES], error_messages={"required": MODE_MESSAGE, "invalid_choice": MODE_MESSAGE}
    )


class ImportForm(forms.Form):
    """An exported log to import (lab.exchange checks what is in it)."""

    log = forms.FileField(
        allow_empty_file=False,
        error_messages={
            "required": "Choose a log file to import: a .json file exported from the lab.",
            "empty": "The file is empty: choose a log file exported from the lab.",
            "invalid": "Send the log as a file upload (multipart/form-data, field “log”).",
            "missing": "Choose a log file to import: a .json file exported from the lab.",
        },
    )
