"""Approvals (审批): processes, submitting a record, task actions, one approval and each user's inbox — proxied to
the approval RPCs of crm.workflow.v1.WorkflowService.

The service holds processes and approvals as JSON text (`*_json`); these routes decode them and page lists as
{items, next_cursor}. Who may do what is the service's decision: processes are managed by tenant admins (read
by everyone, to choose one when submitting); an approval is seen by its submitter, its approvers, its CC'd
users and admins (anyone else: 404); a task is acted on by its approver or an admin (403); a task already
handled or no longer current is a 409; a record in approval refuses users' edits with 423 naming it.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Dict, Integer, List, Raw, String
from apiflask.validators import Length, OneOf, Range
from flask import Response
from marshmallow import EXCLUDE, INCLUDE

from crm.workflow.v1 import workflow_pb2
from gateway.auth import auth as token_auth
from gateway.auth import current_principal
from gateway.context import gateway
from gateway.responses import dumps, json_response, parse
from gateway.schemas import _LOCALIZED_NAME, INT64_MAX, WORKFLOW_PAGE, _localized_name

bp = APIBlueprint(
    "approvals",
    __name__,
    tag={
        "name": "Approvals",
        "description": "审批: processes per form (approver, condition, CC and end nodes), approvals of records and "
        "of guarded field changes, task actions, each user's inbox",
    },
)

PROCESS_EXAMPLE = {
    "name": {"zh-CN": "合同审批", "en": "Contract approval"},
    "key": "contract_approval",
    "form": "contract",
    "nodes": [
        {
            "id": "manager",
            "type": "approver",
            "approvers": [{"type": "submitter_manager"}],
            "mode": "any",
            "timeouts": {"remind_after": "24h", "escalate_after": "48h", "escalate_to": "manager"},
            "next": "amount",
        },
        {
            "id": "amount",
            "type": "condition",
            "branches": [
                {"when": {"field": "amount", "op": "gt", "value": "1000000"}, "next": "gm_and_cfo"},
                {"when": {"field": "amount", "op": "gt", "value": "100000"}, "next": "gm"},
            ],
            "default": "end",
        },
        {"id": "gm", "type": "approver", "approvers": [{"type": "user", "id": "<总经理 id>"}], "next": "end"},
        {
            "id": "gm_and_cfo",
            "type": "approver",
            "mode": "all",
            "approvers": [{"type": "user", "id": "<总经理 id>"}, {"type": "role", "role": "finance_director"}],
            "next": "end",
        },
        {"id": "end", "type": "end"},
    ],
}
_NODES_DOC = {
    "description": "The graph: nodes {id, type: approver|condition|cc|end, name, ...}. approver: approvers "
    "[{type: user, id} | {type: role, role} | {type: submitter_manager} | {type: manager_of_manager}], mode any "
    "(或签) | all (会签) | sequence, if_empty admin | skip, timeouts {remind_after, escalate_after, escalate_to: "
    "manager | admin}, next. condition: branches [{when: <filter tree>, next}], default. cc: users, next. The "
    "service refuses unknown references, unreachable nodes, cycles, no end and empty approver lists, by path.",
    "example": PROCESS_EXAMPLE["nodes"],
}
_GUARD_DOC = {
    "description": "Makes the process decide a field change instead of a submitted record: {field, condition} — a "
    "user's change of `field` (when the record after it matches `condition`) waits as the record's pending "
    "change until the approval ends; approved it is applied, rejected it is dropped with the reason.",
    "example": {"field": "stage", "condition": {"field": "stage", "op": "eq", "value": "negotiation"}},
}
_VERSION_DOC = {"description": "the `version` read; a stale one is refused with 409"}


class ProcessIn(Schema):
    """A new approval process of a form."""

    name = Raw(required=True, validate=_localized_name, metadata=_LOCALIZED_NAME)
    key = String(validate=Length(1, 64), metadata={"description": "optional stable key (a-z, 0-9, _)"})
    form = String(required=True, validate=Length(1, 128), metadata={"description": "form id or key"})
    enabled = Boolean()
    description = String(validate=Length(max=1000))
    guard = Dict(allow_none=True, metadata=_GUARD_DOC)
    start = String(validate=Length(1, 40), metadata={"description": "the first node's id (default: the first node)"})
    channels = List(String(validate=Length(1, 20)), validate=Length(1, 7), metadata={"example": ["in_app"]})
    nodes = List(Dict(), required=True, validate=Length(1, 50), metadata=_NODES_DOC)


class ProcessPatch(Schema):
    """A partial change naming the version read (a process keeps its form)."""

    name = Raw(validate=_localized_name, metadata=_LOCALIZED_NAME)
    key = String(validate=Length(1, 64))
    enabled = Boolean()
    description = String(validate=Length(max=1000))
    guard = Dict(allow_none=True, metadata=_GUARD_DOC)
    start = String(validate=Length(1, 40))
    channels = List(String(validate=Length(1, 20)), validate=Length(1, 7))
    nodes = List(Dict(), validate=Length(1, 50), metadata=_NODES_DOC)
    expected_version = Integer(required=True, validate=Range(1, INT64_MAX), metadata=_VERSION_DOC)


class ProcessOut(Schema):
    """A process as the workflow service stores it (further members pass through)."""

    class Meta:
        unknown = INCLUDE

    id = String()
    name = Raw()
    key = String()
    form_id = String()
    enabled = Boolean()
    version = Integer(metadata={"description": "bumped on every change; send it back as `expected_version`"})
    nodes = List(Dict())
    guard = Dict(allow_none=True)
    guards_synced = Boolean(metadata={"description": "the guard reached the record service (false: retrying)"})


class ProcessListOut(Schema):
    """Processes."""

    items = List(Dict())


class ProcessQuery(Schema):
    """Processes of one form (id or key), or of the tenant."""

    class Meta:
        unknown = EXCLUDE

    form_id = String(validate=Length(max=128))


class VersionQuery(Schema):
    """The version read."""

    class Meta:
        unknown = EXCLUDE

    expected_version = Integer(required=True, validate=Range(1, INT64_MAX), metadata=_VERSION_DOC)


class SubmitIn(Schema):
    """Submit a record for approval."""

    process = String(validate=Length(1, 100), metadata={"description": "process id or key (default: the form's one)"})
    comment = String(validate=Length(max=2000))


class ApprovalOut(Schema):
    """An approval: its state, current step, tasks and timeline (further members pass through)."""

    class Meta:
        unknown = INCLUDE

    id = String()
    state = String(metadata={"description": "pending, approved, rejected or withdrawn"})
    record_id = String()
    process_id = String()
    process_version = Integer()
    current_step = Dict(allow_none=True, metadata={"description": "{node_id, name, mode, users} while pending"})
    tasks = List(Dict())
    my_tasks = List(String(), metadata={"description": "the caller's open task ids"})
    timeline = List(Dict(), metadata={"description": "what happened, oldest first, with each comment"})


class InboxQuery(Schema):
    """A page of the caller's inbox."""

    class Meta:
        unknown = EXCLUDE

    box = String(load_default="todo", validate=OneOf(["todo", "done", "cc", "submitted"]))
    cursor = String(metadata={"description": "next_cursor of the previous page"})
    page_size = Integer(validate=WORKFLOW_PAGE)


