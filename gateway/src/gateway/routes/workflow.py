"""Automations, their runs, dead letters and in-app notifications: proxied to crm.workflow.v1.WorkflowService.

The service holds definitions, runs and notifications as JSON text (`*_json`); these routes
decode them into objects and page lists as {items, next_cursor}. Who may do what (manage a
form's automations, see dead letters, read one's own notifications) is the service's decision.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import List, String
from apiflask.validators import Length
from flask import Response
from marshmallow import EXCLUDE

from crm.workflow.v1 import workflow_pb2
from gateway.auth import auth as token_auth
from gateway.auth import current_principal
from gateway.context import gateway
from gateway.responses import dumps, json_response, parse
from gateway.schemas import (
    AUTOMATION_EXAMPLE,
    AutomationDeleteQuery,
    AutomationIn,
    AutomationListOut,
    AutomationOut,
    AutomationPatch,
    AutomationQuery,
    DeadLetterListOut,
    DeadLetterQuery,
    FreeObject,
    NotificationListOut,
    NotificationQuery,
    NotificationsReadIn,
    NotificationsReadOut,
    RunListOut,
    WorkflowPageQuery,
)

bp = APIBlueprint(
    "workflow",
    __name__,
    tag={
        "name": "Automations",
        "description": "Automations (trigger → condition → actions), their runs and the dead letters of failed actions",
    },
)

NOTIFICATIONS = ["Notifications"]


def workflow_call(method: str, request: Any) -> Any:
    """A WorkflowService RPC as the current principal (errors reach the boundary in gateway.errors)."""
    return gateway().services.workflow.unary(method, request, current_principal())


def _page(items: Any, next_cursor: str, **extra: Any) -> Response:
    return json_response({"items": [parse(i) for i in items], "next_cursor": next_cursor or None, **extra})


# --- automations


@bp.get("/automations")
@bp.auth_required(token_auth)
@bp.input(AutomationQuery, location="query", arg_name="query")
@bp.output(AutomationListOut)
@bp.doc(summary="List automations", description="Of one form (`form_id`), or of every form of the tenant.")
def list_automations(query: dict[str, Any]) -> Response:
    """Automations of a form or of the tenant."""
    resp = workflow_call("ListAutomations", workflow_pb2.ListAutomationsRequest(form_id=query.get("form_id", "")))
    return json_response({"items": [parse(a) for a in resp.automations_json]})


@bp.post("/automations")
@bp.auth_required(token_auth)
@bp.input(AutomationIn, arg_name="body", example=AUTOMATION_EXAMPLE)
@bp.output(AutomationOut, status_code=201)
@bp.doc(
    summary="Create an automation",
    description="On `trigger` in `form`, when `condition` holds (null: always), run `actions` in order. "
    "The workflow service checks the trigger, the condition and each action against the form.",
    responses=[201, 401, 403, 404, 409, 422],
)
def create_automation(body: dict[str, Any]) -> Response:
    """A new automation."""
    resp = workflow_call("CreateAutomation", workflow_pb2.CreateAutomationRequest(automation_json=dumps(body)))
    return json_response(parse(resp.automation_json), 201)


@bp.get("/automations/<automation_id>")
@bp.auth_required(token_auth)
@bp.output(AutomationOut)
@bp.doc(summary="Get an automation", responses=[200, 401, 403, 404])
def get_automation(automation_id: str) -> Response:
    """One automation."""
    resp = workflow_call("GetAutomation", workflow_pb2.GetAutomationRequest(automation_id=automation_id))
    return json_response(parse(resp.automation_json))


@bp.patch("/automations/<automation_id>")
@bp.auth_required(token_auth)
@bp.input(AutomationPatch, arg_name="body")
@bp.output(AutomationOut)
@bp.doc(
    summary="Update an automation",
    description="Partial: name, enabled, trigger, condition, actions (the whole list), plus the "
    "`expected_version` read; a stale version is refused with 409.",
    responses=[200, 401, 403, 404, 409, 422],
)
def update_automation(automation_id: str, body: dict[str, Any]) -> Response:
    """Change an automation."""
    patch = dict(body)
    version = patch.pop("expected_version")
    req = workflow_pb2.UpdateAutomationRequest(
        automation_id=automation_id, automation_json=dumps(patch), expected_version=version
    )
    return json_response(parse(workflow_call("UpdateAutomation", req).automation_json))


@bp.delete("/automations/<automation_id>")
@bp.auth_required(token_auth)
@bp.input(AutomationDeleteQuery, location="query", arg_name="query")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete an automation",
    description="`expected_version` is the version read; a stale one is refused with 409.",
    responses=[204, 401, 403, 404, 409],
)
def delete_automation(automation_id: str, query: dict[str, Any]) -> Response:
    """Remove an automation."""
    req = workflow_pb2.DeleteAutomationRequest(automation_id=automation_id, expected_version=query["expected_version"])
    workflow_call("DeleteAutomation", req)
    return Response(status=204)


# --- runs


@bp.get("/automations/<automation_id>/runs")
@bp.auth_required(token_auth)
@bp.input(WorkflowPageQuery, location="query", arg_name="query")
@bp.output(RunListOut)
@bp.doc(summary="Runs of an automation", description="Newest first.", responses=[200, 401, 403, 404])
def automation_runs(automation_id: str, query: dict[str, Any]) -> Response:
    """A page of one automation's runs."""
    req = workflow_pb2.ListRunsRequest(
        automation_id=automation_id, cursor=query.get("cursor", ""), page_size=query.get("page_size", 0)
    )
    resp = workflow_call("ListRuns", req)
    return _page(resp.runs_json, resp.next_cursor)


