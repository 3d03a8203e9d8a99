"""Validation of everything the lab accepts from a browser. Bad input becomes a form error (a 4xx), never a 500."""

from __future__ import annotations

from typing import Any

from django import forms

from lab.engine.decider import parse_amount
from lab.engine.messages import Rejected
from lab.limits import (
    COMMAND_ID_MAX,
    DEPOSIT_SCHEMAS,
    LAG_MESSAGE,
    LAG_TEXT_MAX,
    SNAPSHOT_INTERVAL_MAX,
    SNAPSHOT_INTERVAL_MESSAGE,
    parse_lag,
)

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


class CommandForm(forms.Form):
    kind = forms.ChoiceField(choices=[("deposit", "Deposit"), ("withdraw", "Withdraw")])
    amount = AmountField(error_messages={"required": "Enter an amount, for example 50."})
    command_id = forms.CharField(max_length=COMMAND_ID_MAX, required=False)
    expected_version = forms.IntegerField(min_value=0, required=False)

    def clean_command_id(self) -> str | None:
        value = self.cleaned_data.get("command_id") or ""
        # Printable ids only: they are stored and shown back in the event log.
        if value and not all(c.isalnum() or c in "-_" for c in value):
            raise forms.ValidationError("Invalid command id.")
        return value or None


class LagForm(forms.Form):
    lag = forms.CharField(max_length=LAG_TEXT_MAX, error_messages={"required": LAG_MESSAGE, "max_length": LAG_MESSAGE})

    def clean_lag(self) -> str:
        """The lag as typed, once the rule (lab.limits.parse_lag) accepts it."""
        text: str = self.cleaned_data["lag"].strip()
        try:
            parse_lag(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


class SnapshotIntervalForm(forms.Form):
    interval = forms.IntegerField(
        min_value=0,
        max_value=SNAPSHOT_INTERVAL_MAX,
        error_messages={
            "required": "Enter how many events between snapshots (0 turns them off).",
            "invalid": SNAPSHOT_INTERVAL_MESSAGE,
            "min_value": SNAPSHOT_INTERVAL_MESSAGE,
            "max_value": SNAPSHOT_INTERVAL_MESSAGE,
        },
    )


class SchemaForm(forms.Form):
    version = forms.TypedChoiceField(choices=[(str(v), str(v)) for v in DEPOSIT_SCHEMAS], coerce=int)


class ProjectorForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("pause", "Pause"), ("resume", "Resume"), ("crash", "Crash"), ("retry", "Retry the failed event")]
    )


class VersionForm(forms.Form):
    """A version picked on a slider or by a step button; clamped to the stream later, so only the type is checked."""

    version = forms.IntegerField(min_value=0, max_value=10_000_000, required=False)


class LogForm(forms.Form):
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False)
    type = forms.ChoiceField(
        choices=[("", "All"), ("Deposited", "Deposited"), ("Withdrew", "Withdrew")], required=False
    )
