"""`make load`: Locust learners against `make run`, then against `make cluster`, each checked for exactness after.

For each phase: start the site on loopback (bench/load/servers.py), measure one learner alone (the same-sitting
baseline), run the learners at the phase's command rate (bench/load/driver.py, its own process), check the database
(bench/load/verify.py) while the site still runs, stop the site. STEP=1 (or --step) then raises the rate on fresh
learners until a goal breaks and reports the highest rate held. Figures go to bench/load/results.json (a phase not
run now keeps its last figures), Locust's reports to docs/load/. Bounded: a set time per rate, a set number of
learners, a cap on the steps; every server and client on 127.0.0.0/8.

Goals (issue 12): zero errors, p99 command <= 100 ms, p99 command -> read-model-visible <= lag + 200 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.load import servers
from bench.load.sampling import CpuSampler
from bench.load.steps import step_seconds

ROOT = servers.ROOT
RESULTS = ROOT / "bench" / "load" / "results.json"
REPORTS = ROOT / "docs" / "load"
GOAL_COMMAND_MS = 100.0
GOAL_VISIBLE_EXTRA_MS = 200.0
LAG_MS = 0  # every learner sets its sandbox's lag to 0 first: "visible" is then the pipeline's own delay
# The step mode's rates (commands/s), from --step-from up, at most STEP_MAX of them (each LOAD_STEP_DURATION seconds).
STEP_LADDER = (2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250, 300, 400)
STEP_MAX = 12
# A step runs until it sent this many commands, if its LOAD_STEP_DURATION would send fewer (bench/load/steps.py):
# a p99 over fewer is the slowest command alone, and one slow command decided a 2/s step.
STEP_MIN_COMMANDS = 100
BASELINE_RATE = 2.0  # one learner, two commands a second: the unloaded figures of the same site in the same sitting
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/reqflow_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"


def env_num(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--phases", default=os.environ.get("LOAD_PHASES", "run,cluster"), help="run, cluster or both")
    p.add_argument("--duration", type=float, default=env_num("LOAD_DURATION", 60), help="seconds at the set rate")
    p.add_argument("--run-learners", type=int, default=int(env_num("LOAD_RUN_LEARNERS", 300)))
    p.add_argument("--run-rate", type=float, default=env_num("LOAD_RUN_RATE", 50))
    p.add_argument("--cluster-learners", type=int, default=int(env_num("LOAD_CLUSTER_LEARNERS", 1000)))
    p.add_argument("--cluster-rate", type=float, default=env_num("LOAD_CLUSTER_RATE", 150))
    p.add_argument("--spawn-rate", type=float, default=env_num("LOAD_SPAWN_RATE", 10), help="learners opening/s")
    p.add_argument("--step", action="store_true", default=os.environ.get("STEP", "") not in ("", "0"))
    p.add_argument("--step-duration", type=float, default=env_num("LOAD_STEP_DURATION", 20))
    p.add_argument("--step-from", type=float, default=env_num("LOAD_STEP_FROM", 2), help="the first step's rate")
    p.add_argument("--baseline-duration", type=float, default=env_num("LOAD_BASELINE_DURATION", 10))
    p.add_argument("--run-port", type=int, default=int(env_num("LOAD_RUN_PORT", 0)), help="0: a free one")
    p.add_argument("--cluster-port", type=int, default=int(env_num("LOAD_CLUSTER_PORT", 0)), help="nginx's; +1, +2")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL)
    p.add_argument("--results", type=Path, default=Path(os.environ.get("LOAD_RESULTS") or RESULTS))
    p.add_argument("--reports", type=Path, default=Path(os.environ.get("LOAD_REPORTS") or REPORTS))
    p.add_argument("--workdir", type=Path, default=None, help="SQLite file, logs (default: a temporary folder)")
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if not set(args.phases) <= {"run", "cluster"} or not args.phases:
        p.error("--phases takes run, cluster or run,cluster")
    return args


def say(line: str) -> None:
    print(f"load: {line}", flush=True)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "commit": commit(),
    }


def commit() -> str:
    """The code measured: HEAD, marked when the working tree has changes (the site runs from the tree)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True)  # fmt: skip
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def drive(site: servers.Site, workdir: Path, name: str, learners: int, rates: list[float], seconds: float,
          spawn_rate: float, *, stop_on_breach: bool = False, min_commands: int = 0,
          html: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One driver process (Locust) against `site`; its summary, outcomes included."""
    out = workdir / f"{name}.json"
    argv = [sys.executable, "-m", "bench.load.driver", "--host", site.url, "--learners", str(learners),
            "--rates", ",".join(f"{r:g}" for r in rates), "--duration", str(seconds), "--spawn-rate", str(spawn_rate),
            "--lag-ms", str(LAG_MS), "--goal-command-ms", str(GOAL_COMMAND_MS),
            "--goal-visible-extra-ms", str(GOAL_VISIBLE_EXTRA_MS), "--out", str(out),
            "--html", str(html or workdir / f"{name}.html")]  # fmt: skip
    if stop_on_breach:
        argv.append("--stop-on-breach")
    argv += ["--min-commands", str(min_commands)]
    budget = learners / spawn_rate + 90 + sum(step_seconds(r, seconds, min_commands) + 20 for r in rates)
    with CpuSampler(site.cpu_seconds) as sampler:
        done = subprocess.run(argv, cwd=ROOT, env=servers.clean_env(), timeout=budget, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the Locust driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
    for line in done.stderr.splitlines():
        if line.startswith("load: step"):
            say(f"{name} {line[6:]}")
    driven = dict(json.loads(out.read_text()))
    for step in driven["steps"]:
        step["site_cpu_share"] = sampler.share(*step.pop("wall"))
    return driven


def verify(site: servers.Site, workdir: Path, name: str, driven: dict[str, Any]) -> dict[str, Any]:
    outcomes = workdir / f"{name}-outcomes.json"
    outcomes.write_text(json.dumps({"accepted": driven["accepted"], "rejected": driven["rejected"]}))
    env = servers.clean_env(**site.db_env)
    done = subprocess.run([sys.executable, "-m", "bench.load.verify", str(outcomes)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"the exactness check failed to run:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def figures(driven: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """One rate's headline figures; errors include learners that could not open the lab or lost their socket."""
    setup_errors = sum(driven["setup_errors"].values())
    return {
        "learners": driven["learners"],
        "learners_ready": driven["learners_ready"],
        "sockets_held": driven["sockets_held"],
        "keepalive_retries": driven["keepalive_retries"],
        "rate_target": step["rate_target"],
        "rate_sent": step["rate_sent"],
        "duration_s": step["seconds"],
        "commands": step["commands"],
        "errors": step["errors"] + setup_errors,
        "error_kinds": {**step["error_kinds"], **driven["setup_errors"]},
        "p50_command_ms": step["p50_command_ms"],
        "p99_command_ms": step["p99_command_ms"],
        "max_command_ms": step["max_command_ms"],
        "p50_visible_ms": step["p50_visible_ms"],
        "p99_visible_ms": step["p99_visible_ms"],
        "goals_met": step["goals_met"] and setup_errors == 0,
        "site_cpu_share": step["site_cpu_share"],  # CPU seconds of the site's processes per second (2 cores: 2.0)
        "loadavg_after": step["loadavg_after"],  # the whole machine's, shared with other work
    }


def baseline(site: servers.Site, workdir: Path, name: str, seconds: float) -> dict[str, Any]:
    driven = drive(site, workdir, f"{name}-alone", 1, [BASELINE_RATE], seconds, 1.0)
    step = driven["steps"][0]
    keys = ("rate_sent", "commands", "errors", "p50_command_ms", "p99_command_ms", "p50_visible_ms", "p99_visible_ms",
            "site_cpu_share")  # fmt: skip
    return {"learners": 1, **{k: step[k] for k in keys}}


def step_rates(start: float) -> list[float]:
    return [float(r) for r in STEP_LADDER if r >= start][:STEP_MAX]


def highest_held(steps: list[dict[str, Any]]) -> float | None:
    held = None
    for step in steps:
        if not step["goals_met"]:
            break
        held = step["rate_target"]
    return held


def run_phase(args: argparse.Namespace, name: str, workdir: Path) -> dict[str, Any]:
    learners = args.run_learners if name == "run" else args.cluster_learners
    rate = args.run_rate if name == "run" else args.cluster_rate
    args.reports.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine()}
    site = start_site(args, name, workdir / name)
    try:
        entry["site"] = site.name
        say(f"{name}: {site.name} at {site.url}; one learner alone for {args.baseline_duration:g} s")
        entry["alone"] = baseline(site, workdir, name, args.baseline_duration)
        say(f"{name}: {learners} learners at {rate:g} commands/s for {args.duration:g} s")
        report = args.reports / f"{name}.html"
        driven = drive(site, workdir, name, learners, [rate], args.duration, args.spawn_rate, html=report)
        entry |= figures(driven, driven["steps"][0])
        entry |= {"lag_ms": LAG_MS, "goals": driven["goals"], "client_cpu_share": driven["client_cpu_share"]}
        entry["report"] = report.relative_to(ROOT).as_posix() if report.is_relative_to(ROOT) else str(report)
        entry["exactness"] = verify(site, workdir, name, driven)
        entry["exact"] = entry["exactness"]["exact"]
        if args.step:
            entry["step"] = step_mode(args, site, workdir, name, learners)
    finally:
        site.stop()
    return entry


