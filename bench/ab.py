"""Two versions of the code, and the bare Django site, measured side by side: pages/s and commands/s, alternating.

  .venv/bin/python bench/ab.py db3c574            # that commit against the working tree
  .venv/bin/python bench/ab.py db3c574 HEAD~1     # two commits

A change's speed-up is only believable against the code before it measured in the same sitting: these machines
drift 2-3x within a day. This checks the older code out into a temporary `git worktree` (same .venv), starts each
version's daphne as `make run` does (file SQLite, the embedded projector, DEBUG off) beside the bare site's, gives
each version 32 returning learners (bench/http_bench.py's), then runs ROUNDS windows of SECONDS per kind and
version, in alternating order, and prints each window's rate, the medians of after ÷ before and of each ÷ bare.
The worktree is removed afterwards. Knobs: BENCH_AB_ROUNDS (6), BENCH_AB_SECONDS (3).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import http_bench as hb
from http_client import Request, load

ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", 6))
SECONDS = float(os.environ.get("BENCH_AB_SECONDS", 3))
VERSIONS = ("before", "after")


@contextmanager
def _tree(rev: str | None) -> Iterator[pathlib.Path]:
    """The repository at `rev` (a temporary worktree), or the working tree itself for None."""
    if rev is None:
        yield hb.ROOT
        return
    with tempfile.TemporaryDirectory(prefix="reqflow-ab-") as tmp:
        path = pathlib.Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "-f", "--detach", str(path), rev], cwd=hb.ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=hb.ROOT, check=False)


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}


def _our_env(db: pathlib.Path) -> dict[str, str]:
    return {**_plain_env(), "SQLITE_PATH": str(db), "DJANGO_SETTINGS_MODULE": "reqflow.settings",
            "EMBEDDED_PROJECTOR": "1", "DEBUG": "0", "LOG_LEVEL": "WARNING", "REQFLOW_TESTING": "1"}  # fmt: skip


async def _windows(ports: dict[str, int]) -> dict[tuple[str, str], list[float]]:
    learners = {name: await hb._learners(ports[name]) for name in VERSIONS}
    bare = await hb._bare_visitor(ports["bare"])
    makers: dict[tuple[str, str], tuple[int, Callable[[int], Request]]] = {}
    for name in VERSIONS:
        pages = [Request("GET", hb.CONCEPT, {"Cookie": v.headers()["Cookie"]}) for v in learners[name]]
        makers["page", name] = (ports[name], lambda i, pages=pages: pages[i])
        makers["command", name] = (ports[name], lambda i, ls=learners[name]: hb._deposit(ls[i]))
    bare_page = Request("GET", "/", {"Cookie": bare.headers()["Cookie"]})
    makers["page", "bare"] = (ports["bare"], lambda i: bare_page)
    makers["command", "bare"] = (
        ports["bare"],
        lambda i: Request("POST", "/command/", bare.headers(**hb.FORM), b"amount=1"),
    )
    for port, make in makers.values():  # warm up: templates compiled, threads started
        await load(hb.HOST, port, make, connections=hb.CONNECTIONS, seconds=1)
    await asyncio.sleep(3)  # past the default lag: the projectors have caught up
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in makers}
    for kind in ("page", "command"):
        for round_ in range(ROUNDS):
            order = ("before", "after", "bare") if round_ % 2 == 0 else ("after", "before", "bare")
            for name in order:
                port, make = makers[kind, name]
                rates[kind, name].append(await load(hb.HOST, port, make, connections=hb.CONNECTIONS, seconds=SECONDS))
    return rates


def _report(rates: dict[tuple[str, str], list[float]]) -> dict[str, object]:
    def median_ratio(kind: str, top: str, bottom: str) -> float:
        pairs = zip(rates[kind, top], rates[kind, bottom], strict=True)
        return round(statistics.median(a / b for a, b in pairs), 3)

    report: dict[str, object] = {}
    for kind in ("page", "command"):
        for name in (*VERSIONS, "bare"):
            report[f"{kind}_{name}_per_s"] = [round(r, 1) for r in rates[kind, name]]
        report[f"{kind}_after_vs_before"] = median_ratio(kind, "after", "before")
        report[f"{kind}_before_vs_bare"] = median_ratio(kind, "before", "bare")
        report[f"{kind}_after_vs_bare"] = median_ratio(kind, "after", "bare")
    return report


def main(before: str, after: str | None) -> dict[str, object]:
    with ExitStack() as stack:
        tmp = pathlib.Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="reqflow-ab-db-")))
        trees = {"before": stack.enter_context(_tree(before)), "after": stack.enter_context(_tree(after))}
        ports = {"before": hb._free_port(18301), "after": hb._free_port(18302), "bare": hb._free_port(18303)}
        for name, tree in trees.items():
            env = _our_env(tmp / f"{name}.sqlite3")
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=tree, env=env, check=True
            )
            stack.enter_context(hb._daphne("reqflow.asgi:application", ports[name], env, tree))
        bare_env = {**_plain_env(), "PYTHONPATH": str(hb.HERE), "DJANGO_SETTINGS_MODULE": "bare.settings"}
        stack.enter_context(hb._daphne("bare.asgi:application", ports["bare"], bare_env, hb.HERE))
        return _report(asyncio.run(_windows(ports)))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    print(json.dumps(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None), indent=2))
