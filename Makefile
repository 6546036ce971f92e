# BimRide: `make run` starts everything, `make test` runs the suite. Both bring their own
# PostgreSQL unless DATABASE_URL is set.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The settings take the database from DATABASE_URL alone: each target starting Django sets it.
DB_URL = $${DATABASE_URL:-$$($(PY) -m devtools.devdb start)}

.PHONY: run test test-pooled lint fmt bench bench-jobs bench-growth bench-api bench-capacity bench-providers reliability db-start db-stop db-status pooler-start pooler-stop clean

$(VENV)/.installed: requirements.txt
	@echo "==> installing the pinned requirements into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

run: venv
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m devtools.run

test: venv
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m pytest $(PYTEST_ARGS)

# The same through PgBouncer in transaction mode, its own per run (tests/pooler.py).
test-pooled: venv
	@export DATABASE_URL="$(DB_URL)" BIMRIDE_TEST_POOLER=1 && $(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the dependency contracts in pyproject.toml

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench-jobs: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m bench.jobs $(BENCH_ARGS)

bench-growth: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m bench.growth $(BENCH_ARGS)

# This release against a baseline (BENCH_ARGS="--baseline REF", default 3d48880), alternating
# runs: latency per endpoint and rate, CPU per request per process, capacity. About 20 minutes;
# BENCH_ARGS=--quick: about 5. Run one benchmark at a time: flock /tmp/bimride-bench.lock make …
bench-api: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m bench.api $(BENCH_ARGS)

# What a ride and a job cost PostgreSQL (statements, rows, WAL, CPU): the capacity model in
# bench/README.md.
bench-capacity: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m bench.capacity $(BENCH_ARGS)

# Jobs that wait on providers, the stand-ins as slow as Stripe (0.3 s) and email (2 s): (a) 1,500
# Stripe-bound jobs, ours at default settings beside Celery's threads pool; (b) the ride flow at
# 10 rides/s against a baseline (BENCH_ARGS="--baseline REF", default f21c151). About 25 minutes;
# BENCH_ARGS=--quick: about 5.
bench-providers: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m bench.providers $(BENCH_ARGS)

bench: bench-jobs bench-growth bench-api

# Faults under load (worker SIGKILLs, a PostgreSQL restart, races, fuzzing, authz, one of three
# hosts behind PgBouncer killed whole), on its own embedded PostgreSQL (.data/pg-reliability);
# under 15 minutes; RELIABILITY_ARGS=--quick: ~5.
reliability: venv
	@$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@$(PY) -m bench.reliability $(RELIABILITY_ARGS)

db-start: venv
	@$(PY) -m devtools.devdb start
db-stop: venv
	@$(PY) -m devtools.devdb stop
db-status: venv
	@$(PY) -m devtools.devdb status

# PgBouncer (transaction mode) in front of DATABASE_URL or the embedded PostgreSQL; prints its URL.
pooler-start: venv
	@export DATABASE_URL="$(DB_URL)" && $(PY) -m devtools.pgbouncer start
pooler-stop: venv
	@$(PY) -m devtools.pgbouncer stop
