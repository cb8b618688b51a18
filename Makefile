# Anjia: every target creates or updates .venv and installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv system-deps lint test test-fast demo bench-ble bench-ingest bench-gateway clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

# Debian packages the tests run against for real (Mosquitto, PostgreSQL, VictoriaMetrics, Chromium).
system-deps:
	@bash .ci/system-deps.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy device_drivers edge alert_rules gateway firmware_sim cloud

# pytest exits 5 when it collected nothing: that is a failure here, never a silent pass.
test: venv system-deps lint
	@set -o pipefail; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing"; exit 1; fi; exit $$rc

test-fast: venv
	$(PY) -m pytest -x -q -m "not slow" $(PYTEST_ARGS)

demo: venv
	$(VENV)/bin/anjia demo

bench-ble: venv
	$(PY) bench/bench_ble.py

bench-ingest: venv system-deps
	$(PY) bench/bench_ingest.py

bench-gateway: venv system-deps
	$(PY) bench/bench_gateway.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis
