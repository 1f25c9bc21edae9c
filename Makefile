# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv, install the project with pip and fetch the pretrained face models once.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench-baseline

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m facecodec.assets
	touch $(STAMP)

demo: setup
	$(PY) -m devstack.demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
