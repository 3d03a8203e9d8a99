"""Read typed settings from the environment.

Every reader raises ImproperlyConfigured naming the variable when its value is malformed, so a typo
stops start-up with a clear message instead of silently falling back to a default.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be 1/0, true/false, yes/no or on/off, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} must be a comma-separated list with at least one entry")
    return items


def env_url(name: str, *, schemes: tuple[str, ...]) -> str | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must be a URL starting with one of {allowed}, not {raw!r}")
    return value


def secret_key(name: str, local_file: Path) -> str:
    """The SECRET_KEY from the environment, else one generated once and kept in an ignored local file."""
    raw = os.environ.get(name)
    if raw is not None:
        if len(raw) < 32:
            raise ImproperlyConfigured(f"{name} must be at least 32 characters long")
        return raw
    if local_file.exists():
        kept = local_file.read_text().strip()
        if len(kept) >= 32:
            return kept
    generated = secrets.token_urlsafe(50)
    local_file.write_text(generated + "\n")
    local_file.chmod(0o600)
    return generated
