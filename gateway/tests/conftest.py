"""Fixtures for the gateway's tests: fakes of our ServiceClient interface and a real SecantusDB.

`app` / `client` run the gateway over fake services and the real store (integration tests);
`unit_app` / `unit_client` over fake services and no store at all, each token of
`unit_tokens` standing for a signed-in user (unit tests of routes).
"""

from __future__ import annotations

import sys

# pytest's importlib mode names this file "gateway.tests.conftest" (path from the repo root) and
# registers the *directory* gateway/ as a namespace module "gateway", shadowing the real package.
# Put the real package back before anything imports from it.
if getattr(sys.modules.get("gateway"), "__file__", None) is None:
    sys.modules.pop("gateway", None)
    import gateway  # noqa: F401,E402 - the installed package (gateway/src/gateway)

import dataclasses
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from crm_runtime.principal import Principal


class FakeRpcError(grpc.RpcError):
    """What a grpc stub raises: a status code and a details string (a JSON problem from our services)."""

    def __init__(self, code: grpc.StatusCode, details: str | dict[str, Any]) -> None:
        super().__init__(str(details))
        self._code = code
        self._details = details if isinstance(details, str) else json.dumps(details, ensure_ascii=False)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@dataclass
class FakeService:
    """A ServiceClient whose RPCs are plain functions; records every call."""

    name: str
    handlers: dict[str, Callable[[Any, Principal], Any]] = field(default_factory=dict)
    up: bool = True
    calls: list[tuple[str, Any, Principal]] = field(default_factory=list)

    def unary(self, method: str, request: Any, principal: Principal, timeout: float | None = None) -> Any:
        self.calls.append((method, request, principal))
        if method not in self.handlers:
            raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{method} not faked")
        return self.handlers[method](request, principal)

    def stream(self, method: str, request: Any, principal: Principal) -> Iterator[Any]:
        self.calls.append((method, request, principal))
        yield from self.handlers[method](request, principal)

    def healthy(self) -> bool:
        return self.up

    def last(self, method: str) -> tuple[Any, Principal]:
        """The request and principal of the latest call to `method`."""
        for m, req, principal in reversed(self.calls):
            if m == method:
                return req, principal
        raise AssertionError(f"{method} was not called")


ADMIN_PASSWORD = "Admin-Pass-123"


@pytest.fixture(scope="session")
def store_url() -> Iterator[str]:
    """A private SecantusDB server for the whole session."""
    from crm_runtime.testing import start_store

    store = start_store()
    yield store.url
    store.stop()


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Any:
    """Settings for one test: its own database, cheap argon2, a known admin password."""
    from gateway.settings import Settings

    return Settings(
        jwt_secret="test-secret-" + uuid.uuid4().hex,
        mongo_url=store_url,
        gateway_db=f"gw_{uuid.uuid4().hex[:12]}",
        data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
    )


@pytest.fixture
def form_service() -> FakeService:
    """A fake FormService."""
    return FakeService("form")


@pytest.fixture
def record_service() -> FakeService:
    """A fake RecordService."""
    return FakeService("record")


@pytest.fixture
def workflow_service() -> FakeService:
    """A fake WorkflowService."""
    return FakeService("workflow")


@pytest.fixture
def gw_store(settings: Any) -> Iterator[Any]:
    """The gateway's database for this test, seeded (tenant, departments, admin)."""
    from gateway.seed import seed_directory
    from gateway.store import GatewayStore

    store = GatewayStore.connect(settings.mongo_url, settings.gateway_db)
    seed_directory(settings, store)
    yield store
    store.db.client.drop_database(settings.gateway_db)
    store.db.client.close()


@pytest.fixture
def app(
    settings: Any, gw_store: Any, form_service: FakeService, record_service: FakeService, workflow_service: FakeService
) -> Any:
    """A gateway app over fakes and the real store."""
    from gateway import create_app
    from gateway.clients import Services

    return create_app(
        {
            "GATEWAY_SETTINGS": settings,
            "GATEWAY_STORE": gw_store,
            "GATEWAY_SERVICES": Services(form=form_service, record=record_service, workflow=workflow_service),
            "TESTING": True,
        }
    )


@pytest.fixture
def client(app: Any) -> Any:
    """Flask test client."""
    return app.test_client()


UNIT_ADMIN_TOKEN = "unit-admin-token"
UNIT_SALES_TOKEN = "unit-sales-token"


