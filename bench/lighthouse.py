"""Lighthouse 12.2.3 (mobile, Debian chromium) on the concept page and the catalog, served the way `make run` serves.

    make lighthouse            # or: .venv/bin/python bench/lighthouse.py

Collects static files, migrates a throwaway SQLite database, starts daphne on a free port with DEBUG off, audits
each page, prints the four category scores and writes them (with the main timings) to bench/lighthouse.json.
Exits 1 when the concept page scores below 0.95 in any category.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CHROME = "/usr/bin/chromium"
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-background-networking "
    "--disable-component-update --disable-sync --no-first-run"
)
PAGES = {"concept": "/concepts/cqrs-event-sourcing/", "catalog": "/"}
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = ("first-contentful-paint", "largest-contentful-paint", "total-blocking-time", "cumulative-layout-shift")
TARGET = 0.95
OUTPUT = ROOT / "bench" / "lighthouse.json"


def server_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REQFLOW_"))}
    env.update(
        DEBUG="0",
        SQLITE_PATH=str(workdir / "lighthouse.sqlite3"),
        DJANGO_SETTINGS_MODULE="reqflow.settings",
        PYTHONPATH=str(ROOT),
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def start_daphne(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([python, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    daphne = Path(python).with_name("daphne")
    process = subprocess.Popen(
        [str(daphne), "-e", "tcp:port=0:interface=127.0.0.1", "reqflow.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return process, int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"daphne did not start:\n{log.read_text(errors='replace')}")


def audit(url: str, report: Path) -> dict:
    env = {**os.environ, "CHROME_PATH": CHROME}
    subprocess.run(
        [
            str(LIGHTHOUSE),
            url,
            "--quiet",
            "--output=json",
            f"--output-path={report}",
            f"--chrome-flags={CHROME_FLAGS}",
        ],
        env=env,
        check=True,
        timeout=180,
    )
    data = json.loads(report.read_text())
    keep = Path(tempfile.gettempdir()) / f"reqflow-lighthouse-{report.stem}.json"
    keep.write_text(report.read_text())  # the full report outlives the run, for digging into a low score
    if data.get("runtimeError"):
        raise SystemExit(f"Lighthouse failed on {url}: {data['runtimeError']}")
    return {
        "path": "/" + url.split("://", 1)[1].split("/", 1)[1],
        "scores": {c: data["categories"][c]["score"] for c in CATEGORIES},
        "metrics": {m: data["audits"][m]["displayValue"] for m in METRICS},
        "failed_audits": sorted(
            a["id"]
            for a in data["audits"].values()
            if a.get("score") is not None and a["score"] < 1 and a.get("scoreDisplayMode") in ("binary", "numeric")
        ),
    }


def main() -> int:
    if not LIGHTHOUSE.exists():
        raise SystemExit("node_modules/.bin/lighthouse is missing: run `npm ci` (make lighthouse does it)")
    with tempfile.TemporaryDirectory(prefix="reqflow-lighthouse-") as tmp:
        workdir = Path(tmp)
        process, port = start_daphne(server_env(workdir), workdir / "daphne.log")
        try:
            base = f"http://127.0.0.1:{port}"
            results = {name: audit(base + path, workdir / f"{name}.json") for name, path in PAGES.items()}
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    version = subprocess.run([str(LIGHTHOUSE), "--version"], capture_output=True, text=True).stdout.strip()
    summary = {
        "lighthouse": version,
        "form_factor": "mobile (default throttling)",
        "chromium": subprocess.run([CHROME, "--version"], capture_output=True, text=True).stdout.strip(),
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "pages": results,
    }
    OUTPUT.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Lighthouse {version}, mobile")
    print(f"{'page':<10}" + "".join(f"{c:>16}" for c in CATEGORIES))
    for name, result in results.items():
        print(f"{name:<10}" + "".join(f"{result['scores'][c]:>16.2f}" for c in CATEGORIES))
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    low = {c: s for c, s in results["concept"]["scores"].items() if s is None or s < TARGET}
    if low:
        print(f"the concept page is below {TARGET} in: {low}; failing audits: {results['concept']['failed_audits']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
