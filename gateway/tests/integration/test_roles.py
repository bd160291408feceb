"""Roles as data: seeded built-ins, CRUD by tenant admins, validation of the permission document, guards."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

CONTRACT = {
    "key": "contract_clerk",
    "name": {"zh-CN": "合同专员", "en": "Contract clerk"},
    "description": "华东区合同",
    "permissions": {
        "default": {"actions": ["view"], "scope": "own"},
        "forms": {
            "contract": {
                "actions": ["view", "export"],
                "scope": "department_tree",
                "condition": {"field": "region", "op": "eq", "value": {"$user": "attr.region"}},
                "fields": {"amount": "hidden", "sign_date": "readonly"},
            }
        },
    },
}


def _sales_token(client: Any, helpers: Any, admin_token: str, username: str = "rep") -> str:
    resp = client.post(
        "/api/v1/users",
        json={"username": username, "password": "Secret-123", "role": "sales"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201
    return str(helpers.login(client, username, "Secret-123").get_json()["access_token"])


def test_role_crud_by_a_tenant_admin(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    created = client.post("/api/v1/roles", json=CONTRACT, headers=h)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["key"] == "contract_clerk" and body["name"] == "合同专员" and body["version"] == 1
    assert body["permissions"]["forms"]["contract"]["fields"] == {"amount": "hidden", "sign_date": "readonly"}
    assert body["tenant_admin"] is False and body["builtin"] is False
    en = client.get("/api/v1/roles/contract_clerk", headers=helpers.bearer(admin_token, "en")).get_json()
    assert en["name"] == "Contract clerk"
    keys = [r["key"] for r in client.get("/api/v1/roles", headers=h).get_json()["items"]]
    assert keys == ["admin", "manager", "sales", "contract_clerk"]
    patched = client.patch("/api/v1/roles/contract_clerk", json={"description": "全部区域"}, headers=h)
    assert patched.status_code == 200 and patched.get_json()["version"] == 2
    assert patched.get_json()["description"] == "全部区域"
    assert client.post("/api/v1/roles", json=CONTRACT, headers=h).status_code == 409
    assert client.delete("/api/v1/roles/contract_clerk", headers=h).status_code == 204
    assert client.get("/api/v1/roles/contract_clerk", headers=h).status_code == 404
    assert client.delete("/api/v1/roles/contract_clerk", headers=h).status_code == 404


def test_built_in_roles_are_editable_data(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    manager = client.get("/api/v1/roles/manager", headers=h).get_json()
    assert manager["builtin"] is True and manager["permissions"]["default"]["scope"] == "department_tree"
    perms = {"default": {"actions": ["view", "edit"], "scope": "department"}}
    edited = client.patch("/api/v1/roles/manager", json={"permissions": perms, "name": "主管"}, headers=h)
    assert edited.status_code == 200
    assert edited.get_json()["data_scope"] == "department" and edited.get_json()["name"] == "主管"


@pytest.mark.parametrize(
    ("permissions", "field", "rule"),
    [
        ({"default": {"actions": ["view"], "scope": "everything"}}, "permissions.default.scope", "option"),
        ({"default": {"actions": ["fly"]}}, "permissions.default.actions", "option"),
        ({"forms": {"contract": {"colour": "red"}}}, "permissions.forms.contract.colour", "unknown_member"),
        (
            {"forms": {"contract": {"fields": {"amount": "secret"}}}},
            "permissions.forms.contract.fields.amount",
            "option",
        ),
        ({"tenant_admin": "yes"}, "permissions.tenant_admin", "type"),
        ({"tenant_admins": True}, "permissions.tenant_admins", "unknown_member"),
        ("all", "permissions", "type"),
    ],
)
def test_a_malformed_permission_document_is_422_naming_member_and_rule(
    client: Any, helpers: Any, admin_token: str, permissions: Any, field: str, rule: str
) -> None:
    resp = client.post(
        "/api/v1/roles", json={"key": "bad", "permissions": permissions}, headers=helpers.bearer(admin_token, "en")
    )
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    error = resp.get_json()["errors"][0]
    assert (error["field"], error["rule"]) == (field, rule)
    assert field in error["message"]
    zh = client.post(
        "/api/v1/roles", json={"key": "bad", "permissions": permissions}, headers=helpers.bearer(admin_token)
    ).get_json()["errors"][0]["message"]
    assert zh != error["message"] and field in zh
    assert client.get("/api/v1/roles/bad", headers=helpers.bearer(admin_token)).status_code == 404


def test_role_key_and_texts_are_validated(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    bad_key = client.post("/api/v1/roles", json={"key": "Sales Team"}, headers=h)
    assert bad_key.status_code == 422 and bad_key.get_json()["errors"][0]["field"] == "key"
    bad_name = client.post("/api/v1/roles", json={"key": "x1", "name": {"fr": "non"}}, headers=h)
    assert bad_name.status_code == 422 and bad_name.get_json()["errors"][0]["field"] == "name"


def test_deleting_a_held_role_is_409(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    assert client.post("/api/v1/roles", json=CONTRACT, headers=h).status_code == 201
    made = client.post(
        "/api/v1/users",
        json={"username": "c1", "password": "Secret-123", "roles": ["sales", "contract_clerk"]},
        headers=h,
    )
    assert made.status_code == 201
    held = client.delete("/api/v1/roles/contract_clerk", headers=helpers.bearer(admin_token, "en"))
    assert held.status_code == 409 and held.get_json()["code"] == "role_in_use"
    assert client.delete("/api/v1/roles/sales", headers=h).status_code == 409
    client.patch(f"/api/v1/users/{made.get_json()['id']}", json={"roles": ["sales"]}, headers=h)
    assert client.delete("/api/v1/roles/contract_clerk", headers=h).status_code == 204


def test_the_last_tenant_admin_cannot_be_removed(client: Any, helpers: Any, admin_token: str, gw_store: Any) -> None:
    h = helpers.bearer(admin_token)
    admin_id = gw_store.users.find_one({"username": "admin"})["_id"]
    demote_role = client.patch("/api/v1/roles/admin", json={"permissions": {"tenant_admin": False}}, headers=h)
    assert demote_role.status_code == 409 and demote_role.get_json()["code"] == "last_tenant_admin"
    demote_user = client.patch(f"/api/v1/users/{admin_id}", json={"roles": ["sales"]}, headers=h)
    assert demote_user.status_code == 409
    deactivate = client.patch(f"/api/v1/users/{admin_id}", json={"active": False}, headers=h)
    assert deactivate.status_code == 409
    assert client.get("/api/v1/me", headers=h).status_code == 200  # nothing changed
    # with a second admin (through another role) the first may be demoted
    boss = {"key": "boss", "permissions": {"tenant_admin": True, "default": {"actions": ["view"], "scope": "all"}}}
    assert client.post("/api/v1/roles", json=boss, headers=h).status_code == 201
    second = client.post(
        "/api/v1/users", json={"username": "second", "password": "Secret-123", "roles": ["boss"]}, headers=h
    ).get_json()
    assert client.patch(f"/api/v1/users/{admin_id}", json={"roles": ["sales"]}, headers=h).status_code == 200
    token = helpers.login(client, "second", "Secret-123").get_json()["access_token"]
    # now `boss` is the only admin role and `second` its only holder
    not_boss = client.patch("/api/v1/roles/boss", json={"permissions": {}}, headers=helpers.bearer(token))
    assert not_boss.status_code == 409
    assert client.delete(f"/api/v1/users/{second['id']}", headers=helpers.bearer(token)).status_code == 409  # self


def test_role_endpoints_refuse_non_admins_anonymous_revoked_and_other_tenants(
    client: Any, helpers: Any, admin_token: str, other_tenant: Any, app: Any
) -> None:
    h = helpers.bearer(admin_token)
    assert client.post("/api/v1/roles", json=CONTRACT, headers=h).status_code == 201
    sales = helpers.bearer(_sales_token(client, helpers, admin_token))
    listed = client.get("/api/v1/roles", headers=sales)
    assert listed.status_code == 200 and "contract_clerk" in [r["key"] for r in listed.get_json()["items"]]
    assert client.post("/api/v1/roles", json={**CONTRACT, "key": "x2"}, headers=sales).status_code == 403
    assert client.get("/api/v1/roles/contract_clerk", headers=sales).status_code == 403
    assert client.patch("/api/v1/roles/contract_clerk", json={"name": "x"}, headers=sales).status_code == 403
    assert client.delete("/api/v1/roles/contract_clerk", headers=sales).status_code == 403
    for method, path in [("get", "/api/v1/roles"), ("post", "/api/v1/roles"), ("delete", "/api/v1/roles/sales")]:
        assert getattr(client, method)(path).status_code == 401
    # another tenant's admin sees and changes only its own tenant's roles
    acme = helpers.bearer(other_tenant["token"])
    theirs = [r["key"] for r in client.get("/api/v1/roles", headers=acme).get_json()["items"]]
    assert theirs == ["admin", "manager", "sales"]
    assert client.get("/api/v1/roles/contract_clerk", headers=acme).status_code == 404
    assert client.patch("/api/v1/roles/contract_clerk", json={"name": "x"}, headers=acme).status_code == 404
    assert client.delete("/api/v1/roles/contract_clerk", headers=acme).status_code == 404
    assert client.patch("/api/v1/roles/sales", json={"name": "Acme sales"}, headers=acme).status_code == 200
    assert client.get("/api/v1/roles/sales", headers=h).get_json()["name"] == "销售"
    # a revoked session
    app.extensions["crm_gateway"].tokens.revoke_user(other_tenant["tenant_id"], other_tenant["admin_id"])
    assert client.get("/api/v1/roles", headers=acme).status_code == 401
