"""Reqflow settings: one file, every knob from the environment (see the table in README.md).

Unset variables give the embedded default: SQLite in the project folder, Channels' in-memory layer,
one daphne process with the projector inside it. DATABASE_URL and REDIS_URL scale it out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from reqflow.env import env_bool, env_int, env_list, env_url, secret_key
from reqflow.middleware_list import MiddlewareList

BASE_DIR = Path(__file__).resolve().parent.parent
TESTING = "pytest" in sys.modules or os.environ.get("REQFLOW_TESTING") == "1"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key("SECRET_KEY", BASE_DIR / ".secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORT = env_int("PORT", 8000, minimum=1, maximum=65535)
# A server process collects cyclic garbage every this many allocations (Python's default is 700; 0 keeps it):
# rarer young collections let far fewer objects reach the full collections that held every request
# (reqflow/collector.py).
GC_GEN0_THRESHOLD = env_int("GC_GEN0_THRESHOLD", 10_000, minimum=0)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "axes",
    "lab",
    "concepts",
    "accounts",
    "notes",
]

# The header middleware first: static files (WhiteNoise answers them itself) and errors raised in any middleware
# (a 400 for a bad Host, from CommonMiddleware) pass back through it and get the security headers too.
# reqflow.loop_middleware: Django's own middlewares, their compute-only hooks run on the event loop under daphne
# instead of a thread hop each; MiddlewareList lets Django's deploy checks see them as Django's.
MIDDLEWARE = MiddlewareList(
    [
        "reqflow.loop_middleware.SecurityMiddleware",
        "reqflow.loop_middleware.XFrameOptionsMiddleware",
        "reqflow.loop_middleware.CSPMiddleware",
        # WhiteNoise, able to run in an async chain: its own middleware is sync-only, and one sync-only middleware
        # holds the single sync thread through every request, async views included (reqflow/static_files.py).
        "reqflow.static_files.StaticFilesMiddleware",
        # A view that meets a locked, read-only, full or unreachable database answers 503 (reqflow.dbfailure; the
        # handler400/500 in reqflow/urls.py do the same for the middlewares below, the session's among them).
        "reqflow.dbfailure.DatabaseFailureMiddleware",
        "reqflow.loop_middleware.SessionMiddleware",
        "reqflow.loop_middleware.CommonMiddleware",
        "reqflow.loop_middleware.CsrfViewMiddleware",
        "reqflow.loop_middleware.AuthenticationMiddleware",
        "reqflow.loop_middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
        "axes.middleware.AxesMiddleware",
    ]
)

ROOT_URLCONF = "reqflow.urls"
ASGI_APPLICATION = "reqflow.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # {% url %} that reverses a fixed route once per process (reqflow/url_tag.py); a part of a page that is
            # the same for everyone, rendered once (reqflow/same_for_everyone.py).
            "builtins": ["reqflow.url_tag", "reqflow.same_for_everyone"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("sqlite", "postgres", "postgresql"))
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "db.sqlite3"))

# Appends take the write lock before reading the expected version (IMMEDIATE), so positions are
# handed out in commit order; WAL keeps readers (the projector, the pages) off the writer's back.
_SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    # Seconds a writer waits for the lock before the request answers 503 (reqflow.dbfailure).
    "timeout": env_int("SQLITE_TIMEOUT_S", 20, minimum=1, maximum=600),
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
}

if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL could not be parsed: {exc}") from None
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        _db.setdefault("OPTIONS", {}).update(_SQLITE_OPTIONS)
    else:
        # A server that takes the connection and then says nothing (hung, or a network that drops its packets) held a
        # request until nginx gave up after 60 s; libpq's own default is to wait for ever. Connecting (TCP, startup,
        # authentication) now gives up after this long and the request answers 503 (reqflow.dbfailure). A
        # `?connect_timeout=` in DATABASE_URL wins.
        _options = _db.setdefault("OPTIONS", {})
        _options.setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT_S", 5, minimum=1, maximum=120))
        # Connections are kept open and lent again (reqflow.pooled_postgresql says why, and how a kept one is shown to
        # answer within the connect timeout before it is lent). DATABASE_POOL=0 connects afresh for each step instead.
        if env_bool("DATABASE_POOL", True):
            _db["ENGINE"] = "reqflow.pooled_postgresql"
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(SQLITE_PATH),
            "OPTIONS": _SQLITE_OPTIONS,
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: browser tests serve from a separate daphne process that must share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / os.environ.get("REQFLOW_TEST_DB", ".test_db.sqlite3"))}
    # Each thread keeps its SQLite connection. Opening one (the file, the WAL and synchronous pragmas, the ~30 SQL
    # functions Django registers) cost more than most requests' queries: under `make load` a sixth of the web
    # process's CPU went to opening and closing connections. A file has no server-side session to budget, unlike
    # PostgreSQL, whose kept connections are lent to any thread (reqflow.pooled_postgresql; docs/deploy.md, "The
    # connection budget").
    DATABASES["default"]["CONN_MAX_AGE"] = None
IS_POSTGRES = DATABASES["default"]["ENGINE"] in ("django.db.backends.postgresql", "reqflow.pooled_postgresql")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Threads for Django's sync work per web process (reqflow.request_threads), each with at most one database
# connection; daphne reads the same variable for its own pool. docs/deploy.md, "The connection budget", adds up a
# cluster's connections from it.
ASGI_THREADS = env_int("ASGI_THREADS", 8, minimum=1, maximum=256)

# --- Channels -------------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss", "unix"))
REDIS_CONNECT_TIMEOUT_S = 5.0
REDIS_POOL_SIZE = env_int("REDIS_POOL_SIZE", 100, minimum=4)
REDIS_POOL_WAIT_S = 2.0
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis' layer with a pool that waits briefly when full instead of raising (reqflow.channel_layer).
            "BACKEND": "reqflow.channel_layer.WaitingRedisChannelLayer",
            # No socket timeout (redis-py 8 sets 5 s by default), for two reasons measured here:
            # - channels_redis waits for messages with a 5 s BZPOPMIN: every idle receive raced a 5 s read timeout
            #   and raised TimeoutError (an idle page's socket closed with 1011, the projector's listener logged);
            # - redis-py sends every command through asyncio.wait_for when a socket timeout is set, and on
            #   Python 3.11 wait_for loses a cancellation that lands as the send completes: a cancelled receive (a
            #   closing WebSocket, a stopping projector) then went on polling Redis forever, and a test's event
            #   loop never closed.
            # Connecting stays bounded, TCP keepalive notices a dead peer, and our own calls bound themselves
            # (lab.live: publish and wake-up 1 s; the projector's pushes 1 s; read-your-writes its own wait).
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S,
                        "socket_keepalive": True,
                        # Per web process and event loop: sockets opening and closing, hints, the blocking receive.
                        # Redis' maxclients (10,000) is far above processes x this.
                        "max_connections": REDIS_POOL_SIZE,
                        "timeout": REDIS_POOL_WAIT_S,  # a full pool waits this long for a connection, then fails
                    }
                ],
                "capacity": 200,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "reqflow.memory_channel_layer.SweepingInMemoryChannelLayer"}}

# Start the projector inside the web process (the embedded default). Scaled out, run
# `manage.py run_projector` workers instead and set this to 0 on the web processes.
EMBEDDED_PROJECTOR = env_bool("EMBEDDED_PROJECTOR", not TESTING)

# --- Lab limits -----------------------------------------------------------------------------------
LAB_MAX_EVENTS_PER_SANDBOX = env_int("LAB_MAX_EVENTS_PER_SANDBOX", 5000, minimum=10)
LAB_MAX_SANDBOXES_PER_SESSION = env_int("LAB_MAX_SANDBOXES_PER_SESSION", 20, minimum=1)
# A sandbox is created by a learner's first command, never by a page view. These caps count current (not retired)
# sandboxes, one per learner; a reset retires one as it starts one, so only a first command meets them, answered
# 429 with Retry-After (lab.sandboxes). An IPv6 /64 counts as one address.
LAB_MAX_SANDBOXES_PER_ADDRESS = env_int("LAB_MAX_SANDBOXES_PER_ADDRESS", 200, minimum=1)
LAB_MAX_SANDBOXES = env_int("LAB_MAX_SANDBOXES", 20000, minimum=1)
# Idle sandboxes (events and all) are purged inside the running site, every LAB_PURGE_EVERY_S seconds, by the
# projector's loop (the embedded one, or each `run_projector` worker); 0 leaves it to `manage.py purge_sandboxes`
# (the tests' default: a test that purges says so). A visitor's sandbox is unreachable once its browser session
# expires (two weeks); an account's lasts longer.
LAB_IDLE_DAYS = env_int("LAB_IDLE_DAYS", 14, minimum=1)
LAB_ACCOUNT_IDLE_DAYS = env_int("LAB_ACCOUNT_IDLE_DAYS", 180, minimum=1)
LAB_PURGE_EVERY_S = env_int("LAB_PURGE_EVERY_S", 0 if TESTING else 3600, minimum=0)
# Open lab pages (WebSockets) per browser session and per client address, in each server process: past either,
# the oldest is closed and its page says why (lab.sockets).
LAB_MAX_SOCKETS_PER_SESSION = env_int("LAB_MAX_SOCKETS_PER_SESSION", 10, minimum=1)
LAB_MAX_SOCKETS_PER_ADDRESS = env_int("LAB_MAX_SOCKETS_PER_ADDRESS", 100, minimum=1)

# --- Auth -----------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "concepts:catalog"
LOGOUT_REDIRECT_URL = "concepts:catalog"
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# Beside the per-username lock: failed sign-ins from one address, whatever the usernames (accounts.lockout).
SIGNIN_FAILURES_PER_ADDRESS = env_int("SIGNIN_FAILURES_PER_ADDRESS", 30, minimum=1)
AXES_HANDLER = "accounts.lockout.AddressAndUsernameHandler"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"

# --- HTTP hardening -------------------------------------------------------------------------------
# One cap on every request body, any content type (reqflow.bodycap answers 413 before Django reads it).
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 64 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
# Slow clients (reqflow.deadlines, in daphne): a request's headers must all arrive within HTTP_HEADER_TIMEOUT_S of
# its first byte, and its body within HTTP_BODY_TIMEOUT_S of its headers, however steadily it trickles in.
HTTP_HEADER_TIMEOUT_S = env_int("HTTP_HEADER_TIMEOUT_S", 10, minimum=1)
HTTP_BODY_TIMEOUT_S = env_int("HTTP_BODY_TIMEOUT_S", 30, minimum=1)
# Django's database sessions, each request's read in one plain statement (reqflow/session_store.py).
SESSION_ENGINE = "reqflow.session_store"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Behind TLS (production) these must be on; `check --deploy` insists. Plain http://127.0.0.1 needs them off.
HTTPS = env_bool("HTTPS", False)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        # 'self' covers the site's own ws:// and wss:// origin (CSP3; tests/browser/test_csp_socket.py checks it in
        # chromium): a page may open a socket to its own host and port only.
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
# Tests serve from the source folders (finders); without collectstatic on a fresh clone WhiteNoise would warn
# about a missing STATIC_ROOT, and the suite turns warnings into errors.
STATIC_ROOT = None if TESTING else Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not (DEBUG or TESTING)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not {LOG_LEVEL!r}")

# One handler, on the root logger; our loggers only set their level and propagate to it. daphne's command line puts
# a handler of its own on the root before it imports the site: when our loggers had their own handler too, every
# line came out twice (tests/reliability/test_startup_errors.py counts them). This replaces daphne's root handler
# and keeps the root's level (daphne's -v, or WARNING under manage.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"]},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "reqflow": {"level": LOG_LEVEL},
        "concepts": {"level": LOG_LEVEL},
        "lab": {"level": LOG_LEVEL},
    },
}
