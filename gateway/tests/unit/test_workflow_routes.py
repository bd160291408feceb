"""The workflow routes over a fake WorkflowService: requests, envelopes, 422s, 401s and errors."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.workflow.v1 import workflow_pb2

AUTOMATION = {
    "name": {"zh-CN": "新客户跟进", "en": "Follow up a new customer"},
    "form": "customer",
    "enabled": True,
    "trigger": {"type": "record_created"},
    "condition": {"and": [{"field": "source", "op": "eq", "value": "官网"}]},
    "actions": [
        {
            "type": "create_record",
            "form": "task",
            "values": {"title": "【新客户跟进】{customer_name}", "assignee": "{owner_id}", "due_at": "{now+3d}"},
        }
    ],
}
STORED = {"id": "a1", **AUTOMATION, "version": 1}

# (method, path, JSON body or None) of every workflow operation, each valid as sent
OPERATIONS = [
    ("GET", "/api/v1/automations", None),
    ("POST", "/api/v1/automations", AUTOMATION),
    ("GET", "/api/v1/automations/a1", None),
    ("PATCH", "/api/v1/automations/a1", {"enabled": False, "expected_version": 1}),
    ("DELETE", "/api/v1/automations/a1?expected_version=1", None),
    ("GET", "/api/v1/automations/a1/runs", None),
    ("GET", "/api/v1/records/r1/automation-runs", None),
    ("GET", "/api/v1/workflow/dead-letters", None),
    ("POST", "/api/v1/workflow/dead-letters/d1/replay", None),
    ("GET", "/api/v1/notifications", None),
    ("POST", "/api/v1/notifications/read", {"all": True}),
]


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == status and {"type", "title", "detail", "code", "errors"} <= set(body)
    return body


def _fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem["errors"]}


@pytest.fixture
def wf(workflow_service: Any) -> Any:
    """The fake WorkflowService, answering every RPC the routes call."""
    text = json.dumps(STORED, ensure_ascii=False)
    workflow_service.handlers.update(
        {
            "ListAutomations": lambda req, p: workflow_pb2.ListAutomationsResponse(automations_json=[text]),
            "CreateAutomation": lambda req, p: workflow_pb2.CreateAutomationResponse(
                automation_json=json.dumps({"id": "a1", **json.loads(req.automation_json), "version": 1})
            ),
            "GetAutomation": lambda req, p: workflow_pb2.GetAutomationResponse(automation_json=text),
            "UpdateAutomation": lambda req, p: workflow_pb2.UpdateAutomationResponse(
                automation_json=json.dumps({**STORED, **json.loads(req.automation_json), "version": 2})
            ),
            "DeleteAutomation": lambda req, p: workflow_pb2.DeleteAutomationResponse(),
            "ListRuns": lambda req, p: workflow_pb2.ListRunsResponse(
                runs_json=[json.dumps({"id": "run1", "automation_id": "a1", "status": "succeeded"})], next_cursor="c2"
            ),
            "ListDeadLetters": lambda req, p: workflow_pb2.ListDeadLettersResponse(
                dead_letters_json=[json.dumps({"id": "d1", "error": "timeout"})]
            ),
            "ReplayDeadLetter": lambda req, p: workflow_pb2.ReplayDeadLetterResponse(
                dead_letter_json=json.dumps({"id": "d1", "replayed": True})
            ),
            "ListNotifications": lambda req, p: workflow_pb2.ListNotificationsResponse(
                notifications_json=[json.dumps({"id": "n1", "title": "新任务", "read": False})],
                next_cursor="n-next",
                unread=3,
            ),
            "MarkNotificationsRead": lambda req, p: workflow_pb2.MarkNotificationsReadResponse(
                marked=len(req.notification_ids) or 3, unread=0
            ),
        }
    )
    return workflow_service


@pytest.fixture
def auth(helpers: Any) -> dict[str, str]:
    """Headers of the signed-in tenant administrator of unit_app."""
    return dict(helpers.bearer(helpers.UNIT_ADMIN_TOKEN))


# --- happy paths: what reaches the service and what comes back


def test_list_automations_of_a_form_and_of_the_tenant(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/automations?form_id=customer", headers=auth)
    assert resp.status_code == 200
    assert resp.get_json() == {"items": [STORED]}
    req, principal = wf.last("ListAutomations")
    assert req.form_id == "customer"
    assert (principal.tenant_id, principal.user_id) == ("default", "u-admin")
    for every in ("/api/v1/automations", "/api/v1/automations?form_id="):
        assert unit_client.get(every, headers=auth).status_code == 200
        assert wf.last("ListAutomations")[0].form_id == ""


def test_create_automation_sends_the_object_as_json_and_answers_201(
    unit_client: Any, wf: Any, auth: dict[str, str]
) -> None:
    resp = unit_client.post("/api/v1/automations", json=AUTOMATION, headers=auth)
    assert resp.status_code == 201
    assert resp.get_json() == STORED
    req, _ = wf.last("CreateAutomation")
    assert json.loads(req.automation_json) == AUTOMATION
    assert "官网" in req.automation_json  # UTF-8 text, not \\u escapes


def test_create_automation_with_a_plain_name_and_no_condition(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    body = {"name": "跟进", "form": "f1", "trigger": {"type": "record_updated"}, "condition": None, "actions": []}
    assert unit_client.post("/api/v1/automations", json=body, headers=auth).status_code == 201
    assert json.loads(wf.last("CreateAutomation")[0].automation_json) == body


def test_get_automation(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/automations/a1", headers=auth)
    assert resp.status_code == 200 and resp.get_json() == STORED
    assert wf.last("GetAutomation")[0].automation_id == "a1"


def test_update_automation_sends_the_patch_and_the_version_apart(
    unit_client: Any, wf: Any, auth: dict[str, str]
) -> None:
    patch = {"enabled": False, "condition": None, "expected_version": 1}
    resp = unit_client.patch("/api/v1/automations/a1", json=patch, headers=auth)
    assert resp.status_code == 200
    assert resp.get_json()["enabled"] is False and resp.get_json()["version"] == 2
    req, _ = wf.last("UpdateAutomation")
    assert req.automation_id == "a1" and req.expected_version == 1
    assert json.loads(req.automation_json) == {"enabled": False, "condition": None}


def test_delete_automation_is_204_without_a_body(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.delete("/api/v1/automations/a1?expected_version=4", headers=auth)
    assert resp.status_code == 204 and resp.get_data() == b""
    req, _ = wf.last("DeleteAutomation")
    assert (req.automation_id, req.expected_version) == ("a1", 4)


def test_runs_of_an_automation_and_of_a_record(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/automations/a1/runs?cursor=c1&page_size=50", headers=auth)
    assert resp.status_code == 200
    assert resp.get_json() == {
        "items": [{"id": "run1", "automation_id": "a1", "status": "succeeded"}],
        "next_cursor": "c2",
    }
    req, _ = wf.last("ListRuns")
    assert (req.automation_id, req.record_id, req.cursor, req.page_size) == ("a1", "", "c1", 50)
    assert unit_client.get("/api/v1/records/r1/automation-runs", headers=auth).status_code == 200
    req, _ = wf.last("ListRuns")
    assert (req.automation_id, req.record_id, req.cursor, req.page_size) == ("", "r1", "", 0)


def test_dead_letters_list_and_replay(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/workflow/dead-letters", headers=auth)
    # the last page: no next_cursor, as every list of the gateway
    assert resp.get_json() == {"items": [{"id": "d1", "error": "timeout"}], "next_cursor": None}
    assert wf.last("ListDeadLetters")[0].include_replayed is False
    unit_client.get("/api/v1/workflow/dead-letters?include_replayed=true&page_size=100&cursor=x", headers=auth)
    req, _ = wf.last("ListDeadLetters")
    assert (req.include_replayed, req.page_size, req.cursor) == (True, 100, "x")
    replay = unit_client.post("/api/v1/workflow/dead-letters/d1/replay", headers=auth)
    assert replay.status_code == 200 and replay.get_json() == {"id": "d1", "replayed": True}
    assert wf.last("ReplayDeadLetter")[0].dead_letter_id == "d1"


def test_notifications_list_with_the_unread_count(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/notifications?unread_only=true&page_size=10", headers=auth)
    assert resp.get_json() == {
        "items": [{"id": "n1", "title": "新任务", "read": False}],
        "next_cursor": "n-next",
        "unread": 3,
    }
    req, _ = wf.last("ListNotifications")
    assert (req.unread_only, req.page_size, req.cursor) == (True, 10, "")
    unit_client.get("/api/v1/notifications", headers=auth)
    assert wf.last("ListNotifications")[0].unread_only is False


def test_mark_notifications_read_by_ids_or_all(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.post("/api/v1/notifications/read", json={"ids": ["n1", "n2"]}, headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {"marked": 2, "unread": 0}
    req, _ = wf.last("MarkNotificationsRead")
    assert list(req.notification_ids) == ["n1", "n2"] and req.all is False
    resp = unit_client.post("/api/v1/notifications/read", json={"all": True}, headers=auth)
    assert resp.get_json() == {"marked": 3, "unread": 0}
    req, _ = wf.last("MarkNotificationsRead")
    assert list(req.notification_ids) == [] and req.all is True


def test_the_call_carries_the_callers_principal_and_language(unit_client: Any, wf: Any, helpers: Any) -> None:
    headers = helpers.bearer(helpers.UNIT_SALES_TOKEN, "en")
    assert unit_client.get("/api/v1/notifications", headers=headers).status_code == 200
    _, principal = wf.last("ListNotifications")
    assert (principal.user_id, principal.role, principal.locale) == ("u-sales", "sales", "en")


# --- malformed input: 422 naming the field, the service never called


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"actions": {"type": "create_record"}}, "actions"),  # not a list
        ({"actions": ["create_record"]}, "actions.0"),  # not a list of objects
        ({"trigger": "record_created"}, "trigger"),
        ({"trigger": None}, "trigger"),
        ({"condition": "source = 官网"}, "condition"),
        ({"enabled": "yes please"}, "enabled"),
        ({"name": ""}, "name"),
        ({"name": {"fr": "Suivi"}}, "name"),
        ({"name": {"zh-CN": 3}}, "name"),
        ({"name": ["跟进"]}, "name"),
        ({"form": ""}, "form"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_automation_refuses_a_malformed_body(
    unit_client: Any, wf: Any, auth: dict[str, str], change: dict[str, Any], field: str
) -> None:
    body = _problem(unit_client.post("/api/v1/automations", json={**AUTOMATION, **change}, headers=auth), 422)
    assert field in _fields(body)
    assert not wf.calls


@pytest.mark.parametrize("missing", ["name", "form", "trigger", "actions"])
def test_create_automation_needs_each_required_member(
    unit_client: Any, wf: Any, auth: dict[str, str], missing: str
) -> None:
    body = {k: v for k, v in AUTOMATION.items() if k != missing}
    problem = _problem(unit_client.post("/api/v1/automations", json=body, headers=auth), 422)
    assert {"field": missing, "rule": "required"} in [{k: e[k] for k in ("field", "rule")} for e in problem["errors"]]
    assert not wf.calls


def test_a_body_that_is_not_an_object_is_422(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    assert _problem(unit_client.post("/api/v1/automations", json=[AUTOMATION], headers=auth), 422)["code"] == (
        "not_an_object"
    )
    bad_json = unit_client.post("/api/v1/automations", data="{nope", content_type="application/json", headers=auth)
    _problem(bad_json, 400)
    assert not wf.calls


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"enabled": False}, "expected_version"),  # required
        ({"expected_version": 0}, "expected_version"),
        ({"expected_version": "one"}, "expected_version"),
        ({"expected_version": 2**63}, "expected_version"),
        ({"expected_version": 1, "form": "lead"}, "form"),  # an automation's form does not change
        ({"expected_version": 1, "actions": "none"}, "actions"),
    ],
)
def test_update_automation_refuses_a_malformed_patch(
    unit_client: Any, wf: Any, auth: dict[str, str], patch: dict[str, Any], field: str
) -> None:
    body = _problem(unit_client.patch("/api/v1/automations/a1", json=patch, headers=auth), 422)
    assert field in _fields(body)
    assert not wf.calls


@pytest.mark.parametrize("query", ["", "?expected_version=0", "?expected_version=abc"])
def test_delete_automation_needs_a_version(unit_client: Any, wf: Any, auth: dict[str, str], query: str) -> None:
    body = _problem(unit_client.delete(f"/api/v1/automations/a1{query}", headers=auth), 422)
    assert _fields(body) == {"expected_version"}
    assert not wf.calls


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/automations/a1/runs?page_size=101",
        "/api/v1/automations/a1/runs?page_size=0",
        "/api/v1/records/r1/automation-runs?page_size=-1",
        "/api/v1/workflow/dead-letters?page_size=1000",
        "/api/v1/workflow/dead-letters?include_replayed=maybe",
        "/api/v1/notifications?page_size=abc",
        "/api/v1/notifications?unread_only=sometimes",
    ],
)
def test_paging_parameters_out_of_range_are_422(unit_client: Any, wf: Any, auth: dict[str, str], path: str) -> None:
    body = _problem(unit_client.get(path, headers=auth), 422)
    assert body["errors"] and all(e["location"] == "query" for e in body["errors"])
    assert not wf.calls


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "ids"),
        ({"all": False}, "ids"),
        ({"ids": []}, "ids"),
        ({"ids": "n1"}, "ids"),
        ({"ids": [""]}, "ids.0"),
        ({"ids": ["n1"], "all": True}, "all"),
        ({"all": "everything"}, "all"),
    ],
)
def test_mark_read_needs_ids_or_all(
    unit_client: Any, wf: Any, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    problem = _problem(unit_client.post("/api/v1/notifications/read", json=body, headers=auth), 422)
    assert field in _fields(problem)
    assert not wf.calls


# --- authentication


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("token", [None, "not-a-session"])
def test_every_workflow_route_needs_a_session(
    unit_client: Any, wf: Any, helpers: Any, method: str, path: str, body: Any, token: str | None
) -> None:
    headers = helpers.bearer(token) if token else {}
    problem = _problem(unit_client.open(path, method=method, json=body, headers=headers), 401)
    assert problem["code"] == "unauthenticated"
    assert not wf.calls


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_workflow_route_answers_a_signed_in_caller(
    unit_client: Any, wf: Any, auth: dict[str, str], method: str, path: str, body: Any
) -> None:
    resp = unit_client.open(path, method=method, json=body, headers=auth)
    assert resp.status_code in (200, 201, 204), resp.get_data(as_text=True)
    assert len(wf.calls) == 1


# --- the service's errors, as problem+json


def _failing(wf: Any, method: str, code: grpc.StatusCode, problem: dict[str, Any], helpers: Any) -> None:
    def fail(_req: Any, _principal: Any) -> Any:
        raise helpers.FakeRpcError(code, problem)

    wf.handlers[method] = fail


def test_an_unknown_automation_is_404(unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any) -> None:
    _failing(
        wf, "GetAutomation", grpc.StatusCode.NOT_FOUND, {"code": "automation_not_found", "detail": "无此流程"}, helpers
    )
    body = _problem(unit_client.get("/api/v1/automations/nope", headers=auth), 404)
    assert (body["code"], body["detail"], body["instance"]) == (
        "automation_not_found",
        "无此流程",
        "/api/v1/automations/nope",
    )


@pytest.mark.parametrize("code", [grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED])
def test_a_stale_version_is_409(
    unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any, code: grpc.StatusCode
) -> None:
    # crm_runtime.errors.Conflict (a version clash) reaches the gateway as ALREADY_EXISTS (crm_runtime.grpc_server)
    conflict = {"code": "version_conflict", "detail": "version 3, not 1", "current": 3, "expected": 1}
    _failing(wf, "UpdateAutomation", code, conflict, helpers)
    body = _problem(
        unit_client.patch("/api/v1/automations/a1", json={"enabled": True, "expected_version": 1}, headers=auth), 409
    )
    assert (body["code"], body["current"], body["expected"]) == ("version_conflict", 3, 1)
    _failing(wf, "DeleteAutomation", code, conflict, helpers)
    assert _problem(unit_client.delete("/api/v1/automations/a1?expected_version=1", headers=auth), 409)["code"] == (
        "version_conflict"
    )


def test_failed_precondition_is_400_as_for_every_service(
    unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any
) -> None:
    # crm_runtime.errors.BadRequest -> FAILED_PRECONDITION -> 400 (the one mapping, test_error_table)
    problem = {"code": "already_replayed", "detail": "the dead letter was replayed"}
    _failing(wf, "ReplayDeadLetter", grpc.StatusCode.FAILED_PRECONDITION, problem, helpers)
    body = _problem(unit_client.post("/api/v1/workflow/dead-letters/d1/replay", headers=auth), 400)
    assert body["code"] == "already_replayed"


def test_field_errors_of_the_service_are_422_with_its_errors(
    unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any
) -> None:
    errors = [
        {"field": "actions[0].form", "rule": "unknown_form", "message": "没有表单 tsk"},
        {"field": "condition.and[0].field", "rule": "unknown_field", "message": "表单 customer 没有字段 src"},
    ]
    problem = {"code": "validation_failed", "detail": "流程定义有误", "errors": errors}
    _failing(wf, "CreateAutomation", grpc.StatusCode.INVALID_ARGUMENT, problem, helpers)
    body = _problem(unit_client.post("/api/v1/automations", json=AUTOMATION, headers=auth), 422)
    assert body["code"] == "validation_failed" and body["detail"] == "流程定义有误"
    assert body["errors"] == errors


def test_a_refusal_of_the_service_is_403(unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any) -> None:
    _failing(
        wf, "ListDeadLetters", grpc.StatusCode.PERMISSION_DENIED, {"code": "forbidden", "detail": "仅管理员"}, helpers
    )
    assert _problem(unit_client.get("/api/v1/workflow/dead-letters", headers=auth), 403)["detail"] == "仅管理员"


def test_the_workflow_service_down_is_503_with_retry_after(
    unit_client: Any, wf: Any, auth: dict[str, str], helpers: Any
) -> None:
    _failing(wf, "ListNotifications", grpc.StatusCode.UNAVAILABLE, "connection refused", helpers)
    resp = unit_client.get("/api/v1/notifications", headers=auth)
    assert _problem(resp, 503)["code"] == "service_unavailable"
    assert resp.headers["Retry-After"].isdigit()


# --- wiring


def test_the_workflow_client_and_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.clients import GrpcServiceClient, Services
    from gateway.settings import Settings

    monkeypatch.setenv("JWT_SECRET", "unit-test-secret-0123456789")
    monkeypatch.delenv("WORKFLOW_GRPC_ADDR", raising=False)
    assert Settings.from_env().workflow_grpc_addr == "127.0.0.1:50053"
    monkeypatch.setenv("WORKFLOW_GRPC_ADDR", "10.1.2.3:6000")
    settings = Settings.from_env()
    assert settings.workflow_grpc_addr == "10.1.2.3:6000"
    services = Services.grpc(settings.form_grpc_addr, settings.record_grpc_addr, settings.workflow_grpc_addr)
    assert isinstance(services.workflow, GrpcServiceClient)
    assert (services.workflow.name, services.workflow.target) == ("workflow", "10.1.2.3:6000")
    # callers that name only form and record (the seed, `tenant create`) get the default address
    older = Services.grpc(settings.form_grpc_addr, settings.record_grpc_addr)
    assert older.workflow.target == "127.0.0.1:50053"  # type: ignore[attr-defined]


def test_every_workflow_operation_is_documented_and_secured(unit_app: Any) -> None:
    from gateway.openapi import calls_service
    from gateway.routes import workflow

    paths = unit_app.spec["paths"]
    for method, path, _ in OPERATIONS:
        template = path.split("?")[0].replace("/a1", "/{automation_id}").replace("/r1/", "/{record_id}/")
        template = template.replace("/d1/", "/{dead_letter_id}/")
        operation = paths[template][method.lower()]
        assert operation["security"] == [{"BearerAuth": []}], (method, template)
        assert operation["tags"] and operation["summary"], (method, template)
        # a service-calling operation documents the service's statuses
        assert {"401", "403", "422", "503", "504"} <= set(operation["responses"]), (method, template)
    assert calls_service(workflow.list_automations) and calls_service(workflow.record_runs)
    create = paths["/api/v1/automations"]["post"]
    assert create["requestBody"]["content"]["application/json"]["example"]["trigger"] == {"type": "record_created"}
    schema = unit_app.spec["components"]["schemas"]["AutomationIn"]
    assert schema["properties"]["actions"]["example"][0]["type"] == "create_record"
    assert set(schema["required"]) == {"name", "form", "trigger", "actions"}
