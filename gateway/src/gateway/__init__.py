"""The REST gateway: authentication, tenants, users, departments, roles, OpenAPI, problem+json.

`create_app(config)` builds the Flask (apiflask) app; `python -m gateway serve`
runs it under gunicorn, `python -m gateway seed` prepares a fresh install.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Imported lazily: `python -m gateway serve` must set PROMETHEUS_MULTIPROC_DIR
    # before anything imports prometheus_client, and importing the package comes first.
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    raise AttributeError(name)
