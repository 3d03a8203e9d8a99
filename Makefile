# Reqflow: `make run` serves the site, `make test` runs every test. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
# Empty: the local server (PostgreSQL 127.0.0.1:5432 database reqflow, Redis 127.0.0.1:6379 db 14) when it answers,
# else a throwaway one started from the installed binaries (deploy/services.py).
PG_TEST_URL ?=
REDIS_TEST_URL ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run cluster test test-fast test-postgres test-long lint bench load lighthouse screenshot clean

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Reqflow needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

# Debian's chromium for the browser tests (Playwright never downloads a browser here).
/usr/bin/chromium:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

# Debian's nginx for `make cluster` and its test (the package's own service is not started for it).
/usr/sbin/nginx:
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; fi

# The benchmark peers (the Python eventsourcing library) and the load generator (Locust): `make bench` and
# `make load` only, never the site or its tests (bench/requirements.txt).
$(VENV)/.bench-installed: $(VENV)/.dev-installed bench/requirements.txt
	$(PIP) install -q -r bench/requirements.txt
	touch $@

# Node.js and npm for axe-core and Lighthouse: Debian's packages when the machine has none.
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; fi; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.installed
	@$(PY) manage.py check_store
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v 0
	@echo "Reqflow is at http://127.0.0.1:$(PORT)/  (Ctrl-C stops it)"
	$(VENV)/bin/daphne -b 127.0.0.1 -p $(PORT) --websocket-max-message-size 65536 --http-timeout 60 --websocket_connect_timeout 5 --ping-interval 20 --ping-timeout 30 reqflow.asgi:application

# nginx on PORT in front of two daphne processes (PORT+1, PORT+2) and two projector workers, on PostgreSQL and Redis:
# DATABASE_URL and REDIS_URL when set, else the local servers, else throwaway ones in .cluster/ (docs/deploy.md).
cluster: $(VENV)/.installed /usr/sbin/nginx
	$(PY) -m deploy.cluster --port $(PORT)

# The bench and load smoke tests import the peers and Locust, so the suite installs bench/requirements.txt too;
# nginx before the SQLite pass, whose nginx tests (test_nginx_upstreams) must never be skipped.
test: $(VENV)/.bench-installed /usr/bin/chromium /usr/sbin/nginx node_modules/.installed
	$(MAKE) --no-print-directory lint
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/pytest -p no:cacheprovider -m "not redis and not postgres and not long"
	$(MAKE) --no-print-directory test-postgres
	$(MAKE) --no-print-directory test-long

# The same store, projector and socket tests, again on PostgreSQL and Redis (the scaled-out mode).
test-postgres: $(VENV)/.dev-installed /usr/sbin/nginx
	$(PY) -m deploy.services --dir .cluster/test --database-url "$(PG_TEST_URL)" --redis-url "$(REDIS_TEST_URL)" \
		-- $(VENV)/bin/pytest -p no:cacheprovider -m "backend and not long"

# The long fault cases (tests/reliability/, marked `long`): on SQLite, then the store, projector and Redis ones again
# on PostgreSQL + Redis (the same services as test-postgres). CI runs them through `make test`.
test-long: $(VENV)/.dev-installed /usr/sbin/nginx
	$(VENV)/bin/pytest -p no:cacheprovider -m "long and not redis and not postgres"
	$(PY) -m deploy.services --dir .cluster/test --database-url "$(PG_TEST_URL)" --redis-url "$(REDIS_TEST_URL)" \
		-- $(VENV)/bin/pytest -p no:cacheprovider -m "long and (backend or redis or postgres)"

test-fast: $(VENV)/.dev-installed
	$(VENV)/bin/pytest -p no:cacheprovider -m "not browser and not slow" -x

# Style, format, the layers of docs/architecture.md (import-linter contracts in pyproject.toml), types, and bandit
# on the project code ([tool.bandit] in pyproject.toml; tests/unit/test_static_rules.py adds the project's own rules).
lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/bandit -c pyproject.toml -q -r lab concepts notes accounts reqflow manage.py

bench: $(VENV)/.bench-installed
	$(PY) bench/run.py

# Locust against `make run` (300 learners, 50 commands/s) and `make cluster` (1,000 learners, 150 commands/s), loopback
# only and bounded in time; STEP=1 raises the rate until the goals break (bench/load/README.md).
load: $(VENV)/.bench-installed /usr/sbin/nginx
	$(PY) -m bench.load

lighthouse: $(VENV)/.installed /usr/bin/chromium node_modules/.installed
	$(PY) bench/lighthouse.py

screenshot: $(VENV)/.dev-installed /usr/bin/chromium
	$(PY) docs/make_screenshot.py

clean:
	rm -rf $(VENV) node_modules staticfiles .test_db*.sqlite3*
