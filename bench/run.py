"""`make bench`: every benchmark, written to bench/results.json and printed as a table.

Speed is a ratio measured in one run: the machine is shared and drifts 2-3x, so each rate has a baseline measured
beside it in the same sitting, alternating with ours, and the targets are on the ratios. SQLite figures come from a
temporary file database with WAL at synchronous=FULL (the app's own settings); the peers run at the same settings.
  bench/store_bench.py       appends (beside raw sqlite3 and the eventsourcing library), write-model loads
  bench/projector_bench.py   projector catch-up (beside eventsourcing's projection), rebuild, push latency, lag accuracy
  bench/latency_bench.py     command -> read model visible on a WebSocket of a live daphne
  bench/concurrent_bench.py  16 concurrent SQLite writers (group commit) beside one raw writer
  bench/pg_bench.py          16 writers on PostgreSQL beside the old table lock and the eventsourcing library
  bench/fanout_bench.py      one update to 200 sockets of one sandbox beside a bare Channels group send
  bench/http_bench.py        commands and page views over HTTP beside a bare Django view on daphne
Each module measures in child processes and takes medians of several runs (or percentiles of many samples).
The peers (bench/peer_eventsourcing.py, bench/requirements.txt) are installed for the benchmark only.
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

# The targets: ratios to a baseline of the same run, and the two latencies a learner sees. (direction, bound);
# None = reported for context only. No absolute rate has a target: on a shared 2-core machine it says more about the
# hour than about the code.
TARGETS: dict[str, tuple[str, float] | None] = {
    "append_vs_peer": (">=", 1.2),
    "append_concurrent_vs_raw": (">=", 3),
    "pg_append_vs_peer": (">=", 3),
    "projector_vs_peer": (">=", 5),
    "fanout_vs_bare": ("<=", 1.5),
    "http_vs_bare": (">=", 0.8),
    "page_vs_bare": (">=", 0.5),
    "visible_latency_lag0_ms_p99": ("<=", 50),
    "lag_error_ms_p99": ("<=", 50),
}
BENCHES = ("store_bench", "projector_bench", "latency_bench", "concurrent_bench", "pg_bench", "fanout_bench",
           "http_bench")  # fmt: skip


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


def merge(figures: dict[str, float], origins: dict[str, str], module: str, new: dict[str, float]) -> None:
    """Add a module's figures. Two modules may measure the same baseline (store_bench and concurrent_bench both
    time raw sqlite3 inserts, each beside its own runs): the later one keeps the key, since its ratio was computed
    with it, and the earlier stays as `<module>:<key>`, so no figure of the run is lost."""
    for key, value in new.items():
        if key in figures:
            figures[f"{origins[key]}:{key}"] = figures[key]
        figures[key] = value
        origins[key] = module


def main() -> int:
    figures: dict[str, float] = {}
    origins: dict[str, str] = {}  # which module gave each figure
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="reqflow-bench-") as tmp:
        for name in BENCHES:
            module = _load(name)
            if module is None:  # its figures are then listed as missing, and the smoke test names them
                print(f"{name}: not present", file=sys.stderr)
                continue
            print(f"running {name} ...", flush=True)
            workdir = pathlib.Path(tmp) / name
            workdir.mkdir()
            try:
                measure = getattr(module, "run", None) or module.measure
                merge(figures, origins, name, measure(workdir))
            except Exception as exc:  # one failing bench must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
    result = {
        "machine": machine(),
        "database": "file SQLite, WAL, synchronous=FULL; PostgreSQL for the pg_* figures",
        "measured_in": "one run of make bench: every ratio divides two figures of this run",
        "figures": figures,
    }
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
