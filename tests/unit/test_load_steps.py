"""bench/load/steps.py: a step of `make load`'s step mode lasts long enough for its p99 to mean something."""

from __future__ import annotations

from bench.load.steps import step_seconds


def test_a_slow_rate_runs_until_it_sent_enough_commands():
    assert step_seconds(2.0, 20.0, 100) == 50.5  # 40 commands in 20 s: its p99 would be its slowest command
    # and with the pacing's first interval, 100 commands need 101 intervals: 50 s at 2/s sent 99


def test_a_fast_rate_keeps_the_set_duration():
    assert step_seconds(25.0, 20.0, 100) == 20.0
    assert step_seconds(2.0, 20.0, 0) == 20.0  # no minimum asked: the main phase's single rate


def test_a_zero_rate_keeps_the_set_duration():
    assert step_seconds(0.0, 20.0, 100) == 20.0
