"""The approval routes over a fake WorkflowService: requests, envelopes, 422s, 401s and the service's errors."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.workflow.v1 import workflow_pb2

PROCESS = {
    "name": {"zh-CN": "合同审批", "en": "Contract approval"},
    "key": "contract_approval",
    "form": "contract",
    "nodes": [
        {"id": "m", "type": "approver", "approvers": [{"type": "submitter_manager"}], "next": "end"},
        {"id": "end", "type": "end"},
    ],
}
STORED = {"id": "p1", **PROCESS, "form_id": "f-contract", "version": 1, "enabled": True, "guards_synced": True}
APPROVAL = {"id": "i1", "state": "pending", "record_id": "r1", "current_step": {"node_id": "m"}, "timeline": []}

# (method, path, JSON body or None) of every approval operation, each valid as sent
OPERATIONS = [
    ("GET", "/api/v1/approval-processes", None),
    ("POST", "/api/v1/approval-processes", PROCESS),
    ("GET", "/api/v1/approval-processes/p1", None),
    ("PATCH", "/api/v1/approval-processes/p1", {"enabled": False, "expected_version": 1}),
    ("DELETE", "/api/v1/approval-processes/p1?expected_version=1", None),
    ("POST", "/api/v1/records/r1/approvals", {"process": "contract_approval"}),
    ("GET", "/api/v1/approvals/inbox", None),
    ("GET", "/api/v1/approvals/i1", None),
    ("POST", "/api/v1/approvals/i1/withdraw", {}),
    ("POST", "/api/v1/approvals/i1/comments", {"comment": "请尽快"}),
    ("POST", "/api/v1/approvals/tasks/t1/approve", {"comment": "同意"}),
    ("POST", "/api/v1/approvals/tasks/t1/reject", {"reason": "价格太低"}),
    ("POST", "/api/v1/approvals/tasks/t1/transfer", {"user_id": "u2"}),
    ("POST", "/api/v1/approvals/tasks/t1/add-approver", {"user_id": "u3"}),
]


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body: dict[str, Any] = resp.get_json()
    assert body["status"] == status
    return body


def _fields(problem: dict[str, Any]) -> set[str]:
    return {e["field"] for e in problem["errors"]}


@pytest.fixture
def wf(workflow_service: Any) -> Any:
    """The fake WorkflowService answering every approval RPC."""
    process = json.dumps(STORED, ensure_ascii=False)
    approval = json.dumps(APPROVAL)

    def answer(response: Any) -> Any:
        return lambda req, p: response(approval_json=approval)

    workflow_service.handlers.update(
        {
            "ListApprovalProcesses": lambda req, p: workflow_pb2.ListApprovalProcessesResponse(
                processes_json=[process]
            ),
            "CreateApprovalProcess": lambda req, p: workflow_pb2.CreateApprovalProcessResponse(
                process_json=json.dumps({"id": "p1", **json.loads(req.process_json), "version": 1})
            ),
            "GetApprovalProcess": lambda req, p: workflow_pb2.GetApprovalProcessResponse(process_json=process),
            "UpdateApprovalProcess": lambda req, p: workflow_pb2.UpdateApprovalProcessResponse(
                process_json=json.dumps({**STORED, **json.loads(req.process_json), "version": 2})
            ),
            "DeleteApprovalProcess": lambda req, p: workflow_pb2.DeleteApprovalProcessResponse(),
            "SubmitApproval": answer(workflow_pb2.SubmitApprovalResponse),
            "GetApproval": answer(workflow_pb2.GetApprovalResponse),
            "ListApprovalInbox": lambda req, p: workflow_pb2.ListApprovalInboxResponse(
                items_json=[json.dumps({"task_id": "t1", "approval": {"id": "i1"}})], next_cursor="c2"
            ),
            "WithdrawApproval": answer(workflow_pb2.WithdrawApprovalResponse),
            "CommentOnApproval": answer(workflow_pb2.CommentOnApprovalResponse),
            "ApproveTask": answer(workflow_pb2.ApproveTaskResponse),
            "RejectTask": answer(workflow_pb2.RejectTaskResponse),
            "TransferTask": answer(workflow_pb2.TransferTaskResponse),
            "AddApprover": answer(workflow_pb2.AddApproverResponse),
        }
    )
    return workflow_service


@pytest.fixture
def auth(helpers: Any) -> dict[str, str]:
    """Headers of the signed-in tenant administrator of unit_app."""
    return dict(helpers.bearer(helpers.UNIT_ADMIN_TOKEN))


@pytest.fixture
def sales(helpers: Any) -> dict[str, str]:
    """Headers of the signed-in sales user of unit_app, in English."""
    return dict(helpers.bearer(helpers.UNIT_SALES_TOKEN, "en"))


# --- happy paths


def test_processes_crud_sends_json_and_the_version_apart(unit_client: Any, wf: Any, auth: dict[str, str]) -> None:
    resp = unit_client.get("/api/v1/approval-processes?form_id=contract", headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {"items": [STORED]}
    assert wf.last("ListApprovalProcesses")[0].form_id == "contract"
    created = unit_client.post("/api/v1/approval-processes", json=PROCESS, headers=auth)
    assert created.status_code == 201 and created.get_json()["id"] == "p1"
    sent = wf.last("CreateApprovalProcess")[0].process_json
    assert json.loads(sent) == PROCESS and "合同审批" in sent
    assert unit_client.get("/api/v1/approval-processes/contract_approval", headers=auth).get_json() == STORED
    assert wf.last("GetApprovalProcess")[0].process_id == "contract_approval"
    patched = unit_client.patch(
        "/api/v1/approval-processes/p1", json={"enabled": False, "guard": None, "expected_version": 1}, headers=auth
    )
    assert patched.status_code == 200 and patched.get_json()["version"] == 2
    req, _ = wf.last("UpdateApprovalProcess")
    assert (req.process_id, req.expected_version) == ("p1", 1)
    assert json.loads(req.process_json) == {"enabled": False, "guard": None}
    deleted = unit_client.delete("/api/v1/approval-processes/p1?expected_version=3", headers=auth)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert wf.last("DeleteApprovalProcess")[0].expected_version == 3


def test_submit_reads_and_inbox(unit_client: Any, wf: Any, sales: dict[str, str]) -> None:
    resp = unit_client.post("/api/v1/records/r1/approvals", json={"comment": "请审批"}, headers=sales)
    assert resp.status_code == 201 and resp.get_json() == APPROVAL
    req, principal = wf.last("SubmitApproval")
    assert (req.record_id, req.process, req.comment) == ("r1", "", "请审批")
    assert (principal.user_id, principal.locale) == ("u-sales", "en")
    assert unit_client.get("/api/v1/approvals/i1", headers=sales).get_json() == APPROVAL
    assert wf.last("GetApproval")[0].instance_id == "i1"
    page = unit_client.get("/api/v1/approvals/inbox?box=cc&page_size=5&cursor=c1", headers=sales)
    assert page.get_json() == {"items": [{"task_id": "t1", "approval": {"id": "i1"}}], "next_cursor": "c2"}
    req, _ = wf.last("ListApprovalInbox")
    assert (req.box, req.page_size, req.cursor) == ("cc", 5, "c1")
    unit_client.get("/api/v1/approvals/inbox", headers=sales)
    assert wf.last("ListApprovalInbox")[0].box == "todo"


def test_task_actions_carry_their_inputs(unit_client: Any, wf: Any, sales: dict[str, str]) -> None:
    assert unit_client.post("/api/v1/approvals/tasks/t1/approve", json={}, headers=sales).status_code == 200
    assert (wf.last("ApproveTask")[0].task_id, wf.last("ApproveTask")[0].comment) == ("t1", "")
    unit_client.post("/api/v1/approvals/tasks/t1/reject", json={"reason": "太贵", "to": "previous"}, headers=sales)
    req, _ = wf.last("RejectTask")
    assert (req.reason, req.to, req.comment) == ("太贵", "previous", "")
    unit_client.post("/api/v1/approvals/tasks/t1/reject", json={"reason": "太贵"}, headers=sales)
    assert wf.last("RejectTask")[0].to == "submitter"
    unit_client.post("/api/v1/approvals/tasks/t1/transfer", json={"user_id": "u2", "comment": "出差"}, headers=sales)
    assert (wf.last("TransferTask")[0].user_id, wf.last("TransferTask")[0].comment) == ("u2", "出差")
    unit_client.post("/api/v1/approvals/tasks/t1/add-approver", json={"user_id": "u3"}, headers=sales)
    assert (wf.last("AddApprover")[0].user_id, wf.last("AddApprover")[0].position) == ("u3", "after")
    unit_client.post("/api/v1/approvals/tasks/t1/add-approver", json={"user_id": "u3", "position": "before"},
                     headers=sales)  # fmt: skip
    assert wf.last("AddApprover")[0].position == "before"
    unit_client.post("/api/v1/approvals/i1/withdraw", json={"reason": "改条款"}, headers=sales)
    assert (wf.last("WithdrawApproval")[0].instance_id, wf.last("WithdrawApproval")[0].reason) == ("i1", "改条款")
    unit_client.post("/api/v1/approvals/i1/comments", json={"comment": "已补充附件"}, headers=sales)
    assert wf.last("CommentOnApproval")[0].comment == "已补充附件"


# --- malformed input: 422 naming the field, the service never called


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/approval-processes", {**PROCESS, "nodes": "none"}, "nodes"),
        ("POST", "/api/v1/approval-processes", {**PROCESS, "nodes": []}, "nodes"),
        ("POST", "/api/v1/approval-processes", {**PROCESS, "name": ""}, "name"),
        ("POST", "/api/v1/approval-processes", {**PROCESS, "colour": "red"}, "colour"),
        ("POST", "/api/v1/approval-processes", {k: v for k, v in PROCESS.items() if k != "form"}, "form"),
        ("PATCH", "/api/v1/approval-processes/p1", {"enabled": False}, "expected_version"),
        ("PATCH", "/api/v1/approval-processes/p1", {"expected_version": 1, "form": "lead"}, "form"),
        ("POST", "/api/v1/approvals/tasks/t1/reject", {}, "reason"),
        ("POST", "/api/v1/approvals/tasks/t1/reject", {"reason": "x", "to": "nowhere"}, "to"),
        ("POST", "/api/v1/approvals/tasks/t1/transfer", {}, "user_id"),
        ("POST", "/api/v1/approvals/tasks/t1/add-approver", {"user_id": "u", "position": "beside"}, "position"),
        ("POST", "/api/v1/approvals/tasks/t1/approve", {"comment": "x" * 2001}, "comment"),
        ("POST", "/api/v1/approvals/i1/comments", {}, "comment"),
        ("POST", "/api/v1/records/r1/approvals", {"process": ""}, "process"),
    ],
)
def test_malformed_input_is_422(
    unit_client: Any, wf: Any, auth: dict[str, str], method: str, path: str, body: Any, field: str
) -> None:
    problem = _problem(unit_client.open(path, method=method, json=body, headers=auth), 422)
    assert field in _fields(problem)
    assert not wf.calls


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/approvals/inbox?box=archive",
        "/api/v1/approvals/inbox?page_size=0",
        "/api/v1/approvals/inbox?page_size=101",
        "/api/v1/approval-processes/p1?expected_version=0",
    ],
)
def test_query_parameters_out_of_range_are_422(unit_client: Any, wf: Any, auth: dict[str, str], path: str) -> None:
    method = "DELETE" if "expected_version" in path else "GET"
    _problem(unit_client.open(path, method=method, headers=auth), 422)
    assert not wf.calls


# --- authentication


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("token", [None, "not-a-session"])
def test_every_approval_route_needs_a_session(
    unit_client: Any, wf: Any, helpers: Any, method: str, path: str, body: Any, token: str | None
) -> None:
    headers = helpers.bearer(token) if token else {}
    assert _problem(unit_client.open(path, method=method, json=body, headers=headers), 401)["code"] == (
        "unauthenticated"
    )
    assert not wf.calls


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_approval_route_answers_a_signed_in_caller(
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


@pytest.mark.parametrize(
    ("method", "path", "body", "rpc", "code", "status"),
    [
        ("GET", "/api/v1/approvals/i1", None, "GetApproval", grpc.StatusCode.NOT_FOUND, 404),
        ("POST", "/api/v1/approvals/tasks/t1/approve", {}, "ApproveTask", grpc.StatusCode.PERMISSION_DENIED, 403),
        ("POST", "/api/v1/approvals/tasks/t1/approve", {}, "ApproveTask", grpc.StatusCode.ALREADY_EXISTS, 409),
        ("POST", "/api/v1/records/r1/approvals", {}, "SubmitApproval", grpc.StatusCode.ALREADY_EXISTS, 409),
        ("POST", "/api/v1/approval-processes", PROCESS, "CreateApprovalProcess", grpc.StatusCode.INVALID_ARGUMENT, 422),
        ("GET", "/api/v1/approvals/inbox", None, "ListApprovalInbox", grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_the_services_errors_are_problems(
    unit_client: Any,
    wf: Any,
    auth: dict[str, str],
    helpers: Any,
    method: str,
    path: str,
    body: Any,
    rpc: str,
    code: grpc.StatusCode,
    status: int,
) -> None:
    problem = {"code": "x", "detail": "审批任务已处理", "errors": [{"field": "nodes[2].next", "rule": "cycle",
                                                                  "message": "不能有环"}]}  # fmt: skip
    _failing(wf, rpc, code, problem, helpers)
    body_out = _problem(unit_client.open(path, method=method, json=body, headers=auth), status)
    if status == 422:
        assert body_out["errors"] == problem["errors"]


# --- the OpenAPI document


def test_every_approval_operation_is_documented_and_secured(unit_app: Any) -> None:
    from gateway.openapi import calls_service
    from gateway.routes import approvals

    paths = unit_app.spec["paths"]
    for method, path, _ in OPERATIONS:
        template = path.split("?")[0]
        template = template.replace("/approval-processes/p1", "/approval-processes/{process_id}")
        template = template.replace("/records/r1/", "/records/{record_id}/").replace("/tasks/t1/", "/tasks/{task_id}/")
        template = template.replace("/approvals/i1", "/approvals/{instance_id}")
        operation = paths[template][method.lower()]
        assert operation["security"] == [{"BearerAuth": []}], (method, template)
        assert operation["tags"] == ["Approvals"] and operation["summary"], (method, template)
        assert {"401", "403", "422", "503", "504"} <= set(operation["responses"]), (method, template)
    assert calls_service(approvals.submit) and calls_service(approvals.inbox)
    create = paths["/api/v1/approval-processes"]["post"]
    assert create["requestBody"]["content"]["application/json"]["example"]["key"] == "contract_approval"
    assert set(unit_app.spec["components"]["schemas"]["ProcessIn"]["required"]) == {"name", "form", "nodes"}
