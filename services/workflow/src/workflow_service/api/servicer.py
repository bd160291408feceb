"""WorkflowServicer: the WorkflowService RPCs, mapping JSON text to the use cases and back.

Domain errors pass through untouched: crm_runtime's server interceptor turns
them into gRPC status codes with a JSON problem.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime.principal import current_principal
from workflow_service.domain import errors as werr
from workflow_service.domain.service import WorkflowUseCases

SERVICE_NAME = workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"].full_name
MAX_JSON = 1_000_000


def dumps(value: Any) -> str:
    """JSON text of a response value."""
    return json.dumps(value, ensure_ascii=False, default=str)


def loads(text: str, where: str, locale: str, *, default: Any = None) -> Any:
    """A request's JSON text; a 422 naming the field when it is not JSON."""
    if not text:
        return default
    if len(text) > MAX_JSON:
        raise werr.invalid(where, "too_long", locale, max=MAX_JSON)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise werr.invalid(where, "invalid_json", locale, error=str(exc)[:200]) from None


class WorkflowServicer(workflow_pb2_grpc.WorkflowServiceServicer):
    """Implements crm.workflow.v1.WorkflowService over WorkflowUseCases."""

    def __init__(self, uc: WorkflowUseCases) -> None:
        self.uc = uc

    def register(self, server: grpc.Server) -> None:
        """Add this servicer to a gRPC server (for crm_runtime.build_server)."""
        workflow_pb2_grpc.add_WorkflowServiceServicer_to_server(self, server)

    def CreateAutomation(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Check and store a new automation."""
        p = current_principal()
        spec = loads(request.automation_json, "automation_json", p.locale, default={})
        return workflow_pb2.CreateAutomationResponse(automation_json=dumps(self.uc.create(p, spec)))

    def UpdateAutomation(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Change an automation (optimistic on expected_version)."""
        p = current_principal()
        patch = loads(request.automation_json, "automation_json", p.locale, default={})
        updated = self.uc.update(p, request.automation_id, patch, request.expected_version)
        return workflow_pb2.UpdateAutomationResponse(automation_json=dumps(updated))

    def GetAutomation(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One automation."""
        p = current_principal()
        return workflow_pb2.GetAutomationResponse(automation_json=dumps(self.uc.get(p, request.automation_id)))

    def ListAutomations(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The automations of a form or of the tenant."""
        found = self.uc.list_automations(current_principal(), request.form_id)
        return workflow_pb2.ListAutomationsResponse(automations_json=[dumps(a) for a in found])

    def DeleteAutomation(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Delete an automation."""
        self.uc.delete(current_principal(), request.automation_id, request.expected_version)
        return workflow_pb2.DeleteAutomationResponse()

    def ListRuns(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Runs of an automation or a record."""
        rows, cursor = self.uc.runs(
            current_principal(),
            automation_id=request.automation_id,
            record_id=request.record_id,
            cursor=request.cursor,
            size=request.page_size,
        )
        return workflow_pb2.ListRunsResponse(runs_json=[dumps(r) for r in rows], next_cursor=cursor)

    def ListDeadLetters(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Dead letters of the tenant."""
        rows, cursor = self.uc.dead_letters(
            current_principal(),
            cursor=request.cursor,
            size=request.page_size,
            include_replayed=request.include_replayed,
        )
        return workflow_pb2.ListDeadLettersResponse(dead_letters_json=[dumps(r) for r in rows], next_cursor=cursor)

    def ReplayDeadLetter(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Run a dead letter again."""
        letter = self.uc.replay(current_principal(), request.dead_letter_id)
        return workflow_pb2.ReplayDeadLetterResponse(dead_letter_json=dumps(letter))

    def ListNotifications(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The caller's notifications."""
        rows, cursor, unread = self.uc.notifications(
            current_principal(), unread_only=request.unread_only, cursor=request.cursor, size=request.page_size
        )
        return workflow_pb2.ListNotificationsResponse(
            notifications_json=[dumps(r) for r in rows], next_cursor=cursor, unread=unread
        )

    def MarkNotificationsRead(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Mark notifications read."""
        marked, unread = self.uc.mark_read(current_principal(), list(request.notification_ids), request.all)
        return workflow_pb2.MarkNotificationsReadResponse(marked=marked, unread=unread)

    def RunAutomation(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Run a manual automation on a record and return its run."""
        run = self.uc.run_manual(current_principal(), request.automation_id, request.record_id, list(request.options))
        return workflow_pb2.RunAutomationResponse(run_json=dumps(run))

    def StartHandover(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Start a handover job."""
        job = self.uc.engine.handover.start(current_principal(), request.user_id, request.to_user_id, request.pool_id)
        return workflow_pb2.StartHandoverResponse(job_json=dumps(job))

    def GetHandover(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A handover job and its progress."""
        job = self.uc.engine.handover.get(current_principal(), request.job_id)
        return workflow_pb2.GetHandoverResponse(job_json=dumps(job))

    def InstallTemplate(self, request: Any, context: Any) -> Any:  # noqa: N802
        """The template's automations for the tenant (idempotent)."""
        p = current_principal()
        bindings = loads(request.bindings_json, "bindings_json", p.locale, default={})
        if not isinstance(bindings, dict):
            raise werr.invalid("bindings_json", "not_object", p.locale)
        created, existing = self.uc.install_template(p, request.template, bindings)
        return workflow_pb2.InstallTemplateResponse(created=created, existing=existing)
