# Herald: `make up` runs it, `make test` tests it. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= uv
BUF := node_modules/.bin/buf
PYTEST_ARGS ?=
# Test files run on this many pytest-xdist workers (each with its own isolation). Much of
# the suite waits on processes, brokers and timeouts: two kept two cores ~73% busy, three
# keep them ~86-92% busy (docs/testing.md, "What keeps make test fast").
TEST_WORKERS ?= 3
# Gateway processes `make up` runs; they share the HTTP and gRPC ports (SO_REUSEPORT).
# On two cores, two take ~20% more at saturation (README, Performance); `make bench` runs two.
GATEWAYS ?= 1
# make, for make test's checks: named apart so that `make -n test` prints the recipe and
# runs nothing (make runs a recipe line that names $(MAKE) even under -n).
CHECKS_MAKE := $(MAKE)
# Python writes the bytecode of each module it compiles, into .venv and this tree, so the
# next process reads it. Where PYTHONDONTWRITEBYTECODE is set (this CI machine sets it),
# every process compiled each module it imported, at every start: ~1 s of CPU for a
# service, and the tests start dozens. Compiling all of .venv in `make setup` instead
# (uv sync --compile-bytecode) took 11 s of a clean clone's 20 s setup, mostly for
# packages no process imports.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help setup gen lint checks check-gen breaking test test-fast up services databases bench

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## Install the locked Python and npm dependencies.
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet 'uv==0.13.9'
	$(UV) sync --frozen
	@# npm ci refuses lockfiles without every platform's optional package; install honours the lock.
	@[ -x $(BUF) ] || npm install --no-audit --no-fund --no-save
	@# The console's front-end files (htmx), locked in console/package-lock.json; no build step.
	@[ -f console/node_modules/htmx.org/dist/htmx.min.js ] || npm ci --prefix console --no-audit --no-fund
	@./scripts/tools.sh

gen: setup ## Regenerate gen/ from proto/.
	./scripts/gen.sh

lint: setup checks ## buf lint/format/breaking, generated code up to date, ruff, mypy, promtool.

checks: ## The checks alone, without setup (make test runs them beside the tests).
	$(BUF) lint
	$(BUF) format --exit-code --diff
	./scripts/buf-breaking.sh
	./scripts/check-gen.sh
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy .
	promtool check rules ops/prometheus/herald-alerts.yml

test: setup ## Run every check and the whole test suite, side by side (needs PostgreSQL, Redis, RabbitMQ).
	./scripts/services.sh
	./scripts/check-and-test.sh $(CHECKS_MAKE) -- $(UV) run --frozen pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

test-fast: ## The fast loop: the unit tier only, no server needed (README, Tests).
	$(UV) run --frozen pytest -m unit -n $(TEST_WORKERS) -q $(PYTEST_ARGS)

services: ## Make sure PostgreSQL, Redis and RabbitMQ answer (starting installed ones).
	./scripts/services.sh

up: setup services ## Run Herald: every process (restarted if one dies), sandbox providers, Ctrl-C stops all.
	@[[ "$(GATEWAYS)" =~ ^[1-9][0-9]*$$ ]] || { echo "GATEWAYS must be a whole number, at least 1 (got '$(GATEWAYS)')" >&2; exit 2; }
	$(UV) run --frozen python -m scripts.ports_free
	for service in userd templated gateway; do $(UV) run --frozen python -m $$service migrate || exit 1; done
	@# The sandbox's receipts (docs/receipts.md): a secret made for this run, and the edge's URL.
	export HERALD_SANDBOX_RECEIPTS_SECRET="$${HERALD_SANDBOX_RECEIPTS_SECRET-whsec_$$(head -c 24 /dev/urandom | base64)}" \
	  HERALD_RECEIPTS_BASE_URL="$${HERALD_RECEIPTS_BASE_URL-http://127.0.0.1:$${HERALD_GATEWAY_HTTP_PORT:-8000}}"; \
	$(UV) run --frozen python -m scripts.supervise --scale gateway=$(GATEWAYS)

bench: setup services ## Throughput and latency of an isolated stack (BENCH_ARGS="--help" lists knobs).
	$(UV) run --frozen python -m bench $(BENCH_ARGS)
