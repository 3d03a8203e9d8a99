"""How long one rate of a load run lasts, shared by the runner (its time budget) and the driver (its pacing).

No Locust import here: the runner must not load gevent's monkey-patching."""

from __future__ import annotations


def step_seconds(rate: float, duration: float, min_commands: int) -> float:
    """`duration`, stretched until the rate has sent `min_commands`. A p99 over fewer than 100 commands is the
    slowest one alone, so at 2 commands/s for 20 s one slow command decided the step. One interval more than
    `min_commands / rate`: the pacing's first command waits one interval, so 50 s at 2/s sent 99 (a run at 03:06
    UTC stopped at 2/s on its one slow command of 99)."""
    if rate <= 0 or min_commands <= 0:
        return duration
    return max(duration, (min_commands + 1) / rate)
