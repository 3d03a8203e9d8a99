"""lab.domain_forms.time_travel: a time of day as the log shows it (UTC) → the moment time travel folds up to."""

from __future__ import annotations

import datetime as dt

import pytest

from lab.domain_forms import DomainInputError, time_travel

NOW = dt.datetime(2026, 11, 30, 9, 12, 30, 250_000, tzinfo=dt.UTC)


def at(text: str, now: dt.datetime = NOW) -> dt.datetime | None:
    return time_travel({"at": text}, now)[1]


def test_a_minute_means_its_end_and_a_second_too():
    assert at("09:11") == dt.datetime(2026, 11, 30, 9, 11, 59, 999_999, tzinfo=dt.UTC)
    assert at("09:11:05") == dt.datetime(2026, 11, 30, 9, 11, 5, 999_999, tzinfo=dt.UTC)


def test_a_minute_or_second_still_going_on_means_now_not_yesterday():
    assert at("09:12") == NOW
    assert at("09:12:30") == NOW  # the event recorded a moment ago in this very second is included


def test_a_time_still_ahead_today_is_yesterdays():
    assert at("09:13") == dt.datetime(2026, 11, 29, 9, 13, 59, 999_999, tzinfo=dt.UTC)
    assert at("23:59:59") == dt.datetime(2026, 11, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC)


def test_a_version_or_nothing():
    assert time_travel({"version": "3"}, NOW) == (3, None)
    assert time_travel({}, NOW) == (None, None)


@pytest.mark.parametrize(
    "data", [{"at": "24:00"}, {"at": "9"}, {"at": "09:60"}, {"version": "-1"}, {"version": "1", "at": "09:00"}]
)
def test_anything_else_is_refused_with_its_reason(data):
    with pytest.raises(DomainInputError):
        time_travel(data, NOW)
