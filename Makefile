# Sluice: every target bootstraps what it needs from a fresh clone (Python 3.11 and make are enough).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
MODEL  ?= loans
DAYS   ?= 30

# ---- embedded stack settings: all services on 127.0.0.1, all state under $(SLUICE_HOME) -------------
export SLUICE_HOME         ?= $(CURDIR)/.sluice
export SLUICE_AIRFLOW_PORT ?= 8080
export SLUICE_MLFLOW_PORT  ?= 5000
export SLUICE_SMTP_PORT    ?= 8025
export AIRFLOW_HOME        ?= $(SLUICE_HOME)/airflow
export PYTHONPATH          := $(CURDIR)/include:$(CURDIR)/plugins
export MLFLOW_TRACKING_URI ?= http://127.0.0.1:$(SLUICE_MLFLOW_PORT)
export GX_ANALYTICS_ENABLED := false
# Airflow connections (AIRFLOW_CONN_*) come from the environment, never from the UI or the repository: their
# defaults live in one place, sluice.stack.embedded.connections(), which the stack's processes, the tests and
# `python -m sluice.stack.embedded env` use; one exported here or in your shell wins over its default.

.PHONY: help venv demo test test-unit up down status bench lint suite compose-env lock clean \
	up-distributed down-distributed test-distributed

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "uv not found: installing it into .tools/ with pip"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(CURDIR)/.tools uv

# Re-sync only when a lock file or pyproject.toml changed (the stamp is older than one of them). The sync
# removes what the lock files do not list, so Sluice itself is installed after it: editable, from include/
# (pyproject.toml), with no dependencies of its own and the venv's pinned setuptools (no build isolation, so
# nothing is fetched): the `sluice` console script, and `python -m sluice` without PYTHONPATH.
# --compile-bytecode writes every installed module's .pyc once, here (about 80 s on a fresh venv): uv writes none
# by default, and where PYTHONDONTWRITEBYTECODE is set no process ever does, so every Airflow task, model server,
# CLI call and test worker compiled its imports from source again. Measured on the 2-core machine at load 5-6,
# compiled from source vs from .pyc: great_expectations + sklearn.ensemble + mlflow.sklearn 16.5-22.4 s vs 6.5 s,
# sluice.serving.app 5.4 s vs 2.0 s, airflow.sdk 4.5 s vs 2.0 s.
$(VENV)/.synced: requirements.txt requirements-dev.txt pyproject.toml | $(UV)
	@test -x $(PY) || $(UV) venv --quiet --python 3.11 $(VENV)
	$(UV) pip sync --quiet --compile-bytecode --python $(PY) requirements.txt requirements-dev.txt
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation --editable .
	@touch $@

venv: $(VENV)/.synced  ## create or update .venv from the lock files, with Sluice installed editable (`sluice`)

# The drift benchmark's baseline (Evidently 0.7, which needs pandas<3) runs in its own env; rebuilt when its pins change.
BENCH_ENV := .bench-env
$(BENCH_ENV)/.synced: benchmarks/evidently/requirements.txt | $(UV)
	@test -x $(BENCH_ENV)/bin/python || $(UV) venv --quiet --python 3.11 $(BENCH_ENV)
	$(UV) pip install --quiet --python $(BENCH_ENV)/bin/python -r benchmarks/evidently/requirements.txt
	@touch $@

demo: venv  ## run the whole loop through the stack's scheduler and print a summary (DAYS=30)
	$(PY) -m sluice demo --days $(DAYS)

# Tests run on TEST_WORKERS pytest-xdist workers, a module (or the shared Airflow metadata DB) per work unit,
# longest tiers first (tests/conftest.py), in random order (pytest-randomly prints the seed; --randomly-seed=N repeats one).
# Two workers, one per core: stack tests whose subject is not latency take a shared machine's latency budgets
# (tests/machine.py, docs/testing.md), so a neighbour's load does not fail them.
TEST_WORKERS ?= 2
UNIT_WORKERS ?= 2
PYTEST = $(PY) -m pytest --dist loadscope --no-loadscope-reorder

test: venv  ## run every test tier (unit, airflow, dags, integration, e2e, browser)
	$(PYTEST) -n $(TEST_WORKERS)

test-unit: venv  ## only the fast tests that need no server and no Airflow
	$(PYTEST) -n $(UNIT_WORKERS) -m unit

up: venv  ## start PostgreSQL, MLflow, the SMTP sink and Airflow; print URLs and the login
	$(PY) -m sluice.stack.embedded up

down: venv  ## stop exactly the processes `make up` started
	$(PY) -m sluice.stack.embedded down

# The topology of docker-compose.yaml, natively (docs/distributed.md): PostgreSQL on TCP with passwords, Redis,
# moto's S3 server, MLflow on PostgreSQL + S3, Airflow with the CeleryExecutor and two workers. State in
# $(SLUICE_HOME)/distributed; extra ports SLUICE_PG_PORT, SLUICE_REDIS_PORT, SLUICE_S3_PORT (5432/6379/9000).
up-distributed: venv  ## start the distributed topology natively (CeleryExecutor, 2 workers, Redis, S3, Postgres)
	$(PY) -m sluice.stack.distributed up

down-distributed: venv  ## stop exactly the processes `make up-distributed` started
	$(PY) -m sluice.stack.distributed down

test-distributed: venv  ## the loop, races, faults F1-F8 and the backfill speed-up on a distributed stack of its own, ~16 min
	$(PY) -m pytest -p no:randomly tests/distributed

status: venv  ## which services are running
	$(PY) -m sluice.stack.embedded status

bench: venv $(BENCH_ENV)/.synced  ## benchmarks: ratios against a baseline measured in the same run
	$(PY) -m benchmarks

lint: venv  ## ruff, the import contracts (.importlinter), model configs, and every DAG file parses
	$(VENV)/bin/ruff check .
	$(PY) -m sluice config check
	$(VENV)/bin/lint-imports
	$(PY) -m sluice.airflow.dagcheck
	$(VENV)/bin/mypy

suite: venv  ## infer a GX suite from known-good partitions: make suite MODEL=loans [FROM=YYYY-MM-DD] [TO=YYYY-MM-DD]
	$(PY) -m sluice suite $(MODEL) $(if $(FROM),--from $(FROM)) $(if $(TO),--to $(TO))

compose-env: venv  ## write .env with random secrets for docker-compose
	$(PY) -m sluice.stack.compose_env --output .env

lock: | $(UV)  ## re-pin requirements*.txt from requirements*.in
	$(UV) pip compile --quiet --python-version 3.11 requirements.in -o requirements.txt
	$(UV) pip compile --quiet --python-version 3.11 requirements-dev.in -o requirements-dev.txt

clean:  ## stop the stack and delete all local state (.sluice/)
	@if [ -x $(PY) ]; then $(PY) -m sluice.stack.embedded clean; else rm -rf $(SLUICE_HOME); fi
