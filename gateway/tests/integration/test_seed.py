"""The first-start seed: idempotent directory data, the admin password file, template install with retries,
and the CRM template's organisation (departments, roles, users), made once."""

from __future__ import annotations

import dataclasses
import stat
import uuid
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from crm_runtime.access import Grant, can
from gateway.departments import Departments
from gateway.passwords import Passwords
from gateway.roles import PolicyCache, Roles
from gateway.seed import ORGANISATION_USERS, install_template, seed, seed_directory
from gateway.store import GatewayStore
from gateway.tokens import TokenService
from gateway.users import Users

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


# ------------------------------------------------------------------------------------------ the organisation


class _Form:
    """A form service whose InstallTemplate answers at once."""

    name = "form"

    def unary(self, method: str, request: Any, principal: Any, timeout: float | None = None) -> Any:
        return form_pb2.InstallTemplateResponse(app_json="{}", created=True)


def _people(store: Any) -> dict[str, dict[str, Any]]:
    return {u["username"]: u for u in store.users.find({"tenant_id": "default"})}


def _department_names(store: Any) -> dict[str, str]:
    return {d["_id"]: d["name"] for d in store.departments.find({"tenant_id": "default"})}


def _by_id(people: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {u["_id"]: name for name, u in people.items()}


def _users(settings: Any, store: Any) -> Users:
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    return Users(store, Departments(store), passwords, TokenService(store, settings.jwt_secret), Roles(store))


def test_the_organisation_of_the_template_exists_with_its_managers(settings: Any, fresh: Any) -> None:
    result = seed(settings, fresh, _Form())  # type: ignore[arg-type]
    assert result.organisation is not None
    assert sorted(result.organisation.users) == sorted(p.username for p in ORGANISATION_USERS)
    depts = _department_names(fresh)
    assert sorted(depts.values()) == sorted(["总经理办公室", "销售部", "销售一组", "销售二组", "财务部", "客服部"])
    service = fresh.departments.find_one({"tenant_id": "default", "name": "客服部"})
    assert service["parent_id"] == "" and service["sort"] == 3  # a root, after 财务部

    people = _people(fresh)
    assert set(people) == {"admin", "gm", "sales_manager", "sales1", "sales2", "cfo", "support"}
    shape = {
        name: (depts.get(u["department_id"]), u["roles"], _by_id(people).get(u["manager_id"]))
        for name, u in people.items()
        if name != "admin"
    }
    assert shape == {
        "gm": ("总经理办公室", ["manager"], None),
        "sales_manager": ("销售部", ["manager", "sales_director"], "gm"),
        "sales1": ("销售一组", ["sales"], "sales_manager"),
        "sales2": ("销售一组", ["sales"], "sales_manager"),
        "cfo": ("财务部", ["manager", "finance_director"], "gm"),
        "support": ("客服部", ["sales", "customer_service"], None),
    }
    assert (people["gm"]["name"], people["cfo"]["name"], people["support"]["name"]) == ("总经理", "财务总监", "客服")
    sales_group = next(k for k, v in depts.items() if v == "销售一组")
    sales_dept = next(k for k, v in depts.items() if v == "销售部")
    assert fresh.departments.find_one({"_id": sales_group})["parent_id"] == sales_dept

    # real, active users (owners, assignees, approvers) whose passwords nobody knows
    for name in shape:
        user = people[name]
        assert user["active"] is True and user["password_hash"].startswith("$argon2id$")
        assert not Passwords(1, 1024).verify(user["password_hash"], settings.admin_password)
    assert len({people[n]["password_hash"] for n in shape}) == len(shape)
    assert not any(settings.data_dir.iterdir())  # nothing written down (the admin's comes from the environment)
    # through the Users API: the record service's directory hears of each of them
    created = [e["event"] for e in fresh.outbox.find({}) if e["event"]["type"] == "user.created"]
    assert sorted(e["data"]["username"] for e in created) == sorted([*shape, "admin"])


def test_the_template_roles_are_ordinary_roles_with_their_rights(settings: Any, fresh: Any) -> None:
    seed(settings, fresh, _Form())  # type: ignore[arg-type]
    roles = Roles(fresh)
    names = {r["key"]: r["name"]["zh-CN"] for r in roles.list("default")}
    assert names == {
        "admin": "管理员",
        "manager": "经理",
        "sales": "销售",
        "sales_director": "销售总监",
        "finance_director": "财务总监",
        "customer_service": "客服",
    }
    people = _people(fresh)
    cache = PolicyCache(roles)
    cfo, support = cache.policy(people["cfo"]), cache.policy(people["support"])
    # finance: every contract, quotation, payment and payment plan; approves contracts and quotations
    for form in ("contract", "quotation", "payment", "payment_plan"):
        assert can(cfo, form, "view") and Grant("all") in cfo.form(form).grants, form
    assert can(cfo, "contract", "approve") and can(cfo, "quotation", "approve") and can(cfo, "payment", "create")
    assert not cfo.tenant_admin
    # customer service: every ticket, customers to look up; no approvals
    assert can(support, "ticket", "assign") and Grant("all") in support.form("ticket").grants
    assert Grant("all") in support.form("customer").grants
    assert not can(support, "contract", "approve") and not support.tenant_admin
    director = roles.get("default", "sales_director")["permissions"]
    assert "approve" in director["forms"]["quotation"]["actions"]
    assert director["forms"]["lead"]["scope"] == "all"


def test_a_second_seed_creates_nothing(settings: Any, fresh: Any) -> None:
    seed(settings, fresh, _Form())  # type: ignore[arg-type]
    counts = [fresh.users.count_documents({}), fresh.departments.count_documents({}), fresh.roles.count_documents({})]
    outbox = fresh.outbox.count_documents({})
    hashes = {u["username"]: u["password_hash"] for u in fresh.users.find({})}
    again = seed(settings, fresh, _Form())  # type: ignore[arg-type]
    assert again.organisation is not None
    assert (again.organisation.departments, again.organisation.roles, again.organisation.users) == ({}, [], {})
    assert (
        [
            fresh.users.count_documents({}),
            fresh.departments.count_documents({}),
            fresh.roles.count_documents({}),
        ]
        == counts
        == [7, 6, 6]
    )
    assert fresh.outbox.count_documents({}) == outbox
    assert {u["username"]: u["password_hash"] for u in fresh.users.find({})} == hashes


def test_what_an_admin_changed_since_stays_as_it_is(settings: Any, fresh: Any) -> None:
    seed(settings, fresh, _Form())  # type: ignore[arg-type]
    users = _users(settings, fresh)
    people = _people(fresh)
    finance = next(d["_id"] for d in fresh.departments.find({"tenant_id": "default", "name": "财务部"}))
    users.update("default", people["sales1"]["_id"], {"name": "王小明", "department_id": finance, "manager_id": ""})
    users.delete("default", people["sales2"]["_id"], people["admin"]["_id"])
    users.update("default", people["sales_manager"]["_id"], {"roles": ["manager"]})
    Roles(fresh).delete("default", "sales_director")  # nobody holds it any more
    service = fresh.departments.find_one({"tenant_id": "default", "name": "客服部"})
    Departments(fresh).update("default", service["_id"], name="客户成功部")
    before = _people(fresh)["sales1"]

    seed(settings, fresh, _Form())  # type: ignore[arg-type]
    after = _people(fresh)
    assert "sales2" not in after  # not made again
    assert after["sales1"] == before  # not changed back
    assert Roles(fresh).find("default", "sales_director") is None
    names = sorted(_department_names(fresh).values())
    assert "客服部" not in names and "客户成功部" in names


def test_a_user_or_role_an_admin_made_first_is_taken_as_it_is(settings: Any, fresh: Any) -> None:
    seed_directory(settings, fresh)
    users = _users(settings, fresh)
    mine = users.create(
        "default", {"username": "gm", "name": "张总", "password": "Zhang-Pass-2024", "roles": ["admin"]}
    )
    Roles(fresh).create("default", {"key": "customer_service", "name": "售后", "permissions": {}})

    result = seed(settings, fresh, _Form())  # type: ignore[arg-type]
    assert result.organisation is not None and "gm" not in result.organisation.users
    people = _people(fresh)
    assert people["gm"] == fresh.users.find_one({"_id": mine["_id"]})  # untouched: name, role, password
    assert people["gm"]["name"] == "张总" and people["gm"]["roles"] == ["admin"]
    assert people["sales_manager"]["manager_id"] == mine["_id"]  # 总经理 is whoever holds the username
    assert Roles(fresh).get("default", "customer_service")["name"] == "售后"
    assert people["support"]["roles"] == ["sales", "customer_service"]


def test_the_organisation_is_made_even_when_the_form_service_refuses(settings: Any, fresh: Any, helpers: Any) -> None:
    class Broken:
        name = "form"

        def unary(self, method: str, request: Any, principal: Any, timeout: float | None = None) -> Any:
            raise helpers.FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, {"code": "conflict"})

    with pytest.raises(grpc.RpcError):
        seed(settings, fresh, Broken(), template_timeout=5)  # type: ignore[arg-type]
    assert {"gm", "sales_manager", "sales1", "sales2", "cfo", "support"} <= set(_people(fresh))
