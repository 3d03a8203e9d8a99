"""reqflow.collector: a server process collects young garbage at GC_GEN0_THRESHOLD and freezes what start-up loaded."""

from __future__ import annotations

import gc

import pytest

from reqflow.collector import pace_for_a_server


@pytest.fixture
def collector_restored():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_a_server_collects_young_garbage_at_the_set_pace_and_freezes_what_is_loaded(settings, collector_restored):
    settings.GC_GEN0_THRESHOLD = 12_345
    gc.unfreeze()
    older = gc.get_threshold()[1:]
    pace_for_a_server()
    assert gc.get_threshold() == (12_345, *older)
    assert gc.get_freeze_count() > 0  # Django and the apps, loaded for good


def test_zero_keeps_pythons_own_pace(settings, collector_restored):
    settings.GC_GEN0_THRESHOLD = 0
    gc.unfreeze()
    before = gc.get_threshold()
    pace_for_a_server()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
