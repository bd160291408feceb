# The platform on one machine. `make run` starts it, `make test` tests it;
# both set up everything they need first (virtualenvs, stubs, store, broker).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STORE_VENV := .venv-store
LOCAL_PACKAGES := services/runtime services/schema services/form services/record services/workflow gateway
# their distribution names (crm-runtime …), read from their pyprojects when needed
LOCAL_DISTS = $(shell sed -n 's/^name = "\(.*\)"/\1/p' $(addsuffix /pyproject.toml,$(LOCAL_PACKAGES)))
PACKAGES := $(addprefix -e ,$(LOCAL_PACKAGES))
# every distribution of .venv pinned with hashes; made by `make lock` from requirements.txt + the packages' pyprojects
LOCK := requirements.lock
UV := $(VENV)/bin/uv
# e.g. `make lock LOCK_ARGS=--upgrade` or `make lock LOCK_ARGS="--upgrade-package pymongo"`
LOCK_ARGS ?=
SECANTUSDB := SecantusDB==0.7.0b3

.PHONY: help deps lock proto broker run test test-unit test-integration test-e2e lint bench load clean

help:
	@echo "make run    start the whole platform (store, broker, services, gateway)"
	@echo "make test   run unit, integration and end-to-end tests"
	@echo "make lint   ruff format --check, ruff check, mypy"
	@echo "make bench  the figures of issue #7 beside the raw driver on the same store (SCALE=1m: 1,048,576 records;"
	@echo "            BENCH_ARGS=\"--reps 30 --no-load --only-access ...\")"
	@echo "            WHAT=workflow: the workflow figures instead (bench/workflow.py: event -> task latency, events/s"
	@echo "            vs raw pika, the due scan, round robin; BENCH_ARGS=\"--only 3 --events 2000 ...\"); WHAT=all: both"
	@echo "make load   the mixed load only: locust, 50 users on 5,000 customers (LOAD_ARGS=\"--load-time 60s\")"

# Exactly the locked tree (hash-checked), then the project's own packages without
# resolving anything again: a fresh clone gets the same versions as everyone else.
$(VENV)/.installed: $(LOCK) services/*/pyproject.toml gateway/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(PACKAGES)
	@echo "$(CURDIR)/gen/python" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/crm_gen.pth
	@touch $@

# Re-resolve requirements.txt (tooling) + each package's [project] dependencies into
# $(LOCK) (needs the package index). Versions already in $(LOCK) are kept unless
# LOCK_ARGS asks for upgrades; the packages themselves are not written (installed editable).
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q --disable-pip-version-check "$$(grep -E '^uv==' requirements.txt)"
	printf '%s\n' '-r requirements.txt' $(foreach p,$(LOCAL_PACKAGES),'-e ./$(p)') | $(UV) pip compile - \
	  --output-file $(LOCK) --generate-hashes --universal --python-version 3.11 \
	  $(addprefix --no-emit-package ,$(LOCAL_DISTS)) \
	  --custom-compile-command "make lock" --quiet $(LOCK_ARGS)

# The store runs from its own virtualenv: it is a separate server process and
# is never imported by product code.
$(STORE_VENV)/bin/secantusd-py:
	@test -x $(STORE_VENV)/bin/python || $(PYTHON) -m venv $(STORE_VENV)
	$(STORE_VENV)/bin/python -m pip install -q --disable-pip-version-check "$(SECANTUSDB)"
	@touch $@

deps: $(VENV)/.installed $(STORE_VENV)/bin/secantusd-py proto

gen/python/.stamp: $(shell find proto -name '*.proto') $(VENV)/.installed
	@rm -rf gen/python && mkdir -p gen/python
	$(PY) -m grpc_tools.protoc -I proto --python_out=gen/python --pyi_out=gen/python --grpc_python_out=gen/python $$(find proto -name '*.proto')
	@touch $@

proto: $(VENV)/.installed gen/python/.stamp

broker:
	@scripts/ensure_broker.sh

run: deps broker
	@scripts/run.sh

test: deps broker
	@scripts/test.sh

test-unit: deps
	$(PY) -m pytest -q services/schema/tests services/runtime/tests services/form/tests/unit services/record/tests/unit services/workflow/tests/unit gateway/tests/unit

lint: deps
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy services/runtime/src/crm_runtime services/schema/src/crm_schema services/form/src/form_service services/record/src/record_service services/workflow/src/workflow_service gateway/src/gateway
	$(VENV)/bin/lint-imports

# WHAT=record (the default: bench/run.py), workflow (bench/workflow.py) or all (the one, then the other;
# BENCH_ARGS then goes to bench/run.py only)
WHAT ?= record
bench: deps broker
ifeq ($(filter $(WHAT),record workflow all),)
	$(error WHAT must be record, workflow or all, not "$(WHAT)")
endif
ifneq ($(WHAT),workflow)
	$(PY) bench/run.py $(if $(SCALE),--scale $(SCALE)) $(BENCH_ARGS)
endif
ifneq ($(WHAT),record)
	BENCH_COMMAND="make bench WHAT=$(WHAT)$(if $(filter workflow,$(WHAT)),$(if $(BENCH_ARGS), BENCH_ARGS=\"$(BENCH_ARGS)\"))" \
	  $(PY) bench/workflow.py $(if $(filter workflow,$(WHAT)),$(BENCH_ARGS))
endif

load: deps broker
	$(PY) bench/run.py --load-only $(LOAD_ARGS)

clean:
	rm -rf $(VENV) $(STORE_VENV) gen
