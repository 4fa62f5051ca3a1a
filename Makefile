# `make run` brings Slipway up on this machine; `make test` runs its tests.
# Both create .venv, install Slipway into it and start the services it needs.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SLIPWAY := $(VENV)/bin/slipway
# Touched after each install, so pip runs again only when pyproject.toml changes.
INSTALLED := $(VENV)/.slipway-installed

.PHONY: run test bench venv postgresql chromium

# The EXIT trap stops the Redis server and Docker engine that bootstrap started,
# on Ctrl-C as on any failure; honcho's --port keeps its default (5000) out of PORT.
# honcho gives each process a PORT of its own (8100, 8200, …), so the public URL is
# fixed here, once, for all of them: links in statuses and build pages use it.
run: venv
	@trap '$(SLIPWAY) bootstrap --stop' EXIT; \
	export SLIPWAY_BASE_URL="$${SLIPWAY_BASE_URL:-http://localhost:$${PORT:-8000}}"; \
	$(SLIPWAY) bootstrap && \
	$(SLIPWAY) db upgrade && \
	echo "Slipway runs at $$SLIPWAY_BASE_URL (Ctrl-C stops it)" && \
	$(VENV)/bin/honcho start -f Procfile --port "$${PORT:-8000}"

# The tests and the bench start Redis servers of their own; they need the Docker engine.
# The tests run in TEST_WORKERS processes (pytest-xdist), a test file in one of them:
# most of a test's time is spent waiting on containers, servers and the browser.
TEST_WORKERS ?= 2
test: venv postgresql chromium
	$(SLIPWAY) bootstrap --without-redis
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Tests that touch SQL run on SQLite and on a PostgreSQL server the test session starts
# itself (initdb + pg_ctl, tests/databases.py), unless SLIPWAY_TEST_DATABASE_URL names one.
postgresql:
	@if [ -z "$$SLIPWAY_TEST_DATABASE_URL" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	    && ! command -v initdb >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y postgresql || { apt-get update && apt-get install -y postgresql; } || exit 1; \
	  else \
	    echo "The tests need PostgreSQL's initdb and pg_ctl: install postgresql (as root: apt-get install postgresql), or set SLIPWAY_TEST_DATABASE_URL to a server's administrator URL." >&2; \
	    exit 1; \
	  fi; \
	fi

# The browser tests drive Debian's Chromium through Playwright (tests/browser.py).
chromium:
	@if [ -z "$$SLIPWAY_TEST_CHROMIUM" ] && ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; } || exit 1; \
	  else \
	    echo "The browser tests need Chromium: install chromium (as root: apt-get install chromium), or set SLIPWAY_TEST_CHROMIUM to a Chromium program." >&2; \
	    exit 1; \
	  fi; \
	fi

bench: venv
	$(SLIPWAY) bootstrap --without-redis
	$(VENV)/bin/python -m tests.bench

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install --disable-pip-version-check -e '.[test]'
	touch $@

# Debian ships venv's pip bootstrap apart from Python (python3-venv).
$(VENV)/bin/python:
	@if ! $(PYTHON) -m venv $(VENV); then \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; } || exit 1; \
	    $(PYTHON) -m venv $(VENV) || exit 1; \
	  else \
	    echo "$(PYTHON) cannot create a virtual environment: install python3-venv (as root: apt-get install python3-venv) and run make again." >&2; \
	    exit 1; \
	  fi; \
	fi