def _unit_identity(user_id: str, role: str, name: str) -> Any:
    from crm_runtime.principal import Principal
    from gateway.auth import Identity
    from gateway.tokens import Claims

    principal = Principal(
        tenant_id="default", user_id=user_id, role=role, roles=(role,), user_name=name, session_id=f"s-{user_id}"
    )
    claims = Claims("default", user_id, role, "", name, principal.session_id)
    user = {"_id": user_id, "tenant_id": "default", "username": name, "roles": [role], "active": True}
    return Identity(claims, user, principal)


@pytest.fixture
def unit_tokens() -> dict[str, Any]:
    """Access token -> the gateway.auth.Identity it stands for in `unit_app` (add more as a test needs)."""
    return {
        UNIT_ADMIN_TOKEN: _unit_identity("u-admin", "admin", "admin"),
        UNIT_SALES_TOKEN: _unit_identity("u-sales", "sales", "sales"),
    }


@pytest.fixture
def unit_app(
    monkeypatch: pytest.MonkeyPatch,
    unit_tokens: dict[str, Any],
    form_service: FakeService,
    record_service: FakeService,
    workflow_service: FakeService,
) -> Any:
    """A gateway app over fake services and no store: a route's own behaviour, without SecantusDB.

    Authentication is replaced at its one function, gateway.auth.authenticate: a token of
    `unit_tokens` is its identity (with the request's locale and id), any other token or none is
    refused, as an unknown session is. The real check runs in the integration tests over a real store.
    """
    from unittest.mock import MagicMock

    from gateway import auth, create_app
    from gateway.clients import Services
    from gateway.settings import Settings

    def authenticate(_gw: Any, token: str, *, locale: str = "zh-CN", request_id: str = "") -> Any:
        identity = unit_tokens.get(token)
        if identity is None:
            return None
        principal = dataclasses.replace(identity.principal, locale=locale, request_id=request_id)
        return dataclasses.replace(identity, principal=principal)

    monkeypatch.setattr(auth, "authenticate", authenticate)
    return create_app(
        {
            "GATEWAY_SETTINGS": Settings(jwt_secret="unit-test-secret-0123456789"),
            "GATEWAY_STORE": MagicMock(),
            "GATEWAY_SERVICES": Services(form=form_service, record=record_service, workflow=workflow_service),
            "GATEWAY_ENSURE_INDEXES": False,
            "TESTING": True,
        }
    )


@pytest.fixture
def unit_client(unit_app: Any) -> Any:
    """Flask test client of `unit_app`."""
    return unit_app.test_client()


def login(client: Any, username: str, password: str, address: str = "10.0.0.1", **extra: Any) -> Any:
    """POST /auth/login from `address`."""
    return client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password, **extra},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture
def admin_token(client: Any) -> str:
    """An access token of the seeded admin."""
    resp = login(client, "admin", ADMIN_PASSWORD)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return str(resp.get_json()["access_token"])


def bearer(token: str, locale: str | None = None) -> dict[str, str]:
    """Authorization (and language) headers."""
    headers = {"Authorization": f"Bearer {token}"}
    if locale:
        headers["Accept-Language"] = locale
    return headers


@pytest.fixture
def helpers() -> Any:
    """Module-free access to the helpers above (tests import no conftest)."""

    class H:
        login = staticmethod(login)
        bearer = staticmethod(bearer)
        FakeRpcError = FakeRpcError
        ADMIN_PASSWORD = ADMIN_PASSWORD
        UNIT_ADMIN_TOKEN = UNIT_ADMIN_TOKEN
        UNIT_SALES_TOKEN = UNIT_SALES_TOKEN

    return H


OTHER_TENANT = "acme"


@pytest.fixture
def other_tenant(app: Any, client: Any) -> dict[str, Any]:
    """A second tenant with its own built-in roles and an admin: {tenant_id, admin_id, token}."""
    from datetime import UTC, datetime

    gw = app.extensions["crm_gateway"]
    gw.store.tenants.insert_one(
        {"_id": OTHER_TENANT, "name": "Acme", "time_zone": "UTC", "created_at": datetime.now(UTC)}
    )
    gw.roles.ensure_builtins(OTHER_TENANT)
    admin = gw.users.create(OTHER_TENANT, {"username": "boss", "password": "Secret-123", "roles": ["admin"]})
    resp = login(client, "boss", "Secret-123", tenant=OTHER_TENANT)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {"tenant_id": OTHER_TENANT, "admin_id": admin["_id"], "token": resp.get_json()["access_token"]}