class InboxOut(Schema):
    """A page of an inbox, newest first."""

    items = List(Dict(), metadata={"description": "tasks (todo, done, cc) or approvals (submitted), each with "
                                                  "its approval's summary"})  # fmt: skip
    next_cursor = String(allow_none=True)


class CommentIn(Schema):
    """An optional comment."""

    comment = String(validate=Length(max=2000))


class RejectIn(Schema):
    """A rejection with its reason."""

    reason = String(required=True, validate=Length(1, 500))
    comment = String(validate=Length(max=2000))
    to = String(
        load_default="submitter",
        validate=OneOf(["submitter", "previous"]),
        metadata={"description": "submitter: the approval is rejected; previous: the previous step decides again"},
    )


class TransferIn(Schema):
    """Hand the task to another active user."""

    user_id = String(required=True, validate=Length(1, 100))
    comment = String(validate=Length(max=2000))


class AddApproverIn(Schema):
    """Add an approver to the caller's step."""

    user_id = String(required=True, validate=Length(1, 100))
    position = String(
        load_default="after",
        validate=OneOf(["before", "after"]),
        metadata={"description": "before: they approve first, then the task comes back; after: theirs is needed too"},
    )
    comment = String(validate=Length(max=2000))


class WithdrawIn(Schema):
    """Take a pending approval back."""

    reason = String(validate=Length(max=500))


