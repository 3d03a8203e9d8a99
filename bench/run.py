"""`make bench`: every engine benchmark, written to bench/results.json and printed as a table.

All figures come from a temporary file SQLite database with WAL at synchronous=FULL (the app's own settings):
  bench/store_bench.py      appends, write-model loads
  bench/projector_bench.py  projector catch-up, blue/green rebuild, push latency, lag accuracy
  bench/latency_bench.py    command -> read model visible on a WebSocket of a live daphne
  bench/pg_bench.py         the exception: 16 concurrent appenders on PostgreSQL against the old table lock, same run
  bench/fanout_bench.py     one update to 200 sockets of one sandbox against a bare Channels group send, same run
Each module measures in child processes and takes medians of several runs (or percentiles of many samples).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import pathlib
import platform
import sqlite3
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
# BENCH_RESULTS: write elsewhere (the smoke test in tests/integration/test_bench_smoke.py does).
RESULTS = pathlib.Path(os.environ.get("BENCH_RESULTS") or HERE / "results.json")

# The engine's first absolute targets: (direction, bound). None = reported for context only.
TARGETS: dict[str, tuple[str, float] | None] = {
    "append_events_per_s": (">=", 7000),
    "load_10k_no_snapshot_ms": ("<=", 170),
    "load_10k_snapshot_ms": ("<=", 2),
    "projector_events_per_s": (">=", 25000),
    "rebuild_events_per_s": (">=", 50000),
    "visible_latency_lag0_ms_p50": None,
    "visible_latency_lag0_ms_p99": ("<=", 50),
    "lag_error_ms_p99": ("<=", 50),
}


def _load(name: str):  # type: ignore[no-untyped-def]
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def cpu_reference_ms() -> float:
    """How fast this machine runs plain Python right now: the median of 7 runs of a fixed workload (Decimal sums
    and dict churn, like the engine's folds). These shared 2-core machines differ by 3x from one day to the next;
    figures are comparable between runs only next to this number."""
    import statistics
    import time
    from decimal import Decimal

    def work() -> None:
        total, seen = Decimal(0), {}
        for i in range(200_000):
            total += Decimal(i % 997) / 100
            seen[i % 1024] = total

    times = []
    for _ in range(7):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_reference_ms": cpu_reference_ms(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def verdict(key: str, value: float) -> str:
    target = TARGETS.get(key)
    if target is None:
        return ""
    op, bound = target
    ok = value >= bound if op == ">=" else value <= bound
    return f"{'ok ' if ok else 'MISS'} ({op} {bound:g})"


def main() -> int:
    figures: dict[str, float] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="reqflow-bench-") as tmp:
        for name in ("store_bench", "projector_bench", "latency_bench", "pg_bench", "fanout_bench"):
            module = _load(name)
            if module is None:
                errors[name] = "not present"
                continue
            print(f"running {name} ...", flush=True)
            workdir = pathlib.Path(tmp) / name
            workdir.mkdir()
            try:
                figures.update(module.run(workdir))
            except Exception as exc:  # one failing bench must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
    result = {"machine": machine(), "database": "file SQLite, WAL, synchronous=FULL", "figures": figures}
    result.update({k: v for k, v in figures.items()})  # the required keys also at the top level
    if errors:
        result["errors"] = errors
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print()
    for key, value in result["machine"].items():
        print(f"{key:>12}: {value}")
    print()
    width = max(len(k) for k in figures) if figures else 10
    print(f"{'figure':<{width}}  {'value':>12}  target")
    print(f"{'-' * width}  {'-' * 12}  ------")
    ordered = [k for k in TARGETS if k in figures] + sorted(k for k in figures if k not in TARGETS)
    for key in ordered:
        print(f"{key:<{width}}  {figures[key]:>12,.2f}  {verdict(key, figures[key])}")
    missing = [k for k in TARGETS if k not in figures]
    if missing:
        print(f"\nmissing figures: {', '.join(missing)}")
    for name, error in errors.items():
        print(f"\n{name} failed: {error}", file=sys.stderr)
    print(f"\nwritten to {RESULTS}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
