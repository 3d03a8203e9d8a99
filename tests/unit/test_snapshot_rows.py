"""The Snapshots tool's rows are rendered once per content and kept (lab.snapshot_rows): a kept row must never stand
in for a snapshot that shows differently, and the kept rows stay bounded."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from lab import snapshot_rows
from lab.types import SnapshotView

TAKEN = dt.datetime(2026, 12, 2, 9, 30, 5, tzinfo=dt.UTC)


def snapshot(version: int = 10, balance: object = "85.00", *, valid: bool = True, reason: str = "auto",
             taken_at: dt.datetime = TAKEN) -> SnapshotView:  # fmt: skip
    return SnapshotView(version=version, state={"balance": balance, "version": version}, taken_at=taken_at,
                        reason=reason, valid=valid)  # fmt: skip


@pytest.fixture(autouse=True)
def _empty() -> None:
    snapshot_rows._rows.clear()


def test_a_row_is_rendered_once_and_then_kept() -> None:
    first = snapshot_rows.row_html(snapshot())
    assert 'data-testid="snapshot-row"' in first and "v=10" in first and "$85.00" in first and "09:30:05" in first
    assert snapshot_rows.row_html(snapshot()) is first


def test_every_value_the_row_shows_is_in_its_key() -> None:
    base = snapshot_rows.row_html(snapshot())
    assert "ignored: made by older code" not in base
    assert "ignored: made by older code" in snapshot_rows.row_html(snapshot(valid=False))
    assert "$1,234.50" in snapshot_rows.row_html(snapshot(balance="1234.50"))
    assert "manual" in snapshot_rows.row_html(snapshot(reason="manual"))
    assert "09:31:00" in snapshot_rows.row_html(snapshot(taken_at=TAKEN.replace(minute=31, second=0)))
    # A damaged snapshot's balance of another type is another row, however it prints.
    assert snapshot_rows.row_html(snapshot(balance=None)) is not snapshot_rows.row_html(snapshot(balance="None"))


def test_the_time_zone_it_is_shown_in_is_in_its_key() -> None:
    utc = snapshot_rows.row_html(snapshot())
    with timezone.override("Europe/Berlin"):
        berlin = snapshot_rows.row_html(snapshot())
    assert "09:30:05" in utc and "10:30:05" in berlin


def test_reasons_are_escaped() -> None:
    html = snapshot_rows.row_html(snapshot(reason="<b>x</b>"))
    assert "<b>x" not in html and "&lt;b&gt;x" in html


def test_the_kept_rows_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_rows._rows, "limit", 3)
    for version in range(1, 8):
        snapshot_rows.row_html(snapshot(version))
    assert [key[0] for key in snapshot_rows._rows.keys()] == [5, 6, 7]  # the least recently shown went first
