"""Wiring of the workflow service: store, clients, engine, use cases, gRPC server.

Shared by `python -m workflow_service serve`, the worker and the tests, so the
tests exercise the production wiring.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from pymongo.database import Database

from crm_runtime import build_server, get_logger
from crm_runtime.grpc_server import ServerBundle
from crm_runtime.mongo import connect, ping, wait_for_store
from workflow_service.api.approvals_servicer import ApprovalsServicer
from workflow_service.api.pool_servicer import SERVICE_NAME as POOL_SERVICE_NAME
from workflow_service.api.pool_servicer import PoolServicer
from workflow_service.api.servicer import SERVICE_NAME, WorkflowServicer
from workflow_service.channels import build_channels
from workflow_service.clients import GrpcForms, GrpcRecords
from workflow_service.domain.approval_engine import Approvals
from workflow_service.domain.approval_service import ApprovalUseCases
from workflow_service.domain.engine import Engine, EngineSettings
from workflow_service.domain.handover import Handover
from workflow_service.domain.pool_service import PoolUseCases
from workflow_service.domain.ports import FormPort, RecordPort
from workflow_service.domain.service import WorkflowUseCases
from workflow_service.settings import Settings
from workflow_service.store.approvals import MongoApprovalStore
from workflow_service.store.repository import MongoWorkflowStore

log = get_logger("workflow.server")
ALIAS = "workflow"


def connect_store(url: str, db_name: str, *, attempts: int = 60, delay: float = 1.0) -> Database[Any]:
    """Connect and wait until the store answers."""
    db = connect(url, db_name, alias=ALIAS)
    return wait_for_store(db, attempts=attempts, delay=delay)


def load_template(name: str) -> dict[str, Any] | None:
    """A built-in workflow template (templates/<name>.json), or None."""
    if not name.replace("_", "").isalnum():
        return None
    try:
        text = resources.files("workflow_service.templates").joinpath(f"{name}.json").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        return None
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass
class Wiring:
    """The parts every process of the service shares."""

    store: MongoWorkflowStore
    engine: Engine
    records: RecordPort
    forms: FormPort


def build_wiring(
    db: Database[Any],
    settings: Settings,
    *,
    records: RecordPort | None = None,
    forms: FormPort | None = None,
    worker: str = "",
) -> Wiring:
    """Store (indexes ensured), record/form clients, channels and the engine."""
    store = MongoWorkflowStore(db)
    store.ensure_indexes()
    records = records or GrpcRecords(settings.record_grpc_addr)
    forms = forms or GrpcForms(settings.form_grpc_addr)
    channels = build_channels(
        store,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_from=settings.smtp_from,
        smtp_user=settings.smtp_user,
        smtp_password=settings.smtp_password,
        smtp_starttls=settings.smtp_starttls,
    )
    engine = Engine(
        store,
        records,
        forms,
        store,
        channels,
        EngineSettings(
            tz=ZoneInfo(settings.tenant_tz),
            max_depth=settings.max_depth,
            retries=settings.retries,
            retry_base=settings.retry_base,
            worker=worker,
            push_conditions=settings.push_conditions,
        ),
    )
    approval_store = MongoApprovalStore(db)
    approval_store.ensure_indexes()
    engine.approvals = Approvals(approval_store, records, forms, store, channels, store, clock=engine.clock)  # type: ignore[arg-type]
    engine.handover = Handover(store, records, forms, store, transfer_tasks=engine.approvals.transfer_tasks)  # type: ignore[arg-type]
    return Wiring(store, engine, records, forms)


@dataclass
class WorkflowServer:
    """A built (not started) workflow API: the gRPC bundle and its use cases."""

    bundle: ServerBundle
    use_cases: WorkflowUseCases
    wiring: Wiring

    def start(self) -> None:
        """Start serving (tests; `serve` uses serve_forever)."""
        self.bundle.server.start()
        self.bundle.refresh_health()

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving."""
        self.bundle.server.stop(grace).wait()


def build_workflow_server(wiring: Wiring, db: Database[Any], *, port: int, host: str | None = None) -> WorkflowServer:
    """The gRPC server of the API over the wiring."""
    pools = PoolUseCases(wiring.store, wiring.forms)
    approvals = ApprovalUseCases(wiring.engine.approvals)
    use_cases = WorkflowUseCases(
        wiring.store, wiring.forms, wiring.engine, templates=load_template, pools=pools, approvals=approvals
    )
    servicer = WorkflowServicer(use_cases)
    pool_servicer = PoolServicer(pools)
    bundle = build_server(
        port,
        # the approvals' handlers last: they replace WorkflowService's generated ones for their methods
        [servicer.register, pool_servicer.register, ApprovalsServicer(approvals).register],
        [SERVICE_NAME, POOL_SERVICE_NAME],
        checks=[lambda: ping(db)],
        host=host,
    )
    return WorkflowServer(bundle, use_cases, wiring)
