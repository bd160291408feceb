"""Pure layers stay pure: the runtime package, the schema engine and the domain packages load no client library.

Each import runs in a fresh interpreter (this test process has long since
loaded grpc, pika and pymongo), so a module that pulls one in at import time,
directly or through a chain, fails here by name. `make lint` enforces the same
rule statically with import-linter (.importlinter).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLIENTS = ("grpc", "pika", "pymongo", "bson", "mongoengine", "flask")

PURE = [
    "crm_runtime",
    "crm_runtime.envelope",
    "crm_runtime.errors",
    "crm_runtime.access",
    "crm_runtime.principal",
    "crm_schema",
    "form_service.domain",
    "form_service.domain.service",
    "form_service.events",
    "record_service.domain",
    "record_service.domain.records",
    "record_service.domain.bulk",
    "record_service.domain.listing",
    "record_service.domain.view360",
    "record_service.events",
]


def _loaded_clients(statement: str) -> list[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    return sorted(loaded & set(CLIENTS))


def test_importing_the_pure_packages_together_loads_no_client() -> None:
    statement = "import crm_runtime, crm_schema, record_service.domain, form_service.domain"
    assert _loaded_clients(statement) == []


@pytest.mark.parametrize("module", PURE)
def test_pure_module_loads_no_client(module: str) -> None:
    assert _loaded_clients(f"import {module}") == []


def test_the_lazy_runtime_names_still_resolve() -> None:
    """The grpc/pika-backed re-exports load on first use (and only then)."""
    code = (
        "import sys, crm_runtime\n"
        "assert 'pika' not in sys.modules and 'grpc' not in sys.modules\n"
        "from crm_runtime import EventPublisher, build_server, serve_forever\n"
        "from crm_runtime.events import EventPublisher as E\n"
        "from crm_runtime.grpc_server import build_server as B\n"
        "assert EventPublisher is E and build_server is B and callable(serve_forever)\n"
        "assert 'pika' in sys.modules and 'grpc' in sys.modules\n"
        "assert set(crm_runtime.__all__) <= set(dir(crm_runtime))\n"
        "try:\n    crm_runtime.nothing_here\n"
        "except AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('an unknown name must raise AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
