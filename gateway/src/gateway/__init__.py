"""The REST gateway: authentication, tenants, users, departments, roles, OpenAPI, problem+json.

`create_app(config)` builds the Flask (apiflask) app; `python -m gateway serve`
runs it under gunicorn, `python -m gateway seed` prepares a fresh install.
"""

from gateway.app import create_app

__all__ = ["create_app"]
