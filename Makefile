# The two commands a user needs: `make demo` and `make test`. Each sets up what it needs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Polyaxon 2.18 pins older libraries (kubernetes 36, Jinja2 3.1.4): it gets a virtualenv of its own,
# used only as the oracle of the agreement test and as the peer in benchmarks.
PX_VENV := .polyaxon-venv
PX_PY := $(PX_VENV)/bin/python
PIP_QUIET ?= -q

.PHONY: demo test lint typecheck bench venv polyaxon-venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) -e '.[test]'
	touch $@

$(PX_VENV)/.installed:
	$(PYTHON) -m venv $(PX_VENV)
	$(PX_PY) -m pip install $(PIP_QUIET) 'polyaxon==2.18.0'
	touch $@

venv: $(VENV)/.installed
polyaxon-venv: $(PX_VENV)/.installed

demo: venv
	$(PY) -m polynb.demo

test: venv polyaxon-venv
	$(VENV)/bin/ruff check polynb tests bench
	$(VENV)/bin/mypy
	POLYAXON_PYTHON=$(abspath $(PX_PY)) $(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check polynb tests bench
	$(VENV)/bin/ruff format --check polynb tests bench

typecheck: venv
	$(VENV)/bin/mypy

bench: venv polyaxon-venv
	POLYAXON_PYTHON=$(abspath $(PX_PY)) $(PY) bench/spec_check.py
	$(PY) bench/scheduler.py

clean:
	rm -rf $(VENV) $(PX_VENV) .pytest_cache .ruff_cache .mypy_cache