def step_mode(args: argparse.Namespace, site: servers.Site, workdir: Path, name: str, learners: int) -> dict[str, Any]:
    rates = step_rates(args.step_from)
    say(f"{name}: step mode, {learners} fresh learners at {rates} commands/s, {args.step_duration:g} s each")
    report = args.reports / f"{name}-step.html"
    driven = drive(site, workdir, f"{name}-step", learners, rates, args.step_duration, args.spawn_rate,
                   stop_on_breach=True, min_commands=STEP_MIN_COMMANDS, html=report)  # fmt: skip
    checked = verify(site, workdir, f"{name}-step", driven)
    # A step holds when its own commands met the goals; the learners that could not open the lab are counted once,
    # in learners_ready and setup_errors, not against every step.
    steps = [figures(driven, s) | {"errors": s["errors"], "error_kinds": s["error_kinds"], "goals_met": s["goals_met"]}
             for s in driven["steps"]]  # fmt: skip
    return {
        "learners_ready": driven["learners_ready"],
        "setup_errors": driven["setup_errors"],
        "highest_rate_held": highest_held(steps),
        "steps": steps,
        "exact": checked["exact"],
        "exactness": checked,
        "report": report.relative_to(ROOT).as_posix() if report.is_relative_to(ROOT) else str(report),
    }