@bp.get("/records/<record_id>/automation-runs")
@bp.auth_required(token_auth)
@bp.input(WorkflowPageQuery, location="query", arg_name="query")
@bp.output(RunListOut)
@bp.doc(
    summary="Automation runs on a record",
    description="Runs of every automation on one record, newest first.",
    responses=[200, 401, 403, 404],
)
def record_runs(record_id: str, query: dict[str, Any]) -> Response:
    """A page of the runs on one record."""
    req = workflow_pb2.ListRunsRequest(
        record_id=record_id, cursor=query.get("cursor", ""), page_size=query.get("page_size", 0)
    )
    resp = workflow_call("ListRuns", req)
    return _page(resp.runs_json, resp.next_cursor)


# --- dead letters


@bp.get("/workflow/dead-letters")
@bp.auth_required(token_auth)
@bp.input(DeadLetterQuery, location="query", arg_name="query")
@bp.output(DeadLetterListOut)
@bp.doc(
    summary="List dead letters",
    description="Actions that failed after their retries, newest first; replayed ones with `include_replayed`.",
)
def list_dead_letters(query: dict[str, Any]) -> Response:
    """A page of dead letters."""
    req = workflow_pb2.ListDeadLettersRequest(
        cursor=query.get("cursor", ""),
        page_size=query.get("page_size", 0),
        include_replayed=query["include_replayed"],
    )
    resp = workflow_call("ListDeadLetters", req)
    return _page(resp.dead_letters_json, resp.next_cursor)


@bp.post("/workflow/dead-letters/<dead_letter_id>/replay")
@bp.auth_required(token_auth)
@bp.output(FreeObject)
@bp.doc(
    summary="Replay a dead letter",
    description="Runs the failed action once more; returns the dead letter.",
    responses=[200, 401, 403, 404, 409],
)
def replay_dead_letter(dead_letter_id: str) -> Response:
    """Run a failed action again."""
    resp = workflow_call("ReplayDeadLetter", workflow_pb2.ReplayDeadLetterRequest(dead_letter_id=dead_letter_id))
    return json_response(parse(resp.dead_letter_json))


# --- notifications


@bp.get("/notifications")
@bp.auth_required(token_auth)
@bp.input(NotificationQuery, location="query", arg_name="query")
@bp.output(NotificationListOut)
@bp.doc(
    summary="My notifications",
    description="The caller's in-app notifications, newest first, and how many are unread.",
    tags=NOTIFICATIONS,
)
def list_notifications(query: dict[str, Any]) -> Response:
    """A page of the caller's notifications."""
    req = workflow_pb2.ListNotificationsRequest(
        unread_only=query["unread_only"], cursor=query.get("cursor", ""), page_size=query.get("page_size", 0)
    )
    resp = workflow_call("ListNotifications", req)
    return _page(resp.notifications_json, resp.next_cursor, unread=resp.unread)


@bp.post("/notifications/read")
@bp.auth_required(token_auth)
@bp.input(NotificationsReadIn, arg_name="body")
@bp.output(NotificationsReadOut)
@bp.doc(
    summary="Mark notifications read",
    description='`{"ids": [...]}` for some, `{"all": true}` for every one of the caller\'s.',
    tags=NOTIFICATIONS,
    responses=[200, 401, 422],
)
def mark_notifications_read(body: dict[str, Any]) -> Response:
    """Mark some or all of the caller's notifications read."""
    req = workflow_pb2.MarkNotificationsReadRequest(notification_ids=body.get("ids", []), all=bool(body.get("all")))
    resp = workflow_call("MarkNotificationsRead", req)
    return json_response({"marked": resp.marked, "unread": resp.unread})


class RunIn(Schema):
    """The optional actions chosen for a manual run."""

    class Meta:
        unknown = EXCLUDE

    options = List(String(validate=Length(1, 40)), validate=Length(max=20))


@bp.post("/records/<record_id>/automations/<automation_id>/run")
@bp.auth_required(token_auth)
@bp.input(RunIn, arg_name="body")
@bp.output(FreeObject)
@bp.doc(
    summary="Run a manual automation on a record",
    description="A button such as 线索转化: its actions run now, `options` naming the optional ones to include "
    "(e.g. contact, opportunity); the response is the run with each action's outcome.",
    responses=[200, 401, 403, 404, 422],
)
def run_automation(record_id: str, automation_id: str, body: dict[str, Any]) -> Response:
    """Run a manual automation."""
    req = workflow_pb2.RunAutomationRequest(
        automation_id=automation_id, record_id=record_id, options=list(body.get("options") or [])
    )
    return json_response(parse(workflow_call("RunAutomation", req).run_json))