class RequiredCommentIn(Schema):
    """A comment."""

    comment = String(required=True, validate=Length(1, 2000))


def approval_call(method: str, request: Any) -> Any:
    """A WorkflowService approval RPC as the current principal."""
    return gateway().services.workflow.unary(method, request, current_principal())


def _approval(resp: Any, status: int = 200) -> Response:
    return json_response(parse(resp.approval_json), status)


# --- processes


@bp.get("/approval-processes")
@bp.auth_required(token_auth)
@bp.input(ProcessQuery, location="query", arg_name="query")
@bp.output(ProcessListOut)
@bp.doc(summary="List approval processes", description="Of one form (`form_id`), or of the tenant.")
def list_processes(query: dict[str, Any]) -> Response:
    """Processes of a form or of the tenant (non-admins: the enabled ones)."""
    req = workflow_pb2.ListApprovalProcessesRequest(form_id=query.get("form_id", ""))
    return json_response({"items": [parse(p) for p in approval_call("ListApprovalProcesses", req).processes_json]})


@bp.post("/approval-processes")
@bp.auth_required(token_auth)
@bp.input(ProcessIn, arg_name="body", example=PROCESS_EXAMPLE)
@bp.output(ProcessOut, status_code=201)
@bp.doc(summary="Create an approval process", responses=[201, 401, 403, 409, 422])
def create_process(body: dict[str, Any]) -> Response:
    """A new process (tenant admins); a bad graph is refused naming the node that is wrong."""
    resp = approval_call("CreateApprovalProcess", workflow_pb2.CreateApprovalProcessRequest(process_json=dumps(body)))
    return json_response(parse(resp.process_json), 201)


@bp.get("/approval-processes/<process_id>")
@bp.auth_required(token_auth)
@bp.output(ProcessOut)
@bp.doc(summary="Get an approval process", description="By id or key.", responses=[200, 401, 404])
def get_process(process_id: str) -> Response:
    """One process."""
    resp = approval_call("GetApprovalProcess", workflow_pb2.GetApprovalProcessRequest(process_id=process_id))
    return json_response(parse(resp.process_json))


@bp.patch("/approval-processes/<process_id>")
@bp.auth_required(token_auth)
@bp.input(ProcessPatch, arg_name="body")
@bp.output(ProcessOut)
@bp.doc(
    summary="Update an approval process",
    description="A new version: approvals started before keep the version they started with.",
    responses=[200, 401, 403, 404, 409, 422],
)
def update_process(process_id: str, body: dict[str, Any]) -> Response:
    """Change a process."""
    patch = dict(body)
    version = patch.pop("expected_version")
    req = workflow_pb2.UpdateApprovalProcessRequest(
        process_id=process_id, process_json=dumps(patch), expected_version=version
    )
    return json_response(parse(approval_call("UpdateApprovalProcess", req).process_json))


@bp.delete("/approval-processes/<process_id>")
@bp.auth_required(token_auth)
@bp.input(VersionQuery, location="query", arg_name="query")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete an approval process",
    description="Running approvals finish on their version; a guard is taken off the form.",
    responses=[204, 401, 403, 404, 409],
)
def delete_process(process_id: str, query: dict[str, Any]) -> Response:
    """Remove a process."""
    req = workflow_pb2.DeleteApprovalProcessRequest(process_id=process_id, expected_version=query["expected_version"])
    approval_call("DeleteApprovalProcess", req)
    return Response(status=204)


# --- approvals


@bp.post("/records/<record_id>/approvals")
@bp.auth_required(token_auth)
@bp.input(SubmitIn, arg_name="body")
@bp.output(ApprovalOut, status_code=201)
@bp.doc(
    summary="Submit a record for approval",
    description="The record must be one the caller sees; it is read-only for users (423) until the outcome. "
    "Submitting again while it is pending returns the same approval; another one's is a 409.",
    responses=[201, 401, 404, 409, 422],
)
def submit(record_id: str, body: dict[str, Any]) -> Response:
    """Start an approval of a record."""
    req = workflow_pb2.SubmitApprovalRequest(
        record_id=record_id, process=body.get("process", ""), comment=body.get("comment", "")
    )
    return _approval(approval_call("SubmitApproval", req), 201)


