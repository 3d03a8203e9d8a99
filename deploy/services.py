"""PostgreSQL and Redis for `make cluster` and `make test-postgres`.

Each service is, in this order: the one named by a URL (it must answer); else the local one at 127.0.0.1:5432 or
:6379 when it answers; else a throwaway one started from the installed binaries (Debian's postgresql and
redis-server packages) on a free port, with its data in a folder of its own. A throwaway server runs in its own
process group, so a Ctrl-C meant for the caller reaches it only through `stop`, after the caller's own children.

As a command it wraps another one: `python -m deploy.services [options] -- pytest ...` runs it with DATABASE_URL and
REDIS_URL set, then stops whatever it started.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg import sql

LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432"
LOCAL_REDIS = "redis://127.0.0.1:6379"
START_TIMEOUT_S = 30.0


class ServiceError(Exception):
    """A service that cannot be used or started; the message is one line, fit for the terminal."""


@dataclass
class Service:
    name: str  # "PostgreSQL" or "Redis"
    url: str
    origin: str  # "given", "local" or "throwaway"
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def describe(self) -> str:
        if self.process is None:
            return f"{self.name:<11} {self.url}  ({'as given' if self.origin == 'given' else 'the local server'})"
        return f"{self.name:<11} {self.url}  (throwaway, pid {self.process.pid}, log {self.log})"


# --- Does it answer? -------------------------------------------------------------------------------------------


def postgres_error(url: str, dbname: str = "postgres") -> str | None:
    """None when the server at `url` accepts a connection to `dbname`, else why not (one line)."""
    try:
        psycopg.connect(url, dbname=dbname, connect_timeout=3).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def redis_error(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def create_database(url: str) -> None:
    """Create the database `url` names when the server does not have it yet."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, dbname="postgres", autocommit=True, connect_timeout=3) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- Throwaway servers ------------------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL server's bin folder (Debian keeps them in /usr/lib/postgresql/<major>/bin)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    found.sort(key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    raise ServiceError("no PostgreSQL answers and no PostgreSQL server is installed (apt-get install postgresql)")


