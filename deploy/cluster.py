"""`make cluster`: nginx in front of N daphne web processes, M projector workers, on PostgreSQL and Redis.

nginx listens on --port; the web processes on the ports after it. PostgreSQL and Redis are the ones DATABASE_URL
and REDIS_URL name, else the local ones, else throwaway ones (deploy/services.py). It migrates, collects the static
files, renders deploy/nginx.conf.template, starts everything in its own process group and waits until /healthz
answers through nginx. Ctrl-C (or SIGTERM) stops what it started: nginx, the web processes, the workers, then any
throwaway server; whatever outstays the grace period is killed. A web process, nginx or a throwaway server that
exits on its own stops the cluster; a worker that exits leaves its sandboxes to the others.

The state (ports, pids, logs) is written to <dir>/cluster.json once everything answers.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy import budget, services

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0
# daphne's options, the same as `make run`'s (tests/reliability/test_cluster_faults.py holds the two together): a
# WebSocket message of at most 64 KiB, 60 s for the application's answer, 5 s for a socket to be accepted, a ping
# after 20 s of silence and 30 s for its pong. Slow headers and bodies get their deadlines in reqflow.deadlines.
DAPHNE_OPTIONS = [
    "--websocket-max-message-size", "65536", "--http-timeout", "60", "--websocket_connect_timeout", "5",
    "--ping-interval", "20", "--ping-timeout", "30",
]  # fmt: skip
BODY_MAX_BYTES = 64 * 1024  # the default of REQUEST_BODY_MAX_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE) in reqflow/settings.py
MIME_TYPES = [Path("/etc/nginx/mime.types"), Path("/usr/local/nginx/conf/mime.types")]
MINIMAL_MIME_TYPES = """types {
    text/html html; text/css css; application/javascript js mjs; application/json json map;
    image/png png; image/svg+xml svg; image/x-icon ico; font/woff2 woff2; text/plain txt;
}
"""


@dataclass
class Child:
    name: str
    role: str  # "web", "worker", "proxy" (the stop order)
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # our own Ctrl-C handling decides when and in which order it stops
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Stop(Exception):
    """SIGINT or SIGTERM arrived: stop everything started so far."""


_stop_requested = False


def _request_stop(signum: int, frame: object) -> None:
    global _stop_requested
    _stop_requested = True


def check_stop() -> None:
    if _stop_requested:
        raise Stop


def say(line: str) -> None:
    print(line, flush=True)


# --- nginx configuration ------------------------------------------------------------------------------------------


def render(template: str, values: dict[str, str]) -> str:
    """Fill each `{{ name }}` of the template; every placeholder must have a value."""
    text = template
    for name, value in values.items():
        text = text.replace("{{ " + name + " }}", value)
    if "{{" in text:
        missing = text[text.index("{{") :].split("}}")[0] + "}}"
        raise ValueError(f"no value for {missing} in {TEMPLATE.name}")
    return text


def nginx_config(prefix: Path, port: int, web_ports: list[int], static_root: Path) -> str:
    mime_types = next((path for path in MIME_TYPES if path.exists()), None)
    if mime_types is None:
        mime_types = prefix / "mime.types"
        mime_types.write_text(MINIMAL_MIME_TYPES)
    # As root, nginx's workers switch user (nobody by default): make it the owner of the static files, so they can
    # read them wherever they are.
    user = f"user {pwd.getpwuid(static_root.stat().st_uid).pw_name};" if os.geteuid() == 0 else ""
    # max_fails=0: one failed answer never takes a web process out of rotation (deploy/nginx.conf.template).
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in web_ports)
    values = {
        "user": user,
        "prefix": str(prefix),
        "mime_types": str(mime_types),
        "upstream_servers": servers,
        "listen": f"127.0.0.1:{port}",
        "server_name": "127.0.0.1 localhost",
        "static_root": str(static_root),
        "body_max_bytes": str(body_max_bytes()),
    }
    return render(TEMPLATE.read_text(), values)


def body_max_bytes() -> int:
    """The app's cap on a request body: REQUEST_BODY_MAX_BYTES, read as reqflow/settings.py reads it (64 KiB)."""
    raw = os.environ.get("REQUEST_BODY_MAX_BYTES", "").strip()
    return int(raw) if raw.isdigit() else BODY_MAX_BYTES


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise services.ServiceError("nginx is not installed (`make cluster` installs it: apt-get install nginx)")
    return found


# --- Waiting ------------------------------------------------------------------------------------------------------


