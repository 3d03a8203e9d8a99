"""lab.outage: the projector's backoff doubles to its cap, and an outage logs one line when it starts, a reminder a
minute while it lasts and one line when it ends, never a traceback."""

from __future__ import annotations

import logging

from django.db import OperationalError, ProgrammingError

from lab.outage import Outage, is_unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_backoff_doubles_up_to_its_cap_and_a_success_ends_it():
    clock = Clock()
    outage = Outage("worker", base_s=0.2, cap_s=5.0, clock=clock)
    assert outage.delay() == 0
    waits = [outage.failed(OperationalError("connection refused"), "the scan") for _ in range(8)]
    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert outage.delay() == 5.0
    clock.now += 2
    assert outage.delay() == 3.0
    outage.recovered()
    assert outage.delay() == 0 and outage.tries == 0 and outage.outages == 1


def test_an_outage_logs_one_line_per_burst_a_reminder_a_minute_and_its_end(caplog):
    clock = Clock()
    outage = Outage("worker", clock=clock)
    with caplog.at_level(logging.WARNING, logger="lab.outage"):
        for _ in range(30):  # 30 tries over 150 s
            outage.failed(OperationalError("server closed the connection unexpectedly\nmore detail"), "the scan")
            clock.now += 5
        outage.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 + 2 + 1, lines  # the start, two reminders (60 s, 120 s), the end
    assert "database unavailable (OperationalError: server closed the connection unexpectedly" in lines[0]
    assert "more detail" not in "".join(lines)
    assert "reachable again after 30 failed tries in 150.0 s" in lines[-1]
    assert all(r.exc_info is None for r in caplog.records)


def test_only_a_database_that_cannot_serve_counts_as_an_outage():
    assert is_unavailable(OperationalError("could not connect"))
    wrapped = RuntimeError("step failed")
    wrapped.__cause__ = OperationalError("terminating connection due to administrator command")
    assert is_unavailable(wrapped)
    assert not is_unavailable(ProgrammingError("column does not exist"))
    assert not is_unavailable(ValueError("a bug"))
