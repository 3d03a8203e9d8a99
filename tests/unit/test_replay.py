"""Loading = nearest usable snapshot at or below the target + the events after it; equal to a full fold."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from lab.engine.decider import fold
from lab.engine.messages import Deposited, Withdrew
from lab.engine.replay import StoredSnapshot, load, usable_snapshot
from lab.engine.snapshots import fingerprint, state_to_dict

D = Decimal


def snapshot_of(events, version, fp=None):
    return StoredSnapshot(version=version, state=state_to_dict(fold(events[:version])), fingerprint=fp or fingerprint())


def account_events(amounts):
    """A history that never overdraws: deposits, with every third one followed by a smaller withdrawal."""
    events = []
    for i, amount in enumerate(amounts):
        events.append(Deposited(amount))
        if i % 3 == 2:
            events.append(Withdrew((amount / 2).quantize(D("0.01")) or D("0.01")))
    return events


amounts = st.lists(st.decimals(min_value=D("0.02"), max_value=D("500.00"), places=2), min_size=1, max_size=40)


@given(amounts, st.data())
def test_fold_of_all_events_equals_snapshot_plus_tail(values, data):
    events = account_events(values)
    at = data.draw(st.integers(min_value=0, max_value=len(events)))
    snaps = [snapshot_of(events, at)] if at else []
    snap, state, stale = usable_snapshot(snaps, len(events))
    loaded = load(snap, state, events[at if snap else 0 :], stale)
    assert loaded.state == fold(events)
    assert loaded.events_replayed == len(events) - (at if snap else 0)


def test_the_nearest_snapshot_at_or_below_the_target_is_chosen():
    events = account_events([D("10.00")] * 9)
    snaps = [snapshot_of(events, v) for v in (3, 6, 9)]
    snap, state, stale = usable_snapshot(snaps, 8)
    assert snap is not None and snap.version == 6 and state == fold(events[:6]) and not stale


def test_a_snapshot_with_another_fingerprint_is_skipped_and_reported_stale():
    events = account_events([D("10.00")] * 6)
    snaps = [snapshot_of(events, 3), snapshot_of(events, 6, fp="f" * 64)]
    snap, _, stale = usable_snapshot(snaps, 6)
    assert snap is not None and snap.version == 3 and stale


def test_a_snapshot_whose_state_disagrees_with_its_version_is_not_used():
    events = account_events([D("10.00")] * 4)
    wrong = StoredSnapshot(version=4, state=state_to_dict(fold(events[:2])), fingerprint=fingerprint())
    snap, state, stale = usable_snapshot([wrong], 4)
    assert (snap, state, stale) == (None, None, True)


def test_without_snapshots_the_load_starts_from_the_first_event():
    events = account_events([D("5.00")] * 3)
    loaded = load(None, None, events)
    assert loaded.snapshot_version is None and loaded.events_replayed == len(events)
    assert loaded.state == fold(events)
