"""Revocable sessions: every request re-checks the session and the user; the principal is the current user's."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from crm.record.v1 import record_pb2

pytestmark = pytest.mark.integration


def _user(client: Any, helpers: Any, token: str, **spec: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/users", json={"password": "Secret-123", **spec}, headers=helpers.bearer(token))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def _token(client: Any, helpers: Any, username: str) -> dict[str, Any]:
    resp = helpers.login(client, username, "Secret-123")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def _me(client: Any, helpers: Any, token: str) -> Any:
    return client.get("/api/v1/me", headers=helpers.bearer(token))


def test_logout_ends_the_access_token_on_the_next_request(client: Any, helpers: Any) -> None:
    body = helpers.login(client, "admin", helpers.ADMIN_PASSWORD).get_json()
    assert _me(client, helpers, body["access_token"]).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=helpers.bearer(body["access_token"])).status_code == 204
    after = _me(client, helpers, body["access_token"])
    assert after.status_code == 401
    assert after.get_json()["code"] == "unauthenticated"


def test_a_demoted_admins_old_token_no_longer_creates_users(client: Any, helpers: Any, admin_token: str) -> None:
    second = _user(client, helpers, admin_token, username="deputy", roles=["admin"])
    deputy = _token(client, helpers, "deputy")
    made = client.post(
        "/api/v1/users",
        json={"username": "u1", "password": "Secret-123"},
        headers=helpers.bearer(deputy["access_token"]),
    )
    assert made.status_code == 201
    demoted = client.patch(
        f"/api/v1/users/{second['id']}", json={"roles": ["sales"]}, headers=helpers.bearer(admin_token)
    )
    assert demoted.status_code == 200 and demoted.get_json()["roles"] == ["sales"]
    old = client.post(
        "/api/v1/users",
        json={"username": "u2", "password": "Secret-123"},
        headers=helpers.bearer(deputy["access_token"]),
    )
    assert old.status_code == 401
    # a role change keeps the session: the refreshed token carries the new roles, and is refused as a non-admin
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": deputy["refresh_token"]})
    assert fresh.status_code == 200
    again = client.post(
        "/api/v1/users",
        json={"username": "u3", "password": "Secret-123"},
        headers=helpers.bearer(fresh.get_json()["access_token"]),
    )
    assert again.status_code == 403


@pytest.mark.parametrize(
    "change",
    [{"active": False}, {"password": "Another-Secret-9"}, {"roles": ["manager"]}, {"role": "manager"}],
    ids=["deactivated", "password", "roles", "role"],
)
def test_user_changes_end_existing_access_tokens(
    client: Any, helpers: Any, admin_token: str, change: dict[str, Any]
) -> None:
    user = _user(client, helpers, admin_token, username="rep", role="sales")
    token = _token(client, helpers, "rep")["access_token"]
    assert _me(client, helpers, token).status_code == 200
    assert (
        client.patch(f"/api/v1/users/{user['id']}", json=change, headers=helpers.bearer(admin_token)).status_code == 200
    )
    assert _me(client, helpers, token).status_code == 401


def test_deleted_user_and_revoked_session_are_refused(client: Any, helpers: Any, admin_token: str, app: Any) -> None:
    gone = _user(client, helpers, admin_token, username="gone")
    gone_token = _token(client, helpers, "gone")["access_token"]
    assert client.delete(f"/api/v1/users/{gone['id']}", headers=helpers.bearer(admin_token)).status_code == 204
    assert _me(client, helpers, gone_token).status_code == 401

    kept = _user(client, helpers, admin_token, username="kept")
    kept_token = _token(client, helpers, "kept")
    gw = app.extensions["crm_gateway"]
    sid = jwt.decode(kept_token["access_token"], options={"verify_signature": False})["sid"]
    gw.tokens.revoke_session(sid)
    assert _me(client, helpers, kept_token["access_token"]).status_code == 401
    # a department change neither bumps auth_version nor ends sessions
    other = _token(client, helpers, "kept")["access_token"]
    depts = client.get("/api/v1/departments", headers=helpers.bearer(admin_token)).get_json()["items"]
    client.patch(
        f"/api/v1/users/{kept['id']}", json={"department_id": depts[0]["id"]}, headers=helpers.bearer(admin_token)
    )
    assert _me(client, helpers, other).get_json()["department_id"] == depts[0]["id"]


def test_claims_are_not_believed(client: Any, helpers: Any, settings: Any, admin_token: str, other_tenant: Any) -> None:
    claims = jwt.decode(admin_token, settings.jwt_secret, algorithms=["HS256"], issuer="crm-gateway")
    assert claims["av"] == 0
    # the same user and session claimed for another tenant
    forged = jwt.encode({**claims, "tenant": other_tenant["tenant_id"]}, settings.jwt_secret, algorithm="HS256")
    assert _me(client, helpers, forged).status_code == 401
    # an older auth_version, and a token without one
    stale = jwt.encode({**claims, "av": -1}, settings.jwt_secret, algorithm="HS256")
    assert _me(client, helpers, stale).status_code == 401
    bare = jwt.encode({k: v for k, v in claims.items() if k != "av"}, settings.jwt_secret, algorithm="HS256")
    assert _me(client, helpers, bare).status_code == 401
    # a sessionless token: an unknown sid
    ghost = jwt.encode({**claims, "sid": "nope"}, settings.jwt_secret, algorithm="HS256")
    assert _me(client, helpers, ghost).status_code == 401
    # roles claimed in the token grant nothing: the user document decides
    sales = _user(client, helpers, admin_token, username="rep2", role="sales")
    rep = jwt.decode(
        _token(client, helpers, "rep2")["access_token"], settings.jwt_secret, algorithms=["HS256"], issuer="crm-gateway"
    )
    assert rep["sub"] == sales["id"]
    lifted = jwt.encode({**rep, "role": "admin"}, settings.jwt_secret, algorithm="HS256")
    denied = client.post(
        "/api/v1/users", json={"username": "x", "password": "Secret-123"}, headers=helpers.bearer(lifted)
    )
    assert denied.status_code == 403


def test_principal_comes_from_the_current_user_document(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    record_service.handlers["GetRecord"] = lambda req, p: record_pb2.GetRecordResponse(record_json='{"id": "r1"}')
    depts = {
        d["name"]: d for d in client.get("/api/v1/departments", headers=helpers.bearer(admin_token)).get_json()["items"]
    }
    user = _user(
        client, helpers, admin_token, username="mover", name="张三", role="manager", department_id=depts["财务部"]["id"]
    )
    token = _token(client, helpers, "mover")["access_token"]
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    _, first = record_service.last("GetRecord")
    assert first.department_id == depts["财务部"]["id"] and first.user_name == "张三"
    assert first.roles == ("manager",) and first.session_id
    client.patch(
        f"/api/v1/users/{user['id']}",
        json={"department_id": depts["销售部"]["id"], "name": "张三丰"},
        headers=helpers.bearer(admin_token),
    )
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    _, moved = record_service.last("GetRecord")
    assert moved.department_id == depts["销售部"]["id"] and moved.user_name == "张三丰"
    assert set(moved.scope_departments) == {depts[n]["id"] for n in ("销售部", "销售一组", "销售二组")}
    assert moved.policy.form("customer").grants[0].scope == "department_tree"


def test_a_role_edit_reaches_holders_on_their_next_request_and_the_policy_is_cached(
    client: Any, helpers: Any, admin_token: str, record_service: Any, app: Any
) -> None:
    record_service.handlers["GetRecord"] = lambda req, p: record_pb2.GetRecordResponse(record_json='{"id": "r1"}')
    _user(client, helpers, admin_token, username="rep", role="sales")
    token = _token(client, helpers, "rep")["access_token"]
    policies = app.extensions["crm_gateway"].policies
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    misses = policies.misses
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    assert policies.misses == misses  # nothing changed: no recompilation
    _, before = record_service.last("GetRecord")
    assert "create" in before.policy.form("customer").actions
    edited = client.patch(
        "/api/v1/roles/sales",
        json={"permissions": {"default": {"actions": ["view"], "scope": "own"}}},
        headers=helpers.bearer(admin_token),
    )
    assert edited.status_code == 200 and edited.get_json()["version"] == 2
    client.get("/api/v1/records/r1", headers=helpers.bearer(token))
    _, after = record_service.last("GetRecord")
    assert after.policy.form("customer").actions == frozenset({"view"})
    assert policies.misses == misses + 1


def test_a_new_sub_department_joins_the_scope_on_the_next_request(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    depts = {d["name"]: d for d in client.get("/api/v1/departments", headers=h).get_json()["items"]}
    _user(client, helpers, admin_token, username="lead", role="manager", department_id=depts["财务部"]["id"])
    token = _token(client, helpers, "lead")["access_token"]
    assert _me(client, helpers, token).get_json()["scope_departments"] == [depts["财务部"]["id"]]
    child = client.post("/api/v1/departments", json={"name": "会计组", "parent_id": depts["财务部"]["id"]}, headers=h)
    scope = _me(client, helpers, token).get_json()["scope_departments"]
    assert sorted(scope) == sorted([depts["财务部"]["id"], child.get_json()["id"]])
    client.post(f"/api/v1/departments/{child.get_json()['id']}/move", json={"parent_id": None}, headers=h)
    assert _me(client, helpers, token).get_json()["scope_departments"] == [depts["财务部"]["id"]]
