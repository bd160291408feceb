# The platform on one machine. `make run` starts it, `make test` tests it;
# both set up everything they need first (virtualenvs, stubs, store, broker).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STORE_VENV := .venv-store
PACKAGES := -e services/runtime -e services/schema -e services/form -e services/record -e gateway
SECANTUSDB := SecantusDB==0.7.0b3

.PHONY: help deps proto broker run test test-unit test-integration test-e2e lint bench clean

help:
	@echo "make run    start the whole platform (store, broker, services, gateway)"
	@echo "make test   run unit, integration and end-to-end tests"
	@echo "make lint   ruff format --check, ruff check, mypy"
	@echo "make bench  benchmarks against the raw driver on the same store (BENCH_ARGS=\"--only-access --records 100000\")"

$(VENV)/.installed: requirements.txt services/*/pyproject.toml gateway/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt $(PACKAGES)
	@echo "$(CURDIR)/gen/python" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/crm_gen.pth
	@touch $@

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
	$(PY) -m pytest -q services/schema/tests services/runtime/tests services/form/tests/unit services/record/tests/unit gateway/tests/unit

lint: deps
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy services/runtime/src/crm_runtime services/schema/src/crm_schema services/form/src/form_service services/record/src/record_service gateway/src/gateway
	$(VENV)/bin/lint-imports

bench: deps broker
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(STORE_VENV) gen