def _server_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` account; otherwise as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceError("running as root, PostgreSQL needs a 'postgres' account to run as") from None
    return "postgres"


def _spawn(argv: list[str], log: Path, user: str | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            user=user,
            cwd=cwd,
        )


def _wait_until_ready(service: Service, error: str | None, check: Callable[[], str | None]) -> Service:
    deadline = time.monotonic() + START_TIMEOUT_S
    assert service.process is not None
    while error is not None:
        if service.process.poll() is not None or time.monotonic() > deadline:
            tail = service.log.read_text(errors="replace")[-600:].strip() if service.log else ""
            stop(service)
            raise ServiceError(f"the throwaway {service.name} did not start: {error}; {service.log}: ...{tail[-200:]}")
        time.sleep(0.1)
        error = check()
    return service


def postgres_data_dir(folder: Path, user: str | None) -> Path:
    """Where the throwaway PostgreSQL keeps its files. Run as another account (root runs it as `postgres`), the
    folder must be reachable by that account, and a checkout may sit under a private directory (a fresh clone in
    `mktemp -d`, mode 700): then a folder of its own under the system's temporary directory, named after `folder`
    so the same `folder` finds its data again."""
    if user is None:
        return folder / "postgres"
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"reqflow-pg-{digest}" / "postgres"


def start_postgres(folder: Path, database: str) -> Service:
    bindir = postgres_bindir()
    user = _server_user()
    folder.mkdir(parents=True, exist_ok=True)
    data, log = postgres_data_dir(folder, user), folder / "postgres.log"
    if user:
        data.parent.mkdir(mode=0o700, exist_ok=True)
        account = pwd.getpwnam(user)
        os.chown(data.parent, account.pw_uid, account.pw_gid)
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)  # a half-made cluster from an interrupted initdb
    data.mkdir(mode=0o700, exist_ok=True)
    log.touch()
    if user:
        account = pwd.getpwnam(user)
        for path in (data, log):
            os.chown(path, account.pw_uid, account.pw_gid)
    if not (data / "PG_VERSION").exists():
        done = subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"],
            capture_output=True,
            user=user,
            cwd=data.parent,  # initdb returns to its working directory, which must be reachable by `user`
        )
        if done.returncode != 0:
            raise ServiceError(f"initdb failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    port = free_port()
    # TCP on loopback only and no Unix socket: nothing to clash with the system's /var/run/postgresql.
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    argv += ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"]
    url = f"postgres://postgres@127.0.0.1:{port}/{database}"
    service = Service("PostgreSQL", url, "throwaway", _spawn(argv, log, user, cwd=data.parent), log)
    return _wait_until_ready(service, "not started yet", lambda: postgres_error(url))


def start_redis(folder: Path, db: int) -> Service:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ServiceError("no Redis answers and redis-server is not installed (apt-get install redis-server)")
    data, log = folder / "redis", folder / "redis.log"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--dir", str(data), "--daemonize", "no"]
    url = f"redis://127.0.0.1:{port}/{db}"
    service = Service("Redis", url, "throwaway", _spawn(argv, log), log)
    return _wait_until_ready(service, "not started yet", lambda: redis_error(url))


def stop(service: Service, timeout: float = 15.0) -> None:
    """Stop a throwaway server (PostgreSQL: fast shutdown), killing its process group if it outstays `timeout`."""
    proc = service.process
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT if service.name == "PostgreSQL" else signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


# --- Which one --------------------------------------------------------------------------------------------------


def postgres(given: str | None, *, database: str, folder: Path, create: bool = False) -> Service:
    """The PostgreSQL to use (see the module docstring); with `create`, its database exists afterwards."""
    if given:
        error = postgres_error(given)
        if error:
            raise ServiceError(f"PostgreSQL at {given} does not answer: {error}")
        service = Service("PostgreSQL", given, "given")
    elif postgres_error(LOCAL_POSTGRES) is None:
        service = Service("PostgreSQL", f"{LOCAL_POSTGRES}/{database}", "local")
    else:
        service = start_postgres(folder, database)
    if create:
        create_database(service.url)
    return service


def redis_service(given: str | None, *, db: int, folder: Path) -> Service:
    if given:
        error = redis_error(given)
        if error:
            raise ServiceError(f"Redis at {given} does not answer: {error}")
        return Service("Redis", given, "given")
    if redis_error(LOCAL_REDIS) is None:
        return Service("Redis", f"{LOCAL_REDIS}/{db}", "local")
    return start_redis(folder, db)


# --- As a command: run another command with both ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=Path(".cluster/test"), help="Where throwaway servers keep data.")
    parser.add_argument("--database-url", default="", help="Use this PostgreSQL (empty: local, else throwaway).")
    parser.add_argument("--redis-url", default="", help="Use this Redis (empty: local, else throwaway).")
    parser.add_argument("--database", default="reqflow", help="Database name on a local or throwaway server.")
    parser.add_argument("--redis-db", type=int, default=14, help="Redis db number on a local or throwaway server.")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run with both")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("name a command after --")
    started: list[Service] = []
    env = dict(os.environ)
    try:
        for name, find, fallback in (
            (
                "DATABASE_URL",
                lambda: postgres(args.database_url, database=args.database, folder=args.dir),
                args.database_url or f"{LOCAL_POSTGRES}/{args.database}",
            ),
            (
                "REDIS_URL",
                lambda: redis_service(args.redis_url, db=args.redis_db, folder=args.dir),
                args.redis_url or f"{LOCAL_REDIS}/{args.redis_db}",
            ),
        ):
            try:
                service = find()
            except ServiceError as exc:
                # Nothing to use: the tests get the address anyway and say SKIPPED themselves (a failure in CI).
                print(f"deploy/services.py: {exc}", file=sys.stderr)
                env[name] = fallback
                continue
            started += [service] if service.process else []
            env[name] = service.url
            print(service.describe(), file=sys.stderr)
        return _run(command, env)
    finally:
        for service in reversed(started):
            stop(service)


def _run(command: list[str], env: dict[str, str]) -> int:
    """Run the command in our process group, so a Ctrl-C reaches it directly; a SIGTERM to us is passed on. Either
    way we wait for it, and our caller stops the servers afterwards."""
    child = subprocess.Popen(command, env=env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
