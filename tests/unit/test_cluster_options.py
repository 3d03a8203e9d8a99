"""`make cluster` runs its daphne processes with the options `make run` gives daphne (deploy/cluster.py): message
size, the application's answer time, the WebSocket handshake time and the pings."""

from __future__ import annotations

import argparse
from pathlib import Path

from django.conf import settings

from deploy import budget, cluster

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


def test_each_web_process_gets_a_bounded_thread_pool(tmp_path):
    args = argparse.Namespace(port=8000, web=2, workers=1)
    for env, threads in (({}, str(budget.DEFAULT_THREADS)), ({"ASGI_THREADS": "5"}, "5")):
        webs = [child for child in cluster.plan(args, env, tmp_path, tmp_path) if child.role == "web"]
        assert [child.env["ASGI_THREADS"] for child in webs] == [threads, threads]


def test_the_systemd_web_unit_bounds_its_threads_too():
    unit = (ROOT / "deploy" / "systemd" / "reqflow-web@.service").read_text()
    assert f"Environment=ASGI_THREADS={budget.DEFAULT_THREADS}" in unit.splitlines()
    assert settings.ASGI_THREADS == budget.DEFAULT_THREADS  # the default, as reqflow/settings.py reads it


def test_the_default_cluster_fits_the_connections_a_default_postgresql_allows():
    # make cluster's 2 web processes and 2 workers, against max_connections 100 minus 3 reserved for superusers.
    assert budget.connections(web=2, workers=2, threads=budget.DEFAULT_THREADS) == 45 <= 97
