"""The first-start seed: idempotent directory data, the admin password file, template install with retries."""

from __future__ import annotations

import dataclasses
import stat
import uuid
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from gateway.seed import install_template, seed, seed_directory
from gateway.store import GatewayStore

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh(settings: Any) -> Any:
    store = GatewayStore.connect(settings.mongo_url, f"seed_{uuid.uuid4().hex[:10]}")
    yield store
    store.db.client.drop_database(store.db.name)


def test_seed_is_idempotent(settings: Any, fresh: Any) -> None:
    first = seed_directory(settings, fresh)
    second = seed_directory(settings, fresh)
    assert first.admin_created and not second.admin_created
    assert first.admin_id == second.admin_id
    assert fresh.users.count_documents({}) == 1
    names = sorted(d["name"] for d in fresh.departments.find({"tenant_id": "default"}))
    assert names == sorted(["总经理办公室", "销售部", "销售一组", "销售二组", "财务部"])
    tenant = fresh.tenants.find_one({"_id": "default"})
    assert tenant["time_zone"] == "Asia/Shanghai"
    admin = fresh.users.find_one({"_id": first.admin_id})
    assert admin["role"] == "admin" and admin["password_hash"].startswith("$argon2id$")


def test_generated_admin_password_is_kept_in_a_private_file(settings: Any, fresh: Any) -> None:
    generated = dataclasses.replace(settings, admin_password=None)
    result = seed_directory(generated, fresh)
    path = generated.data_dir / "admin-password"
    assert result.password_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 12
    seed_directory(generated, fresh)
    assert path.read_text().strip() == password  # re-used, not regenerated
    from gateway.passwords import Passwords

    admin = fresh.users.find_one({"_id": result.admin_id})
    assert Passwords(1, 1024).verify(admin["password_hash"], password)


def test_template_install_retries_until_the_form_service_answers(settings: Any, fresh: Any, helpers: Any) -> None:
    calls: list[Any] = []

    class Flaky:
        name = "form"

        def unary(self, method: str, request: Any, principal: Any, timeout: float | None = None) -> Any:
            calls.append((method, request.template, principal))
            if len(calls) < 3:
                raise helpers.FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
            return form_pb2.InstallTemplateResponse(app_json="{}", created=True)

    result = seed(settings, fresh, Flaky(), template_timeout=10)  # type: ignore[arg-type]
    assert result.template_installed
    assert len(calls) == 3
    method, template, principal = calls[-1]
    assert (method, template) == ("InstallTemplate", "crm")
    assert principal.role == "admin" and principal.user_id == result.admin_id and principal.tenant_id == "default"


def test_template_install_gives_up_on_a_real_error(helpers: Any) -> None:
    class Broken:
        name = "form"

        def unary(self, method: str, request: Any, principal: Any, timeout: float | None = None) -> Any:
            raise helpers.FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, {"code": "validation_failed"})

    from crm_runtime.principal import Principal

    with pytest.raises(grpc.RpcError):
        install_template(Broken(), Principal("default"), timeout=5)  # type: ignore[arg-type]
