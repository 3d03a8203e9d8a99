"""The event log's rows are rendered once per event and kept (lab.log_rows): a kept row must never stand in for a
different one, and the kept rows stay bounded."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from lab import log_rows
from lab.types import EventView


def event(position: int = 1, *, schema: int = 1, payload: dict | None = None, event_type: str = "Deposited",
          event_id: str | None = None) -> EventView:  # fmt: skip
    raw = payload if payload is not None else {"amount": "5.00"}
    return EventView(
        position=position, stream_id="account-x", version=position, event_type=event_type, schema_version=schema,
        recorded_at=dt.datetime(2026, 11, 30, 12, 0, 1, tzinfo=dt.UTC), raw_payload=raw,
        upcast_payload={"amount_cents": 500} if schema == 1 else raw,
        event_id=event_id or uuid.uuid4().hex, command_id="c", correlation_id="r", causation_id="k",
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _empty() -> None:
    log_rows._rows.clear()


def test_a_row_is_rendered_once_and_then_kept() -> None:
    e = event()
    first = log_rows.row_html(e, upcast_shown=False, deposit_schema=1)
    assert 'data-testid="event-row"' in first and "#1" in first and "$5.00" in first
    assert log_rows.row_html(e, upcast_shown=False, deposit_schema=1) is first


def test_the_upcast_pair_follows_the_sandboxs_schema_not_the_kept_row() -> None:
    e = event(schema=1)
    before = log_rows.row_html(e, upcast_shown=False, deposit_schema=1)
    after = log_rows.row_html(e, upcast_shown=True, deposit_schema=2)
    assert "read as (v2)" not in before
    assert "read as (v2)" in after and "stored (v1)" in after


def test_an_event_with_a_reused_position_gets_its_own_row() -> None:
    # An emptied test database hands out position 1 again, to another event.
    a = log_rows.row_html(event(1, schema=2, payload={"amount": "5.00"}), upcast_shown=False, deposit_schema=2)
    b = log_rows.row_html(event(1, schema=2, payload={"amount": "7.00"}), upcast_shown=False, deposit_schema=2)
    assert "$5.00" in a and "$7.00" in b


def test_the_time_zone_it_is_shown_in_is_in_its_key() -> None:
    e = event()
    utc = log_rows.row_html(e, upcast_shown=False, deposit_schema=1)
    with timezone.override("Europe/Berlin"):
        berlin = log_rows.row_html(e, upcast_shown=False, deposit_schema=1)
    assert "12:00:01" in utc and "13:00:01" in berlin


def test_payloads_are_escaped() -> None:
    html = log_rows.row_html(event(payload={"amount": "<script>x</script>"}), upcast_shown=False, deposit_schema=2)
    assert "<script>x" not in html and "&lt;script&gt;" in html


def test_the_kept_rows_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_rows._rows, "limit", 5)
    events = [event(n) for n in range(1, 12)]
    for e in events:
        log_rows.row_html(e, upcast_shown=False, deposit_schema=1)
    assert len(log_rows._rows) == 5
    kept = {key[0] for key in log_rows._rows.keys()}
    assert kept == {e.event_id for e in events[-5:]}  # the least recently shown went first
