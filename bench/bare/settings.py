"""Settings of the bare baseline site: the middleware every real Django form post goes through (security headers,
CSRF), no database, no sessions. Served as `PYTHONPATH=bench daphne bare.asgi:application`."""

from __future__ import annotations

import pathlib

BASE_DIR = pathlib.Path(__file__).resolve().parent
# A throwaway local server for the benchmarks, never deployed.
SECRET_KEY = "bench-only-bare-site-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["daphne", "channels"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "bare.urls"
ASGI_APPLICATION = "bare.asgi.application"
DATABASES: dict[str, dict[str, str]] = {}
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    }
]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
