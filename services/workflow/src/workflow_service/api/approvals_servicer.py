"""ApprovalsServicer: the approval RPCs of crm.workflow.v1.WorkflowService over ApprovalUseCases (JSON text in
and out; domain errors pass through to crm_runtime's interceptor, as in api/servicer.py).

The approval RPCs belong to WorkflowService (one service, one client in the gateway), but live in this
module: `register` adds their handlers to the server *after* WorkflowServicer has registered the whole
service, so these methods' handlers replace the generated UNIMPLEMENTED ones (grpc keeps one handler per
method path, the last registered). server.py registers it last for that reason.
"""

from __future__ import annotations

from typing import Any

import grpc

from crm.workflow.v1 import workflow_pb2
from crm_runtime.principal import current_principal
from workflow_service.api.servicer import SERVICE_NAME, dumps, loads
from workflow_service.domain.approval_service import ApprovalUseCases

METHODS = (
    "CreateApprovalProcess",
    "UpdateApprovalProcess",
    "GetApprovalProcess",
    "ListApprovalProcesses",
    "DeleteApprovalProcess",
    "SubmitApproval",
    "GetApproval",
    "ListApprovalInbox",
    "ApproveTask",
    "RejectTask",
    "TransferTask",
    "AddApprover",
    "WithdrawApproval",
    "CommentOnApproval",
)


class ApprovalsServicer:
    """Implements the approval RPCs of crm.workflow.v1.WorkflowService."""

    def __init__(self, uc: ApprovalUseCases) -> None:
        self.uc = uc

    def register(self, server: grpc.Server) -> None:
        """Add (after WorkflowServicer) the handlers of the approval methods to a gRPC server."""
        service = workflow_pb2.DESCRIPTOR.services_by_name["WorkflowService"]
        handlers = {}
        for name in METHODS:
            method = service.methods_by_name[name]
            request = getattr(workflow_pb2, method.input_type.name)
            response = getattr(workflow_pb2, method.output_type.name)
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                getattr(self, name),
                request_deserializer=request.FromString,
                response_serializer=response.SerializeToString,
            )
        server.add_registered_method_handlers(SERVICE_NAME, handlers)

    # ------------------------------------------------------------ processes

    def CreateApprovalProcess(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """Check and store a new process."""
        p = current_principal()
        spec = loads(request.process_json, "process_json", p.locale, default={})
        return workflow_pb2.CreateApprovalProcessResponse(process_json=dumps(self.uc.create_process(p, spec)))

    def UpdateApprovalProcess(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Change a process (optimistic on expected_version)."""
        p = current_principal()
        patch = loads(request.process_json, "process_json", p.locale, default={})
        updated = self.uc.update_process(p, request.process_id, patch, request.expected_version)
        return workflow_pb2.UpdateApprovalProcessResponse(process_json=dumps(updated))

    def GetApprovalProcess(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One process by id or key."""
        found = self.uc.get_process(current_principal(), request.process_id)
        return workflow_pb2.GetApprovalProcessResponse(process_json=dumps(found))

    def ListApprovalProcesses(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Processes of a form or of the tenant."""
        found = self.uc.list_processes(current_principal(), request.form_id)
        return workflow_pb2.ListApprovalProcessesResponse(processes_json=[dumps(d) for d in found])

    def DeleteApprovalProcess(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Delete a process."""
        self.uc.delete_process(current_principal(), request.process_id, request.expected_version)
        return workflow_pb2.DeleteApprovalProcessResponse()

    # ------------------------------------------------------------ instances

    def SubmitApproval(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Submit a record for approval."""
        found = self.uc.submit(current_principal(), request.record_id, request.process, request.comment)
        return workflow_pb2.SubmitApprovalResponse(approval_json=dumps(found))

    def GetApproval(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One instance."""
        return workflow_pb2.GetApprovalResponse(
            approval_json=dumps(self.uc.get(current_principal(), request.instance_id))
        )

    def ListApprovalInbox(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A page of the caller's inbox."""
        items, cursor = self.uc.inbox(current_principal(), request.box, request.cursor, request.page_size)
        return workflow_pb2.ListApprovalInboxResponse(items_json=[dumps(i) for i in items], next_cursor=cursor)

    def ApproveTask(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Approve a task."""
        done = self.uc.approve(current_principal(), request.task_id, request.comment)
        return workflow_pb2.ApproveTaskResponse(approval_json=dumps(done))

    def RejectTask(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Reject a task."""
        done = self.uc.reject(current_principal(), request.task_id, request.reason, request.comment, request.to)
        return workflow_pb2.RejectTaskResponse(approval_json=dumps(done))

    def TransferTask(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Hand a task to another user."""
        done = self.uc.transfer(current_principal(), request.task_id, request.user_id, request.comment)
        return workflow_pb2.TransferTaskResponse(approval_json=dumps(done))

    def AddApprover(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Add an approver before or after the caller."""
        done = self.uc.add_approver(
            current_principal(), request.task_id, request.user_id, request.position, request.comment
        )
        return workflow_pb2.AddApproverResponse(approval_json=dumps(done))

    def WithdrawApproval(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Take a pending instance back."""
        done = self.uc.withdraw(current_principal(), request.instance_id, request.reason)
        return workflow_pb2.WithdrawApprovalResponse(approval_json=dumps(done))

    def CommentOnApproval(self, request: Any, context: Any) -> Any:  # noqa: N802
        """A comment on an instance."""
        done = self.uc.comment(current_principal(), request.instance_id, request.comment)
        return workflow_pb2.CommentOnApprovalResponse(approval_json=dumps(done))
