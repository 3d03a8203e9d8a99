"""Every setting read from the environment stops start-up, naming the variable, when its value is malformed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k" * 50


def start_django(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REQFLOW_"))}
    clean.update(DJANGO_SETTINGS_MODULE="reqflow.settings", PYTHONPATH=str(ROOT), **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named", "says"),
    [
        ({"DEBUG": "maybe"}, "DEBUG", "must be 1/0, true/false"),
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY", "at least 32 characters"),
        ({"ALLOWED_HOSTS": " , "}, "ALLOWED_HOSTS", "comma-separated list"),
        ({"CSRF_TRUSTED_ORIGINS": ","}, "CSRF_TRUSTED_ORIGINS", "comma-separated list"),
        ({"PORT": "eighty"}, "PORT", "must be a whole number"),
        ({"PORT": "70000"}, "PORT", "at most 65535"),
        ({"DATABASE_URL": "mysql://db/reqflow"}, "DATABASE_URL", "must be a URL starting with one of sqlite://"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL", "must be a URL starting with one of redis://"),
        ({"EMBEDDED_PROJECTOR": "perhaps"}, "EMBEDDED_PROJECTOR", "must be 1/0"),
        ({"LAB_MAX_EVENTS_PER_SANDBOX": "lots"}, "LAB_MAX_EVENTS_PER_SANDBOX", "must be a whole number"),
        ({"LAB_MAX_SANDBOXES_PER_SESSION": "0"}, "LAB_MAX_SANDBOXES_PER_SESSION", "at least 1"),
        ({"AXES_FAILURE_LIMIT": "5x"}, "AXES_FAILURE_LIMIT", "must be a whole number"),
        ({"AXES_COOLOFF_MINUTES": "0"}, "AXES_COOLOFF_MINUTES", "at least 1"),
        ({"HTTPS": "sure"}, "HTTPS", "must be 1/0"),
        ({"HTTPS": "1", "SECURE_SSL_REDIRECT": "always"}, "SECURE_SSL_REDIRECT", "must be 1/0"),
        ({"SECURE_HSTS_SECONDS": "-1"}, "SECURE_HSTS_SECONDS", "at least 0"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", "must be one of"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.isupper() else None,
)
def test_a_malformed_variable_stops_start_up_with_a_message_naming_it(env, named, says):
    result = start_django(**env)
    assert result.returncode != 0, result.stdout
    assert "ImproperlyConfigured" in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert named in last_line and says in last_line, last_line


def test_good_values_start_up():
    result = start_django(
        DEBUG="0",
        SECRET_KEY=GOOD_KEY,
        ALLOWED_HOSTS="reqflow.example,127.0.0.1",
        PORT="8123",
        DATABASE_URL="sqlite:////tmp/reqflow-settings-test.sqlite3",
        REDIS_URL="redis://127.0.0.1:6379/3",
        LOG_LEVEL="warning",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
