"""GET /permissions/check: a tenant admin asks whether user U may do A on form F (or record R), and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm.record.v1 import record_pb2

pytestmark = pytest.mark.integration

CHECK = "/api/v1/permissions/check"


def _rep(client: Any, helpers: Any, admin_token: str, **spec: Any) -> dict[str, Any]:
    resp = client.post(
        "/api/v1/users",
        json={"username": "rep", "password": "Secret-123", "role": "sales", **spec},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def test_form_level_answer_with_reasons_and_field_rules(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    role = {
        "key": "auditor",
        "permissions": {"forms": {"contract": {"actions": ["view"], "scope": "all", "fields": {"amount": "hidden"}}}},
    }
    assert client.post("/api/v1/roles", json=role, headers=h).status_code == 201
    rep = _rep(client, helpers, admin_token)
    denied = client.get(CHECK, query_string={"user_id": rep["id"], "form": "customer", "action": "delete"}, headers=h)
    assert denied.status_code == 200
    assert denied.get_json() == {
        "allowed": False,
        "reasons": [{"code": "action_not_granted", "action": "delete", "form": "customer"}],
        "hidden_fields": [],
        "readonly_fields": [],
    }
    granted = client.get(CHECK, query_string={"user_id": rep["id"], "form": "customer", "action": "create"}, headers=h)
    assert granted.get_json()["allowed"] is True
    assert granted.get_json()["reasons"][0]["code"] == "action_granted"
    auditor = client.post(
        "/api/v1/users", json={"username": "aud", "password": "Secret-123", "roles": ["auditor"]}, headers=h
    ).get_json()
    fields = client.get(CHECK, query_string={"user_id": auditor["id"], "form": "contract", "action": "view"}, headers=h)
    assert fields.get_json()["allowed"] is True and fields.get_json()["hidden_fields"] == ["amount"]
    no_export = client.get(
        CHECK, query_string={"user_id": auditor["id"], "form": "contract", "action": "export"}, headers=h
    )
    assert no_export.get_json()["allowed"] is False
    # a deactivated user may do nothing
    client.patch(f"/api/v1/users/{rep['id']}", json={"active": False}, headers=h)
    inactive = client.get(CHECK, query_string={"user_id": rep["id"], "form": "customer", "action": "create"}, headers=h)
    assert inactive.get_json()["allowed"] is False and inactive.get_json()["reasons"][0] == {"code": "user_inactive"}


def test_record_level_answer_comes_from_the_record_service_as_that_user(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    rep = _rep(client, helpers, admin_token, attributes={"region": "华北"})
    explanation = {
        "allowed": False,
        "reasons": [{"code": "action_granted"}, {"code": "out_of_scope", "scope": "own"}],
        "hidden_fields": ["amount"],
        "readonly_fields": [],
    }
    record_service.handlers["ExplainAccess"] = lambda req, p: record_pb2.ExplainAccessResponse(
        allowed=False, explanation_json=json.dumps(explanation)
    )
    resp = client.get(
        CHECK,
        query_string={"user_id": rep["id"], "action": "edit", "record_id": "r9"},
        headers=helpers.bearer(admin_token, "en"),
    )
    assert resp.status_code == 200
    assert resp.get_json() == explanation
    request, principal = record_service.last("ExplainAccess")
    assert (request.record_id, request.action, request.form_id) == ("r9", "edit", "")
    assert principal.user_id == rep["id"] and principal.roles == ("sales",) and principal.tenant_id == "default"
    assert principal.is_admin is False and principal.locale == "en"


def test_check_refuses_non_admins_anonymous_revoked_sessions_other_tenants_and_bad_input(
    client: Any, helpers: Any, admin_token: str, other_tenant: Any, app: Any, gw_store: Any
) -> None:
    h = helpers.bearer(admin_token)
    rep = _rep(client, helpers, admin_token)
    q = {"user_id": rep["id"], "form": "customer", "action": "view"}
    sales = helpers.login(client, "rep", "Secret-123").get_json()["access_token"]
    assert client.get(CHECK, query_string=q, headers=helpers.bearer(sales)).status_code == 403
    assert client.get(CHECK, query_string=q).status_code == 401
    # the other tenant's admin cannot ask about our user, nor we about theirs
    assert client.get(CHECK, query_string=q, headers=helpers.bearer(other_tenant["token"])).status_code == 404
    theirs = {**q, "user_id": other_tenant["admin_id"]}
    assert client.get(CHECK, query_string=theirs, headers=h).status_code == 404
    bad_action = client.get(CHECK, query_string={**q, "action": "fly"}, headers=h)
    assert bad_action.status_code == 422 and bad_action.get_json()["errors"][0]["field"] == "action"
    no_form = client.get(CHECK, query_string={"user_id": rep["id"], "action": "view"}, headers=h)
    assert no_form.status_code == 422 and no_form.get_json()["errors"][0]["field"] == "form"
    admin_id = gw_store.users.find_one({"username": "admin"})["_id"]
    app.extensions["crm_gateway"].tokens.revoke_user("default", admin_id)
    assert client.get(CHECK, query_string=q, headers=h).status_code == 401
