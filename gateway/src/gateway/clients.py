"""Clients of the form, record and workflow services, behind a small interface of our own.

Routes talk to a `ServiceClient`: `unary("CreateApp", request, principal)`,
`stream("DownloadAttachment", request, principal)` and `healthy()`. The gRPC
implementation opens its channel lazily, and again in a forked child, so a
gunicorn worker never inherits a channel from the master. Unit tests pass
fakes with the same three methods.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.form.v1 import form_pb2_grpc
from crm.record.v1 import record_pb2_grpc
from crm.workflow.v1 import pool_pb2_grpc, workflow_pb2_grpc
from crm_runtime.client import channel as make_channel
from crm_runtime.principal import Principal
from gateway.settings import Settings


class ServiceClient(Protocol):
    """What the gateway needs from a backend service."""

    name: str

    def unary(self, method: str, request: Any, principal: Principal, timeout: float | None = None) -> Any:
        """Call a unary RPC as `principal` (deadline `timeout` s, default the client's); raises grpc.RpcError."""
        ...

    def stream(self, method: str, request: Any, principal: Principal) -> Iterator[Any]:
        """Call a server-streaming RPC as `principal`; the iterator raises grpc.RpcError on failure."""
        ...

    def healthy(self) -> bool:
        """True when the service's standard health check answers SERVING."""
        ...


class GrpcServiceClient:
    """A `ServiceClient` over a lazily opened gRPC channel."""

    def __init__(
        self,
        name: str,
        target: str,
        stub_factory: Callable[[grpc.Channel], Any],
        *,
        timeout: float = 60.0,
        health_timeout: float = 1.0,
    ) -> None:
        self.name = name
        self.target = target
        self._stub_factory = stub_factory
        self._timeout = timeout
        self._health_timeout = health_timeout
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._health: Any = None

    def _ensure(self) -> tuple[Any, Any]:
        # A channel must not cross a fork: (re)open it in the process that uses it.
        with self._lock:
            if self._channel is None or self._pid != os.getpid():
                self._channel = make_channel(self.target)
                self._stub = self._stub_factory(self._channel)
                self._health = health_pb2_grpc.HealthStub(self._channel)
                self._pid = os.getpid()
            return self._stub, self._health

    def _tag(self, error: grpc.RpcError) -> grpc.RpcError:
        # lets the error boundary name the service in a 503 message
        try:
            error.gateway_service = self.name  # type: ignore[attr-defined]
        except AttributeError:
            pass
        return error

    def unary(self, method: str, request: Any, principal: Principal, timeout: float | None = None) -> Any:
        """Call a unary RPC with the principal's metadata."""
        stub, _ = self._ensure()
        try:
            return getattr(stub, method)(request, metadata=principal.to_metadata(), timeout=timeout or self._timeout)
        except grpc.RpcError as exc:
            raise self._tag(exc) from None

    def stream(self, method: str, request: Any, principal: Principal) -> Iterator[Any]:
        """Call a server-streaming RPC with the principal's metadata."""
        stub, _ = self._ensure()
        responses = getattr(stub, method)(request, metadata=principal.to_metadata(), timeout=self._timeout)
        try:
            yield from responses
        except grpc.RpcError as exc:
            raise self._tag(exc) from None

    def healthy(self) -> bool:
        """The standard gRPC health check of the whole server."""
        _, health = self._ensure()
        try:
            resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=self._health_timeout)
        except grpc.RpcError:
            return False
        return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)

    def close(self) -> None:
        """Close the channel (it is reopened on next use)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None


def _default_workflow() -> ServiceClient:
    return GrpcServiceClient("workflow", Settings.workflow_grpc_addr, workflow_pb2_grpc.WorkflowServiceStub)


def _default_pool() -> ServiceClient:
    return GrpcServiceClient("workflow", Settings.workflow_grpc_addr, pool_pb2_grpc.PoolServiceStub)


@dataclass
class Services:
    """The backends the gateway proxies to.

    `workflow` defaults to a client of the default WORKFLOW_GRPC_ADDR (its channel opens on first
    use), so a caller that builds only the form and record backends keeps working.
    """

    form: ServiceClient
    record: ServiceClient
    workflow: ServiceClient = field(default_factory=_default_workflow)
    pool: ServiceClient = field(default_factory=_default_pool)

    @classmethod
    def grpc(
        cls,
        form_addr: str,
        record_addr: str,
        workflow_addr: str = Settings.workflow_grpc_addr,
        *,
        timeout: float = 60.0,
    ) -> Services:
        """gRPC clients for FORM_GRPC_ADDR, RECORD_GRPC_ADDR and WORKFLOW_GRPC_ADDR."""
        return cls(
            form=GrpcServiceClient("form", form_addr, form_pb2_grpc.FormServiceStub, timeout=timeout),
            record=GrpcServiceClient("record", record_addr, record_pb2_grpc.RecordServiceStub, timeout=timeout),
            workflow=GrpcServiceClient(
                "workflow", workflow_addr, workflow_pb2_grpc.WorkflowServiceStub, timeout=timeout
            ),
            pool=GrpcServiceClient("workflow", workflow_addr, pool_pb2_grpc.PoolServiceStub, timeout=timeout),
        )
