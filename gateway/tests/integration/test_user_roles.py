"""Users with several roles and attributes, the compiled policy, directory visibility, the start-up migration."""

from __future__ import annotations

from typing import Any

import pytest

from crm.record.v1 import record_pb2
from gateway.seed import seed_directory

pytestmark = pytest.mark.integration

REGIONAL = {
    "key": "regional",
    "name": "区域合同",
    "permissions": {
        "forms": {
            "contract": {
                "actions": ["view", "export"],
                "scope": "all",
                "condition": {"field": "region", "op": "eq", "value": {"$user": "attr.region"}},
                "fields": {"amount": "hidden"},
            }
        }
    },
}


def _create(client: Any, helpers: Any, token: str, **spec: Any) -> Any:
    return client.post("/api/v1/users", json={"password": "Secret-123", **spec}, headers=helpers.bearer(token))


def test_a_user_holds_several_roles_and_the_policy_unites_them(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    h = helpers.bearer(admin_token)
    assert client.post("/api/v1/roles", json=REGIONAL, headers=h).status_code == 201
    made = _create(
        client, helpers, admin_token, username="wang", roles=["sales", "regional"], attributes={"region": "华东"}
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert body["role"] == "sales" and body["roles"] == ["sales", "regional"]
    assert body["attributes"] == {"region": "华东"}
    token = helpers.login(client, "wang", "Secret-123").get_json()["access_token"]
    record_service.handlers["GetRecord"] = lambda req, p: record_pb2.GetRecordResponse(record_json='{"id": "r1"}')
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    _, principal = record_service.last("GetRecord")
    assert principal.roles == ("sales", "regional") and principal.role == "sales"
    contract = principal.policy.form("contract")
    # sales' default (own) united with the regional grant whose condition names the user's region
    assert {g.scope for g in contract.grants} == {"own", "all"}
    conditional = next(g for g in contract.grants if g.scope == "all")
    assert conditional.condition == {"field": "region", "op": "eq", "value": "华东"}
    assert "create" in contract.actions and "export" in contract.actions
    # sales sees amount (editable), so the union does not hide it
    assert "amount" not in contract.hidden
    assert principal.is_admin is False


def test_the_older_single_role_is_accepted_and_role_is_the_primary(client: Any, helpers: Any, admin_token: str) -> None:
    made = _create(client, helpers, admin_token, username="li", role="manager").get_json()
    assert made["roles"] == ["manager"] and made["role"] == "manager"
    both = _create(client, helpers, admin_token, username="zhao", role="manager", roles=["sales", "manager"]).get_json()
    assert both["roles"] == ["manager", "sales"] and both["role"] == "manager"
    plain = _create(client, helpers, admin_token, username="qian").get_json()
    assert plain["roles"] == ["sales"]
    patched = client.patch(
        f"/api/v1/users/{made['id']}", json={"role": "sales"}, headers=helpers.bearer(admin_token)
    ).get_json()
    assert patched["roles"] == ["sales"] and patched["role"] == "sales"


@pytest.mark.parametrize(
    ("spec", "field", "rule"),
    [
        ({"roles": ["sales", "astronaut"]}, "roles", "exists"),
        ({"role": "astronaut"}, "roles", "exists"),
        ({"roles": []}, "roles", "length"),
        ({"attributes": {"1bad": "x"}}, "attributes.1bad", "pattern"),
        ({"attributes": {"region": "x" * 300}}, "attributes.region", "type"),
    ],
)
def test_unknown_roles_and_bad_attributes_are_422(
    client: Any, helpers: Any, admin_token: str, spec: dict[str, Any], field: str, rule: str
) -> None:
    resp = _create(client, helpers, admin_token, username="bad", **spec)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    error = resp.get_json()["errors"][0]
    assert (error["field"], error["rule"]) == (field, rule)
    names = [
        u["username"] for u in client.get("/api/v1/users", headers=helpers.bearer(admin_token)).get_json()["items"]
    ]
    assert "bad" not in names


def test_directory_hides_contact_details_from_other_non_admins(
    client: Any, helpers: Any, admin_token: str, other_tenant: Any
) -> None:
    a = _create(client, helpers, admin_token, username="a", email="a@example.com", phone="138", role="sales").get_json()
    b = _create(client, helpers, admin_token, username="b", email="b@example.com", phone="139", role="sales").get_json()
    token = helpers.login(client, "a", "Secret-123").get_json()["access_token"]
    items = {u["username"]: u for u in client.get("/api/v1/users", headers=helpers.bearer(token)).get_json()["items"]}
    assert set(items["b"]) == {"id", "username", "name", "department_id", "active", "roles"}
    assert items["a"]["email"] == "a@example.com" and items["a"]["phone"] == "138"  # themself
    one = client.get(f"/api/v1/users/{b['id']}", headers=helpers.bearer(token)).get_json()
    assert "email" not in one and "phone" not in one and one["roles"] == ["sales"]
    admin_view = client.get(f"/api/v1/users/{b['id']}", headers=helpers.bearer(admin_token)).get_json()
    assert admin_view["email"] == "b@example.com"
    assert client.get("/api/v1/users").status_code == 401
    # another tenant's admin neither lists nor reads nor changes these users
    acme = helpers.bearer(other_tenant["token"])
    assert [u["username"] for u in client.get("/api/v1/users", headers=acme).get_json()["items"]] == ["boss"]
    assert client.get(f"/api/v1/users/{a['id']}", headers=acme).status_code == 404
    assert client.patch(f"/api/v1/users/{a['id']}", json={"name": "x"}, headers=acme).status_code == 404
    assert client.delete(f"/api/v1/users/{a['id']}", headers=acme).status_code == 404


def test_existing_installs_are_migrated_at_start_up(settings: Any, gw_store: Any) -> None:
    gw_store.users.insert_one({"_id": "old1", "tenant_id": "default", "username": "old", "role": "manager"})
    gw_store.roles.delete_one({"_id": "default:sales"})
    gw_store.roles.update_one({"_id": "default:manager"}, {"$set": {"name": "主管（已改）", "version": 3}})
    seed_directory(settings, gw_store)
    old = gw_store.users.find_one({"_id": "old1"})
    assert old["roles"] == ["manager"] and old["role_versions"] == {"manager": 3}
    assert gw_store.roles.find_one({"_id": "default:sales"})["permissions"]["default"]["scope"] == "own"
    assert gw_store.roles.find_one({"_id": "default:manager"})["name"] == "主管（已改）"  # an edit is kept