@bp.get("/approvals/inbox")
@bp.auth_required(token_auth)
@bp.input(InboxQuery, location="query", arg_name="query")
@bp.output(InboxOut)
@bp.doc(summary="My approval inbox", description="`box`: todo (default), done, cc or submitted; newest first.")
def inbox(query: dict[str, Any]) -> Response:
    """A page of the caller's inbox."""
    req = workflow_pb2.ListApprovalInboxRequest(
        box=query["box"], cursor=query.get("cursor", ""), page_size=query.get("page_size", 0)
    )
    resp = approval_call("ListApprovalInbox", req)
    return json_response({"items": [parse(i) for i in resp.items_json], "next_cursor": resp.next_cursor or None})


@bp.get("/approvals/<instance_id>")
@bp.auth_required(token_auth)
@bp.output(ApprovalOut)
@bp.doc(summary="Get an approval", description="With its tasks and timeline.", responses=[200, 401, 404])
def get_approval(instance_id: str) -> Response:
    """One approval (its submitter, approvers, CC'd users and admins)."""
    return _approval(approval_call("GetApproval", workflow_pb2.GetApprovalRequest(instance_id=instance_id)))


@bp.post("/approvals/<instance_id>/withdraw")
@bp.auth_required(token_auth)
@bp.input(WithdrawIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Withdraw an approval", description="The submitter or an admin, while pending.",
        responses=[200, 401, 403, 404, 409, 422])  # fmt: skip
def withdraw(instance_id: str, body: dict[str, Any]) -> Response:
    """Take a pending approval back."""
    req = workflow_pb2.WithdrawApprovalRequest(instance_id=instance_id, reason=body.get("reason", ""))
    return _approval(approval_call("WithdrawApproval", req))


@bp.post("/approvals/<instance_id>/comments")
@bp.auth_required(token_auth)
@bp.input(RequiredCommentIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Comment on an approval", responses=[200, 401, 404, 422])
def comment(instance_id: str, body: dict[str, Any]) -> Response:
    """A comment on the timeline."""
    req = workflow_pb2.CommentOnApprovalRequest(instance_id=instance_id, comment=body["comment"])
    return _approval(approval_call("CommentOnApproval", req))


# --- task actions


@bp.post("/approvals/tasks/<task_id>/approve")
@bp.auth_required(token_auth)
@bp.input(CommentIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Approve a task", responses=[200, 401, 403, 404, 409, 422])
def approve(task_id: str, body: dict[str, Any]) -> Response:
    """Approve (the task's approver or an admin)."""
    req = workflow_pb2.ApproveTaskRequest(task_id=task_id, comment=body.get("comment", ""))
    return _approval(approval_call("ApproveTask", req))


@bp.post("/approvals/tasks/<task_id>/reject")
@bp.auth_required(token_auth)
@bp.input(RejectIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Reject a task", responses=[200, 401, 403, 404, 409, 422])
def reject(task_id: str, body: dict[str, Any]) -> Response:
    """Reject with a reason: back to the submitter, or to the previous step."""
    req = workflow_pb2.RejectTaskRequest(
        task_id=task_id, reason=body["reason"], comment=body.get("comment", ""), to=body["to"]
    )
    return _approval(approval_call("RejectTask", req))


@bp.post("/approvals/tasks/<task_id>/transfer")
@bp.auth_required(token_auth)
@bp.input(TransferIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Transfer a task", responses=[200, 401, 403, 404, 409, 422])
def transfer(task_id: str, body: dict[str, Any]) -> Response:
    """Hand the task to another active user."""
    req = workflow_pb2.TransferTaskRequest(task_id=task_id, user_id=body["user_id"], comment=body.get("comment", ""))
    return _approval(approval_call("TransferTask", req))


@bp.post("/approvals/tasks/<task_id>/add-approver")
@bp.auth_required(token_auth)
@bp.input(AddApproverIn, arg_name="body")
@bp.output(ApprovalOut)
@bp.doc(summary="Add an approver", description="Before (加签在前) or after (加签在后) the caller.",
        responses=[200, 401, 403, 404, 409, 422])  # fmt: skip
def add_approver(task_id: str, body: dict[str, Any]) -> Response:
    """Add an approver to the caller's step."""
    req = workflow_pb2.AddApproverRequest(
        task_id=task_id, user_id=body["user_id"], position=body["position"], comment=body.get("comment", "")
    )
    return _approval(approval_call("AddApprover", req))
