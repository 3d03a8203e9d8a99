"""The chart's history from the server (applied_at on every history line, `queries.chart_series`), and time travel
by time (`timeline.state_at_time`, the `at` parameter of the time-travel endpoint)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from lab import projector, queries, rebuild, timeline
from lab.forms import AT_MESSAGE
from lab.models import BALANCE, HistoryLine, Sandbox
from lab.projections import project
from lab.types import ChartLine
from tests.integration.lab_events import append, new_sandbox, visitor

pytestmark = [pytest.mark.django_db, pytest.mark.backend]

HX = {"HTTP_HX_REQUEST": "true"}
NOW = timezone.now().replace(microsecond=0)


def ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def sandbox_with_events(seconds_ago: list[float], now: dt.datetime = NOW) -> Sandbox:
    """Deposits of $1, $2, ... recorded `seconds_ago` before `now`, projected; each history line applied one
    second after its event was recorded."""
    sandbox = new_sandbox(replay_rate=0)
    for i, ago in enumerate(seconds_ago, start=1):
        append(sandbox, "Deposited", str(i), recorded_at=now - dt.timedelta(seconds=ago))
    projector.drain([sandbox.pk])
    for i, ago in enumerate(seconds_ago, start=1):
        HistoryLine.objects.filter(sandbox=sandbox, version=i).update(applied_at=now - dt.timedelta(seconds=ago - 1))
    return sandbox


def applied_ats(sandbox: Sandbox, generation: int) -> list[dt.datetime | None]:
    lines = HistoryLine.objects.filter(sandbox=sandbox, generation=generation).order_by("position")
    return list(lines.values_list("applied_at", flat=True))


# --- applied_at -----------------------------------------------------------------------------------------------


def test_the_projector_stamps_when_it_applied_each_history_line():
    sandbox = new_sandbox()
    append(sandbox, "Deposited", "5")
    append(sandbox, "Withdrew", "2")
    before = timezone.now()
    projector.drain([sandbox.pk])
    after = timezone.now()
    stamps = applied_ats(sandbox, 1)
    assert len(stamps) == 2 and all(s is not None and before <= s <= after for s in stamps)
    recorded = HistoryLine.objects.filter(sandbox=sandbox).values_list("recorded_at", flat=True)
    assert all(at <= stamp for at, stamp in zip(recorded, stamps, strict=True))


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_stamps_the_new_generation_when_it_applies_it():
    sandbox = sandbox_with_events([300, 200])  # applied long ago by the live generation
    started = timezone.now()
    rebuild.rebuild_now(sandbox.pk)
    assert Sandbox.objects.get(pk=sandbox.pk).live_generation == 2
    stamps = applied_ats(sandbox, 2)
    assert len(stamps) == 2 and all(s is not None and s >= started for s in stamps)


# --- chart_series ---------------------------------------------------------------------------------------------


def test_the_chart_has_the_points_within_the_window_in_order_and_the_versions_before_it():
    sandbox = sandbox_with_events([120, 90, 30, 20, 10])
    chart = queries.chart_series(sandbox, 60, now=NOW)
    at = [NOW - dt.timedelta(seconds=s) for s in (30, 20, 10)]
    assert chart.write == ChartLine(
        points=((ms(at[0]), 3), (ms(at[1]), 4), (ms(at[2]), 5)), before=2, since_ms=ms(NOW) - 60_000
    )
    applied = [a + dt.timedelta(seconds=1) for a in at]
    assert chart.read.points == ((ms(applied[0]), 3), (ms(applied[1]), 4), (ms(applied[2]), 5))
    assert (chart.read.before, chart.read.since_ms) == (2, ms(NOW) - 60_000)
    assert (chart.now_ms, chart.window_ms) == (ms(NOW), 60_000)
    assert chart.as_json() == {
        "now": ms(NOW),
        "window": 60_000,
        "write": [[ms(at[i]), i + 3] for i in range(3)],
        "read": [[ms(applied[i]), i + 3] for i in range(3)],
        "write_before": 2,
        "read_before": 2,
        "write_since": ms(NOW) - 60_000,
        "read_since": ms(NOW) - 60_000,
    }


def test_the_read_line_lags_the_write_line_by_what_is_still_in_flight():
    sandbox = sandbox_with_events([50, 40])
    append(sandbox, "Deposited", "3", recorded_at=NOW - dt.timedelta(seconds=5))  # not projected yet
    chart = queries.chart_series(sandbox, 60, now=NOW)
    assert [v for _, v in chart.write.points] == [1, 2, 3]
    assert [v for _, v in chart.read.points] == [1, 2]
    assert chart.write.before == chart.read.before == 0  # nothing before the window


def test_the_chart_is_capped_to_the_newest_points_and_says_from_when_it_is_exact():
    sandbox = sandbox_with_events([50, 40, 30, 20, 10])
    chart = queries.chart_series(sandbox, 60, now=NOW, limit=2)
    assert [v for _, v in chart.write.points] == [4, 5]
    # v3 is in the window but left out: the line holds v3 from its time on, not from the window's start.
    assert (chart.write.before, chart.write.since_ms) == (3, ms(NOW - dt.timedelta(seconds=30)))
    assert [v for _, v in chart.read.points] == [4, 5]
    assert (chart.read.before, chart.read.since_ms) == (3, ms(NOW - dt.timedelta(seconds=29)))


def test_an_empty_sandbox_and_one_quiet_for_longer_than_the_window_have_flat_lines():
    empty = queries.chart_series(new_sandbox(), 60, now=NOW)
    assert (empty.write.points, empty.write.before, empty.read.points, empty.read.before) == ((), 0, (), 0)
    quiet = queries.chart_series(sandbox_with_events([300, 200, 100]), 60, now=NOW)
    assert (quiet.write.points, quiet.write.before, quiet.read.points, quiet.read.before) == ((), 3, (), 3)


def test_history_lines_from_before_applied_at_existed_count_as_before_the_window():
    sandbox = sandbox_with_events([30, 20])
    HistoryLine.objects.filter(sandbox=sandbox, version=1).update(applied_at=None)
    chart = queries.chart_series(sandbox, 60, now=NOW)
    assert [v for _, v in chart.read.points] == [2] and chart.read.before == 1


@pytest.mark.django_db(transaction=True)
def test_the_read_line_is_the_live_generations_during_and_after_a_rebuild():
    sandbox = sandbox_with_events([300, 200, 100])  # generation 1 applied them long ago
    with transaction.atomic():
        rebuild.begin(sandbox.pk, max_concurrent=None)
    project(sandbox.pk, BALANCE, 2, lag=None, limit=2, rebuilding=True)  # generation 2 holds v1, v2 so far
    during = queries.chart_series(sandbox, 60)
    assert (during.read.points, during.read.before) == ((), 3)  # still generation 1: flat at v3
    rebuild.rebuild_now(sandbox.pk)
    after = queries.chart_series(sandbox, 60)
    # Generation 2 applied every event during the rebuild, inside the window: the chart shows that replay.
    assert [v for _, v in after.read.points] == [1, 2, 3] and after.read.before == 0
    assert all(after.now_ms - 60_000 <= t <= after.now_ms for t, _ in after.read.points)
    assert (after.write.points, after.write.before) == ((), 3)


# --- time travel by time --------------------------------------------------------------------------------------


def today_at(hour: int, minute: int, second: int, microsecond: int = 0) -> dt.datetime:
    """A moment today in the site's time zone (what a bare time of day means)."""
    return timezone.make_aware(dt.datetime.combine(timezone.localdate(), dt.time(hour, minute, second, microsecond)))