def http_status(port: int, path: str = "/healthz", timeout: float = 3.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def wait_for(children: list[Child], ready: Callable[[Child], bool], what: str) -> None:
    """Wait until `ready(child)` holds for each child; fail if one exits first or the time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    waiting = list(children)
    while waiting:
        check_stop()
        for child in list(waiting):
            if not child.running():
                raise services.ServiceError(f"{child.name} exited while starting; see {child.log}")
            if ready(child):
                waiting.remove(child)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(child.name for child in waiting)
            raise services.ServiceError(f"{names} did not {what} within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def answers_healthz(child: Child) -> bool:
    return child.port is not None and http_status(child.port) == 200


def worker_ready(child: Child) -> bool:
    return "projector running" in child.log.read_text(errors="replace")


# --- Starting and stopping -------------------------------------------------------------------------------------


def prepare(env: dict[str, str]) -> None:
    """Migrate and collect the static files, side by side."""
    steps = {
        "migrate": [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        "collectstatic": [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
    }
    running = {name: subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.PIPE) for name, argv in steps.items()}
    for name, proc in running.items():
        _, err = proc.communicate()
        check_stop()
        if proc.returncode != 0:
            raise services.ServiceError(f"manage.py {name} failed: {err.decode(errors='replace').strip()[-800:]}")


def plan(args: argparse.Namespace, env: dict[str, str], logs: Path, prefix: Path) -> list[Child]:
    bindir = Path(sys.executable).parent
    web_ports = [args.port + 1 + i for i in range(args.web)]
    # Each web process's threads, and so its PostgreSQL connections, are bounded (deploy/budget.py).
    web_env = env | {"EMBEDDED_PROJECTOR": "0", "ASGI_THREADS": asgi_threads(env)}
    children = []
    for i, port in enumerate(web_ports, 1):
        argv = [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--proxy-headers"]
        argv += [*DAPHNE_OPTIONS, "--access-log", str(logs / f"web-{i}.access.log")]
        children.append(
            Child(f"web-{i}", "web", [*argv, "reqflow.asgi:application"], logs / f"web-{i}.log", web_env, port)
        )
    for i in range(1, args.workers + 1):
        argv = [sys.executable, "manage.py", "run_projector"]
        children.append(Child(f"worker-{i}", "worker", argv, logs / f"worker-{i}.log", env))
    conf = prefix / "nginx.conf"
    argv = [nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"), "-g", "daemon off;"]
    children.append(Child("nginx", "proxy", argv, logs / "nginx.log", env, args.port))
    return children


def asgi_threads(env: dict[str, str]) -> str:
    return env.get("ASGI_THREADS", "").strip() or str(budget.DEFAULT_THREADS)


def stop_all(children: list[Child], started: list[services.Service]) -> None:
    """nginx first (no new requests), then the web processes, then the workers; each group gets SIGTERM and the
    grace period, then SIGKILL. The throwaway servers go last."""
    for role in ("proxy", "web", "worker"):
        group = [c for c in children if c.role == role and c.running()]
        for child in group:
            assert child.process is not None
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in group:
            assert child.process is not None
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} (pid {child.process.pid}) outstayed {STOP_GRACE_S:.0f} s: killed")
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
    for service in reversed(started):
        services.stop(service)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def supervise(children: list[Child]) -> int:
    """Until Ctrl-C: watch the children. Returns the exit code."""
    gone: set[str] = set()
    while True:
        if _stop_requested:
            return 0
        for child in children:
            if child.name in gone or child.running():
                continue
            gone.add(child.name)
            assert child.process is not None
            code = child.process.returncode
            if child.role != "worker":
                say(f"{child.name} exited with {code}; stopping the cluster (see {child.log})")
                return 1
            left = [c.name for c in children if c.role == "worker" and c.running()]
            say(f"{child.name} exited with {code}; its sandboxes go to {', '.join(left) or 'no worker'}")
            if not left:
                say("no projector worker left; stopping the cluster")
                return 1
        time.sleep(0.2)


# --- The command ------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000), help="nginx's port")
    parser.add_argument("--web", type=int, default=2, help="daphne web processes (on the ports after --port)")
    parser.add_argument("--workers", type=int, default=2, help="manage.py run_projector workers")
    parser.add_argument("--dir", type=Path, default=ROOT / ".cluster", help="configuration, logs, throwaway data")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    parser.add_argument("--database", default="reqflow", help="database name on a local or throwaway PostgreSQL")
    parser.add_argument("--redis-db", type=int, default=0, help="db number on a local or throwaway Redis")
    args = parser.parse_args(argv)
    if args.web < 1 or args.workers < 1 or not 1 <= args.port <= 65535 - args.web:
        parser.error("--web and --workers must be at least 1, and nginx's port plus --web at most 65535")
    args.dir = args.dir.resolve()
    return args


def summary(args: argparse.Namespace, children: list[Child], used: list[services.Service], took: float) -> str:
    lines = [f"Reqflow is at http://127.0.0.1:{args.port}/  (started in {took:.1f} s; Ctrl-C stops it all)"]
    for child in children:
        assert child.process is not None
        where = f"127.0.0.1:{child.port}" if child.port else "manage.py run_projector"
        if child.role == "proxy":
            upstream = ", ".join(f":{c.port}" for c in children if c.role == "web")
            where += f" -> {upstream}  (config {args.dir / 'nginx' / 'nginx.conf'})"
        lines.append(f"  {child.name:<11} pid {child.process.pid:<7} {where}")
    lines += [f"  {service.describe()}" for service in used]
    lines.append(f"  logs        {args.dir / 'logs'}/")
    return "\n".join(lines)


def write_state(args: argparse.Namespace, children: list[Child], used: list[services.Service]) -> None:
    state = {
        "url": f"http://127.0.0.1:{args.port}/",
        "processes": [
            {
                "name": c.name,
                "role": c.role,
                "pid": c.process.pid if c.process else None,
                "port": c.port,
                "log": str(c.log),
            }
            for c in children
        ],
        "services": {s.name: {"url": s.url, "origin": s.origin} for s in used},
    }
    (args.dir / "cluster.json").write_text(json.dumps(state, indent=2) + "\n")


def start(
    args: argparse.Namespace, children_out: list[Child], started_out: list[services.Service]
) -> list[services.Service]:
    """Everything up to a cluster answering through nginx. What it starts goes into the two lists as it goes, so
    the caller can stop it whatever happens."""
    logs, prefix = args.dir / "logs", args.dir / "nginx"
    for folder in (logs, prefix / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    db = services.postgres(args.database_url, database=args.database, folder=args.dir, create=True)
    started_out += [db] if db.process else []
    check_stop()
    layer = services.redis_service(args.redis_url, db=args.redis_db, folder=args.dir)
    started_out += [layer] if layer.process else []
    env = dict(os.environ) | {"DATABASE_URL": db.url, "REDIS_URL": layer.url, "PYTHONUNBUFFERED": "1"}
    static_root = Path(env.setdefault("STATIC_ROOT", str(ROOT / "staticfiles"))).resolve()
    say(budget.report(db.url, args.web, args.workers, int(asgi_threads(env))))
    prepare(env)
    static_root.mkdir(parents=True, exist_ok=True)
    children = plan(args, env, logs, prefix)
    web_ports = [c.port for c in children if c.role == "web" and c.port]
    (prefix / "nginx.conf").write_text(nginx_config(prefix, args.port, web_ports, static_root))
    nginx = children[-1]
    tested = subprocess.run([*nginx.argv[:-2], "-t", "-q"], capture_output=True, text=True)
    if tested.returncode != 0:
        raise services.ServiceError(f"nginx refused its configuration: {tested.stderr.strip()}")
    for child in children[:-1]:
        child.start()
        children_out.append(child)
    wait_for([c for c in children if c.role == "web"], answers_healthz, "answer /healthz")
    nginx.start()
    children_out.append(nginx)
    wait_for([nginx], answers_healthz, "answer /healthz")
    wait_for([c for c in children if c.role == "worker"], worker_ready, "start")
    return [db, layer]


def main(argv: list[str] | None = None) -> int:
    began = time.monotonic()
    args = parse(argv)
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    children: list[Child] = []
    started: list[services.Service] = []
    code = 0
    try:
        used = start(args, children, started)
        write_state(args, children, used)
        say(summary(args, children, used, time.monotonic() - began))
        code = supervise(children)
    except Stop:
        pass
    except services.ServiceError as exc:
        say(f"make cluster: {exc}")
        code = 1
    finally:
        running = [c.name for c in children if c.running()] + [s.name for s in started]
        if running:  # a start that failed before starting anything says its one line and nothing more
            say("stopping: " + ", ".join(running))
        stop_all(children, started)
        (args.dir / "cluster.json").unlink(missing_ok=True)
        if running:
            say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