def start_site(args: argparse.Namespace, name: str, workdir: Path) -> servers.Site:
    if name == "run":
        return servers.embedded(workdir, args.run_port or servers.free_port())
    port = args.cluster_port or servers.free_port(3)
    return servers.cluster(workdir, port, args.database_url, args.redis_url)


def write_results(path: Path, phases: dict[str, Any]) -> None:
    """Merge into the results file: a phase run now replaces its entry, the others keep their last figures."""
    old = json.loads(path.read_text()) if path.exists() else {}
    merged = {
        "about": "make load (bench/load/README.md): Locust learners holding the lab's WebSocket and sending commands",
        "goals": {"errors": 0, "p99_command_ms": GOAL_COMMAND_MS, "p99_visible_ms": f"lag + {GOAL_VISIBLE_EXTRA_MS:g}"},
        "phases": {**old.get("phases", {}), **phases},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n")


def summary_line(name: str, e: dict[str, Any]) -> str:
    line = (f"{name}: {e['learners_ready']}/{e['learners']} learners, {e['rate_sent']:g}/{e['rate_target']:g} "
            f"commands/s, {e['errors']} errors, command p50 {e['p50_command_ms']} ms p99 {e['p99_command_ms']} ms, "
            f"visible p99 {e['p99_visible_ms']} ms (alone: {e['alone']['p99_command_ms']} / "
            f"{e['alone']['p99_visible_ms']} ms); goals {'met' if e['goals_met'] else 'NOT met'}; "
            f"store {'exact' if e['exact'] else 'NOT EXACT'}")  # fmt: skip
    if "step" in e:
        line += f"; step mode: highest rate held {e['step']['highest_rate_held']} commands/s"
    return line


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    done: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="reqflow-load-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        for name in args.phases:
            done[name] = run_phase(args, name, workdir)
            say(summary_line(name, done[name]))
            write_results(args.results, {name: done[name]})
    say(f"results in {args.results}, Locust's reports in {args.reports}/")
    return 0 if all(e["exact"] and e["errors"] == 0 for e in done.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