@pytest.fixture
def learner() -> tuple[Client, Sandbox]:
    """A visitor whose sandbox has deposits of $10, $20, $30 recorded today at 01:00:00.25, 01:00:05.5 and
    01:00:10 exactly, in the site's time zone."""
    client = visitor("/lab/")
    sandbox = Sandbox.objects.get(session_key=client.session.session_key, retired_at=None)
    for amount, at in [
        ("10", today_at(1, 0, 0, 250_000)),
        ("20", today_at(1, 0, 5, 500_000)),
        ("30", today_at(1, 0, 10)),
    ]:
        append(sandbox, "Deposited", amount, recorded_at=at)
    return client, sandbox


def travel(client: Client, **params: str):
    return client.get("/lab/time-travel/", params, **HX)


def version_shown(response) -> int:
    assert response.status_code == 200, response.content
    html = response.content.decode()
    start = html.index('data-testid="time-travel-state"')
    return int(html[start:].split('data-version="', 1)[1].split('"', 1)[0])


def test_state_at_time_before_between_at_and_after_the_events(learner):
    _, sandbox = learner
    before = timeline.state_at_time(sandbox, today_at(0, 59, 59))
    assert (before.version, before.balance, before.before_first_event, before.event_recorded_at) == (
        0,
        Decimal("0.00"),
        True,
        None,
    )
    between = timeline.state_at_time(sandbox, today_at(1, 0, 7))
    assert (between.version, between.balance, between.resolved_by_time) == (2, Decimal("30.00"), True)
    assert between.event_recorded_at == today_at(1, 0, 5, 500_000)
    assert between.at == today_at(1, 0, 7)
    exactly = timeline.state_at_time(sandbox, today_at(1, 0, 10))
    assert (exactly.version, exactly.event_recorded_at) == (3, today_at(1, 0, 10))
    assert timeline.state_at_time(sandbox, today_at(1, 0, 9, 999_999)).version == 2
    later = timeline.state_at_time(sandbox, timezone.now() + dt.timedelta(hours=1))
    assert (later.version, later.balance, later.later_than_now) == (3, Decimal("60.00"), True)
    assert not timeline.state_at(sandbox, 2).resolved_by_time


