# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv, install the project at the versions in constraints.txt (the lock file) and fetch
# the pretrained face models once.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := constraints.txt

.PHONY: setup browser demo test test-fast lint lock

setup: $(STAMP)

# pip, setuptools and wheel come from the lock first, so the project is built by the locked setuptools
# (no isolated build environment that would fetch the newest one).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip setuptools wheel
	$(PY) -m pip install --quiet -c $(LOCK) --no-build-isolation -e '.[dev]'
	$(PY) -m facecodec.assets
	touch $(STAMP)

demo: setup
	$(PY) -m devstack.demo

test: setup browser
	$(PY) -m pytest -q

# The console's tests drive a real headless Chromium (tests/test_console.py): Debian's chromium and
# chromium-driver, installed here when absent (as root, or with sudo). Without apt-get, install them
# yourself; outside CI the test skips and says so.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo "no apt-get: install chromium and chromedriver for tests/test_console.py"; fi

# The inner loop: everything but the slow and end-to-end tests.
test-fast: setup
	$(PY) -m pytest -q -m "not slow and not e2e"

lint: setup
	$(VENV)/bin/ruff check .

# Re-resolve every dependency from the registries and rewrite the lock (README, 'Upgrading dependencies').
lock:
	$(PYTHON) scripts/lock.py
