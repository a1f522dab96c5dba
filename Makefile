# The two commands a user needs: `make demo` and `make test`. Each sets up what it needs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Polyaxon 2.18 pins older libraries (kubernetes 36, Jinja2 3.1.4): it gets a virtualenv of its own,
# used only as the oracle of the agreement test and as the peer in benchmarks.
PX_VENV := .polyaxon-venv
PX_PY := $(PX_VENV)/bin/python
PIP_QUIET ?= -q

.PHONY: demo test lab lint typecheck bench bench-peers venv polyaxon-venv clean jstest uitest

# package.json holds the version (see pyproject.toml): a new one needs a new install.
$(VENV)/.installed: pyproject.toml labextension/package.json
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

# The venv's bin goes first on PATH: tests start `polynb`, `tensorboard`, `jupyter` and `kubectl` from it.
TEST_ENV := PATH=$(abspath $(VENV))/bin:$$PATH POLYAXON_PYTHON=$(abspath $(PX_PY))

test: venv polyaxon-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check polynb tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(MAKE) jstest uitest
	$(TEST_ENV) $(VENV)/bin/pytest
	$(TEST_ENV) $(VENV)/bin/pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/
	# The same notebooks, outputs compared the same, with every op on the executing test cluster (notebooks/conftest.py).
	$(TEST_ENV) $(VENV)/bin/pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/ --polynb-executor kubernetes

# The JupyterLab extension: jest units, then Galata end to end in Debian's Chromium (installed if missing).
jstest: venv
	cd labextension && PATH=$(abspath $(VENV))/bin:$$PATH jlpm install --immutable && PATH=$(abspath $(VENV))/bin:$$PATH jlpm test

uitest: venv
	VENV=$(abspath $(VENV)) labextension/run-ui-tests.sh

lab: venv
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check polynb tests bench
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

bench: venv polyaxon-venv
	POLYAXON_PYTHON=$(abspath $(PX_PY)) $(PY) bench/spec_check.py
	$(PY) bench/scheduler.py
	$(PY) bench/kubernetes.py
	$(PY) bench/kubernetes_store.py
	$(PY) bench/notebook.py
	$(PY) bench/sweep.py
	$(PY) bench/events.py
	$(PY) bench/store_sync.py
	$(PY) bench/peers.py

# polynb beside Metaflow, Dagster and Luigi (each installed once into bench/.venvs/ by the script itself).
bench-peers: venv
	$(PY) bench/peers.py

clean:
	rm -rf $(VENV) $(PX_VENV) bench/.venvs .pytest_cache .ruff_cache .mypy_cache .import_linter_cache .grimp_cache
	rm -rf labextension/node_modules labextension/ui-tests/node_modules labextension/lib polynb/labextension