def test_time_travel_by_a_time_of_day_covers_the_whole_second_the_log_shows(learner):
    client, _ = learner
    assert version_shown(travel(client, at="00:59:59")) == 0  # before the first event
    assert version_shown(travel(client, at="01:00")) == 1  # "HH:MM" is :00 seconds; the event at .25 s is in it
    assert version_shown(travel(client, at="01:00:04")) == 1  # between events
    assert version_shown(travel(client, at="01:00:05")) == 2
    assert version_shown(travel(client, at="01:00:10")) == 3  # exactly at the last event's time
    assert version_shown(travel(client, at="01:00:09.999")) == 2  # a fraction of a second is exact
    assert version_shown(travel(client, at="23:59:59")) == 3  # after the last
    html = travel(client, at="01:00:07").content.decode()
    assert "$30.00" in html and "v=2" in html


def test_time_travel_by_an_iso_date_and_time(learner):
    client, _ = learner
    day = timezone.localdate().isoformat()
    assert version_shown(travel(client, at=f"{day}T01:00:05")) == 2
    assert version_shown(travel(client, at=f"{day} 01:00:05.400")) == 1
    utc = today_at(1, 0, 5).astimezone(dt.UTC)
    assert version_shown(travel(client, at=utc.strftime("%Y-%m-%dT%H:%M:%SZ"))) == 2
    plus_two = today_at(1, 0, 10).astimezone(dt.timezone(dt.timedelta(hours=2)))
    assert version_shown(travel(client, at=plus_two.isoformat())) == 3
    assert version_shown(travel(client, at=day)) == 3  # a date alone: the end of that day
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    assert version_shown(travel(client, at=yesterday)) == 0


def test_at_takes_precedence_over_tt_and_an_empty_at_falls_back_to_the_version(learner):
    client, _ = learner
    assert version_shown(travel(client, at="01:00:01", tt="3")) == 1
    assert version_shown(travel(client, at="", tt="2")) == 2


@pytest.mark.parametrize(
    "bad", ["25:00", "9:12", "noon", "01:00:61", "2026-13-01T00:00", "x" * 41, "0001-01-01T00:00+05:00"]
)
def test_a_bad_time_is_a_400_that_says_what_to_type(learner, bad):
    client, _ = learner
    response = travel(client, at=bad)
    assert response.status_code == 400
    # htmx swaps a 400 in as HTML (lab.js): the message as an escaped alert; without htmx, the message as text.
    assert response["Content-Type"].startswith("text/html")
    assert response.content.decode() == f'<p class="lab-result lab-result--bad" role="alert">{escape(AT_MESSAGE)}</p>'
    plain = client.get("/lab/time-travel/", {"at": bad})
    assert plain.status_code == 400
    assert plain["Content-Type"].startswith("text/plain")
    assert plain.content.decode() == AT_MESSAGE
