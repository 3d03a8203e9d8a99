"""One headless Locust run, as a library: the learners of bench/load/locustfile.py against one site, at one command
rate or a rising series of them (the step mode), then Locust's HTML report and a JSON summary with the raw outcomes.

Run as its own process (`python -m bench.load.driver`) by bench/load/__main__.py: Locust patches the standard
library for gevent when imported, and the process that starts and stops the servers should not be patched.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.html import get_html_report
from locust.stats import stats_history

from bench.load.locustfile import HTTP_TIMEOUT_S, PACER, RECORD, VISIBLE_TIMEOUT_S, Learner
from bench.load.steps import step_seconds

# After a step, how long the commands still in flight get to be answered and show up (or time out) before it is summed.
SETTLE_S = HTTP_TIMEOUT_S + VISIBLE_TIMEOUT_S + 2


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (no interpolation): a figure some command really took."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-fraction * len(ordered) // 1)))
    return round(ordered[rank - 1], 1)


def step_summary(step: int, rate: float, seconds: float, missed: int, goals: dict[str, float]) -> dict[str, Any]:
    http_ms = RECORD.http_ms.get(step, [])
    visible_ms = RECORD.visible_ms.get(step, [])
    errors = RECORD.errors.get(step, {})
    out: dict[str, Any] = {
        "rate_target": rate,
        "seconds": round(seconds, 1),
        "commands": RECORD.sent.get(step, 0),
        "rate_sent": round(RECORD.sent.get(step, 0) / seconds, 1) if seconds else 0.0,
        "tokens_missed": missed,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_command_ms": percentile(http_ms, 0.50),
        "p99_command_ms": percentile(http_ms, 0.99),
        "max_command_ms": round(max(http_ms), 1) if http_ms else None,
        "p50_visible_ms": percentile(visible_ms, 0.50),
        "p99_visible_ms": percentile(visible_ms, 0.99),
        "visible_count": len(visible_ms),
    }
    p99c, p99v = out["p99_command_ms"], out["p99_visible_ms"]
    out["goals_met"] = bool(
        out["errors"] == 0
        and out["commands"] > 0
        and p99c is not None
        and p99c <= goals["command_ms"]
        and p99v is not None
        and p99v <= goals["visible_ms"]
        # a rate the swarm could not even send is not a rate the site held
        and out["rate_sent"] >= 0.9 * rate
    )
    return out


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.1)
    return True


def run(args: argparse.Namespace) -> dict[str, Any]:
    goals = {"command_ms": args.goal_command_ms, "visible_ms": args.lag_ms + args.goal_visible_extra_ms}
    env = Environment(user_classes=[Learner], host=args.host)
    runner = env.create_local_runner()
    gevent.spawn(stats_history, runner)  # the history behind the report's charts
    began, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    runner.start(args.learners, spawn_rate=args.spawn_rate)
    all_up = wait_until(
        lambda: RECORD.ready + sum(RECORD.setup_errors.values()) >= args.learners,
        args.learners / args.spawn_rate + 60,
    )
    setup_s = time.monotonic() - began
    steps = []
    for i, rate in enumerate(args.rates):
        RECORD.step = i
        missed0, step_began, wall_began = PACER.missed, time.monotonic(), time.time()
        PACER.start(rate)
        gevent.sleep(step_seconds(rate, args.duration, args.min_commands))
        PACER.stop()
        seconds = time.monotonic() - step_began
        if not wait_until(lambda: RECORD.in_flight == 0, SETTLE_S):
            # Never happens while the client's timeouts hold; if it did, these would go unrecorded: say so.
            RECORD.errors.setdefault(i, {})["still in flight when the step was summed"] = RECORD.in_flight
        summary = step_summary(i, rate, seconds, PACER.missed - missed0, goals)
        summary["wall"] = [wall_began, wall_began + seconds]  # for the site's CPU share (bench/load/sampling.py)
        summary["loadavg_after"] = round(os.getloadavg()[0], 2)
        steps.append(summary)
        print(f"load: step {i + 1}: {json.dumps(summary)}", file=sys.stderr, flush=True)
        if args.stop_on_breach and not summary["goals_met"]:
            break
    sockets_open = sum(1 for u in runner.user_greenlets.greenlets if getattr(u.args[0], "ws", None) is not None)
    runner.quit()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    Path(args.html).write_text(get_html_report(env, show_download_link=False))
    wall = time.monotonic() - began
    return {
        "learners": args.learners,
        "learners_ready": RECORD.ready,
        "all_learners_up": all_up,
        "setup_s": round(setup_s, 1),
        "setup_errors": RECORD.setup_errors,
        "sockets_held": sockets_open,
        "keepalive_retries": RECORD.keepalive_retries,
        "lag_ms": args.lag_ms,
        "goals": goals,
        "steps": steps,
        "client_cpu_share": round((cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) / wall, 2),
        "accepted": RECORD.accepted,
        "rejected": RECORD.rejected,
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", required=True, help="the site, http://127.0.0.1:<port>")
    parser.add_argument("--learners", type=int, required=True)
    parser.add_argument("--spawn-rate", type=float, default=50.0, help="learners opening the lab per second")
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds per rate")
    parser.add_argument("--min-commands", type=int, default=0, help="stretch a rate's time to send at least these")
    parser.add_argument("--lag-ms", type=int, default=0, help="the learners' projection lag (they set 0)")
    parser.add_argument("--goal-command-ms", type=float, default=100.0)
    parser.add_argument("--goal-visible-extra-ms", type=float, default=200.0)
    parser.add_argument("--stop-on-breach", action="store_true", help="stop at the first rate that breaks a goal")
    parser.add_argument("--out", required=True, help="the JSON summary")
    parser.add_argument("--html", required=True, help="Locust's HTML report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    result = run(args)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
