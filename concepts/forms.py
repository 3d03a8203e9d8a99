"""Validation of everything the lab accepts from a browser. Bad input becomes a form error (a 4xx), never a 500."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.utils.http import url_has_allowed_host_and_scheme

from concepts.engine.decider import parse_amount
from concepts.engine.messages import Rejected

LAG_MAX_S = Decimal("10")
SNAPSHOT_INTERVAL_MAX = 1000
AMOUNT_PRESETS = ("10", "25", "50", "100", "500")


class AmountField(forms.CharField):
    """Money as text parsed by the engine's own rule, so the form and the write model never disagree."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        messages = {
            "null_characters_not_allowed": "Enter an amount such as 50 or 12.34.",
            "max_length": "Enter an amount such as 50 or 12.34.",
            **kwargs.pop("error_messages", {}),
        }
        super().__init__(max_length=32, strip=True, error_messages=messages, **kwargs)

    def clean(self, value):  # type: ignore[no-untyped-def]
        text = super().clean(value)
        parsed = parse_amount(text)
        if isinstance(parsed, Rejected):
            raise forms.ValidationError(f"Enter a valid amount: {parsed.message}.")
        return parsed


class CommandForm(forms.Form):
    kind = forms.ChoiceField(choices=[("deposit", "Deposit"), ("withdraw", "Withdraw")])
    amount = AmountField(error_messages={"required": "Enter an amount, for example 50."})
    command_id = forms.CharField(max_length=64, required=False)
    expected_version = forms.IntegerField(min_value=0, required=False)

    def clean_command_id(self) -> str | None:
        value = self.cleaned_data.get("command_id") or ""
        # Printable ids only: they are stored and shown back in the event log.
        if value and not all(c.isalnum() or c in "-_" for c in value):
            raise forms.ValidationError("Invalid command id.")
        return value or None


class LagForm(forms.Form):
    lag = forms.CharField(max_length=16, error_messages={"required": "Enter a lag in seconds, 0 to 10."})

    def clean_lag(self) -> str:
        text = self.cleaned_data["lag"].strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise forms.ValidationError("The lag must be a number of seconds from 0 to 10.") from None
        if not value.is_finite() or value < 0 or value > LAG_MAX_S:
            raise forms.ValidationError("The lag must be a number of seconds from 0 to 10.")
        return text


class SnapshotIntervalForm(forms.Form):
    interval = forms.IntegerField(
        min_value=0,
        max_value=SNAPSHOT_INTERVAL_MAX,
        error_messages={
            "required": "Enter how many events between snapshots (0 turns them off).",
            "invalid": "The snapshot interval must be a whole number from 0 to 1000.",
            "min_value": "The snapshot interval must be a whole number from 0 to 1000.",
            "max_value": "The snapshot interval must be a whole number from 0 to 1000.",
        },
    )


class SchemaForm(forms.Form):
    version = forms.TypedChoiceField(choices=[("1", "1"), ("2", "2")], coerce=int)


class ProjectorForm(forms.Form):
    action = forms.ChoiceField(
        choices=[("pause", "Pause"), ("resume", "Resume"), ("crash", "Crash"), ("retry", "Retry the failed event")]
    )


class QueryForm(forms.Form):
    read_your_writes = forms.BooleanField(required=False)


class VersionForm(forms.Form):
    """A version picked on a slider or by a step button; clamped to the stream later, so only the type is checked."""

    version = forms.IntegerField(min_value=0, max_value=10_000_000, required=False)


class LogForm(forms.Form):
    page = forms.IntegerField(min_value=1, max_value=100_000, required=False)
    type = forms.ChoiceField(
        choices=[("", "All"), ("Deposited", "Deposited"), ("Withdrew", "Withdrew")], required=False
    )


def safe_next(candidate: str | None, request, default: str) -> str:  # type: ignore[no-untyped-def]
    """Where a no-JavaScript form goes back to: only a path on this site, never an open redirect."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        if candidate.startswith("/") and not candidate.startswith("//"):
            return candidate
    return default
