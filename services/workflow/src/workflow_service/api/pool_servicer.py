"""PoolServicer: the PoolService RPCs over the pool use cases (JSON text in and out)."""

from __future__ import annotations

from typing import Any

import grpc

from crm.workflow.v1 import pool_pb2, pool_pb2_grpc
from crm_runtime.principal import current_principal
from workflow_service.api.servicer import dumps, loads
from workflow_service.domain.pool_service import PoolUseCases

SERVICE_NAME = pool_pb2.DESCRIPTOR.services_by_name["PoolService"].full_name


class PoolServicer(pool_pb2_grpc.PoolServiceServicer):
    """Implements crm.workflow.v1.PoolService."""

    def __init__(self, uc: PoolUseCases) -> None:
        self.uc = uc

    def register(self, server: grpc.Server) -> None:
        """Add this servicer to a gRPC server."""
        pool_pb2_grpc.add_PoolServiceServicer_to_server(self, server)

    def CreatePool(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        """A new pool."""
        p = current_principal()
        spec = loads(request.pool_json, "pool_json", p.locale, default={})
        return pool_pb2.CreatePoolResponse(pool_json=dumps(self.uc.create(p, spec)))

    def UpdatePool(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Change a pool."""
        p = current_principal()
        patch = loads(request.pool_json, "pool_json", p.locale, default={})
        return pool_pb2.UpdatePoolResponse(
            pool_json=dumps(self.uc.update(p, request.pool_id, patch, request.expected_version))
        )

    def GetPool(self, request: Any, context: Any) -> Any:  # noqa: N802
        """One pool."""
        return pool_pb2.GetPoolResponse(pool_json=dumps(self.uc.get(current_principal(), request.pool_id)))

    def ListPools(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Pools of a form or of the tenant."""
        found = self.uc.list_pools(current_principal(), request.form_id)
        return pool_pb2.ListPoolsResponse(pools_json=[dumps(p) for p in found])

    def DeletePool(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Delete a pool."""
        self.uc.delete(current_principal(), request.pool_id, request.expected_version)
        return pool_pb2.DeletePoolResponse()
