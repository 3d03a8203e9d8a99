"""`make cluster` runs its daphne processes with the options `make run` gives daphne (deploy/cluster.py): message
size, the application's answer time, the WebSocket handshake time and the pings."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy import cluster

ROOT = Path(__file__).resolve().parents[2]


def test_the_cluster_runs_daphne_with_make_runs_options(tmp_path):
    makefile = (ROOT / "Makefile").read_text()
    run_line = next(line for line in makefile.splitlines() if "daphne -b 127.0.0.1" in line)
    options = run_line.split("$(PORT)", 1)[1].split("reqflow.asgi:application")[0].split()
    assert options == cluster.DAPHNE_OPTIONS
    assert "--websocket_connect_timeout" in options and "--ping-interval" in options


def test_each_web_process_gets_them(tmp_path):
    args = argparse.Namespace(port=8000, web=2, workers=1)
    webs = [child for child in cluster.plan(args, {}, tmp_path, tmp_path) if child.role == "web"]
    assert len(webs) == 2
    for child in webs:
        at = child.argv.index(cluster.DAPHNE_OPTIONS[0])
        assert child.argv[at : at + len(cluster.DAPHNE_OPTIONS)] == cluster.DAPHNE_OPTIONS


def test_the_systemd_web_unit_gives_daphne_the_same_options():
    unit = (ROOT / "deploy" / "systemd" / "reqflow-web@.service").read_text().replace("\\\n", " ")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert " ".join(cluster.DAPHNE_OPTIONS) in " ".join(exec_start.split())
