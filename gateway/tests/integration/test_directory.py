"""Users, departments and roles: admin-only changes, the tree, and the manager's data scope."""

from __future__ import annotations

from typing import Any

import pytest

from crm.record.v1 import record_pb2
from crm_runtime.principal import default_codec

pytestmark = pytest.mark.integration


def _departments(client: Any, helpers: Any, token: str) -> dict[str, dict[str, Any]]:
    items = client.get("/api/v1/departments", headers=helpers.bearer(token)).get_json()["items"]
    return {d["name"]: d for d in items}


def _user(client: Any, helpers: Any, token: str, **spec: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/users", json={"password": "Secret-123", **spec}, headers=helpers.bearer(token))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def test_seeded_department_tree(client: Any, helpers: Any, admin_token: str) -> None:
    body = client.get("/api/v1/departments", headers=helpers.bearer(admin_token)).get_json()
    names = {d["name"] for d in body["items"]}
    assert names == {"总经理办公室", "销售部", "销售一组", "销售二组", "财务部"}
    sales = next(n for n in body["tree"] if n["name"] == "销售部")
    assert sorted(c["name"] for c in sales["children"]) == ["销售一组", "销售二组"]
    group = next(d for d in body["items"] if d["name"] == "销售一组")
    assert group["parent_id"] == sales["id"]
    assert group["path"] == f"/{sales['id']}/{group['id']}/"


def test_sales_cannot_manage_users(client: Any, helpers: Any, admin_token: str) -> None:
    _user(client, helpers, admin_token, username="sales1", role="sales")
    token = helpers.login(client, "sales1", "Secret-123").get_json()["access_token"]
    resp = client.post(
        "/api/v1/users", json={"username": "x", "password": "Secret-123"}, headers=helpers.bearer(token, "en")
    )
    assert resp.status_code == 403
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["detail"] == "You are not allowed to do this"
    assert client.delete("/api/v1/departments/whatever", headers=helpers.bearer(token)).status_code == 403
    # reading is allowed
    assert client.get("/api/v1/users", headers=helpers.bearer(token)).status_code == 200


def test_user_crud_and_duplicate_username(client: Any, helpers: Any, admin_token: str) -> None:
    depts = _departments(client, helpers, admin_token)
    user = _user(client, helpers, admin_token, username="han.mei", name="韩梅", department_id=depts["财务部"]["id"])
    assert user["role"] == "sales" and user["active"] is True
    dup = client.post(
        "/api/v1/users", json={"username": "han.mei", "password": "Secret-123"}, headers=helpers.bearer(admin_token)
    )
    assert dup.status_code == 409
    assert dup.get_json()["errors"][0]["field"] == "username"
    patched = client.patch(
        f"/api/v1/users/{user['id']}", json={"role": "manager"}, headers=helpers.bearer(admin_token)
    ).get_json()
    assert patched["role"] == "manager"
    assert client.delete(f"/api/v1/users/{user['id']}", headers=helpers.bearer(admin_token)).status_code == 204
    assert client.get(f"/api/v1/users/{user['id']}", headers=helpers.bearer(admin_token)).status_code == 404


def test_user_with_unknown_department_is_422(client: Any, helpers: Any, admin_token: str) -> None:
    resp = client.post(
        "/api/v1/users",
        json={"username": "z", "password": "Secret-123", "department_id": "nope"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "department_id"


def test_manager_scope_is_the_department_subtree(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    depts = _departments(client, helpers, admin_token)
    _user(client, helpers, admin_token, username="boss", role="manager", department_id=depts["销售部"]["id"])
    token = helpers.login(client, "boss", "Secret-123").get_json()["access_token"]
    me = client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()
    expected = {depts[n]["id"] for n in ("销售部", "销售一组", "销售二组")}
    assert set(me["scope_departments"]) == expected

    record_service.handlers["GetRecord"] = lambda req, p: record_pb2.GetRecordResponse(record_json='{"id": "r1"}')
    client.get("/api/v1/records/r1", headers=helpers.bearer(token, "en"))
    _, principal = record_service.last("GetRecord")
    assert set(principal.scope_departments) == expected
    assert principal.role == "manager" and principal.tenant_id == "default"
    assert principal.locale == "en"
    assert principal.user_name == "boss"
    # what travels is a signed token; the scope comes back out of it
    metadata = dict(principal.to_metadata())
    verified = default_codec().verify(metadata["x-crm-principal"])
    assert verified is not None and set(verified.scope_departments) == expected


def test_scope_departments_are_the_users_subtree_whatever_the_role(client: Any, helpers: Any, admin_token: str) -> None:
    # the subtree is always computed; the policy (sales: scope own) decides whether it is used
    depts = _departments(client, helpers, admin_token)
    _user(client, helpers, admin_token, username="rep", role="sales", department_id=depts["销售一组"]["id"])
    token = helpers.login(client, "rep", "Secret-123").get_json()["access_token"]
    me = client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()
    assert me["scope_departments"] == [depts["销售一组"]["id"]]
    _user(client, helpers, admin_token, username="loner", role="sales")
    token = helpers.login(client, "loner", "Secret-123").get_json()["access_token"]
    assert client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()["scope_departments"] == []


def test_move_rewrites_paths_and_refuses_cycles(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    depts = _departments(client, helpers, admin_token)
    sales, group, finance = depts["销售部"], depts["销售一组"], depts["财务部"]
    cycle = client.post(f"/api/v1/departments/{sales['id']}/move", json={"parent_id": group["id"]}, headers=h)
    assert cycle.status_code == 409
    assert cycle.get_json()["code"] == "department_cycle"
    moved = client.post(f"/api/v1/departments/{sales['id']}/move", json={"parent_id": finance["id"]}, headers=h)
    assert moved.status_code == 200
    assert moved.get_json()["path"] == f"/{finance['id']}/{sales['id']}/"
    group_after = client.get(f"/api/v1/departments/{group['id']}", headers=h).get_json()
    assert group_after["path"] == f"/{finance['id']}/{sales['id']}/{group['id']}/"
    assert group_after["depth"] == 2
    back = client.patch(f"/api/v1/departments/{sales['id']}", json={"parent_id": None}, headers=h).get_json()
    assert back["parent_id"] is None and back["path"] == f"/{sales['id']}/"


def test_delete_department_only_when_empty(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    depts = _departments(client, helpers, admin_token)
    assert client.delete(f"/api/v1/departments/{depts['销售部']['id']}", headers=h).status_code == 409
    _user(client, helpers, admin_token, username="acc", department_id=depts["财务部"]["id"])
    assert client.delete(f"/api/v1/departments/{depts['财务部']['id']}", headers=h).status_code == 409
    new = client.post("/api/v1/departments", json={"name": "市场部"}, headers=h).get_json()
    assert client.delete(f"/api/v1/departments/{new['id']}", headers=h).status_code == 204
    assert client.get(f"/api/v1/departments/{new['id']}", headers=h).status_code == 404


def test_roles_describe_their_scope(client: Any, helpers: Any, admin_token: str) -> None:
    zh = client.get("/api/v1/roles", headers=helpers.bearer(admin_token)).get_json()["items"]
    assert [r["key"] for r in zh] == ["admin", "manager", "sales"]
    assert {r["key"]: r["data_scope"] for r in zh} == {"admin": "all", "manager": "department_tree", "sales": "own"}
    assert [r["tenant_admin"] for r in zh] == [True, False, False]
    assert zh[0]["permissions"]["default"]["scope"] == "all" and zh[0]["version"] == 1
    en = client.get("/api/v1/roles", headers=helpers.bearer(admin_token, "en")).get_json()["items"]
    assert en[2]["name"] == "Sales" and zh[2]["name"] == "销售"
