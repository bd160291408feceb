"""The engine tests' world: a real store, the fakes of the other services, the engine and the use cases."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from crm_runtime.principal import Principal
from services.workflow.tests.integration.fakes import FakeForms, FakeRecords
from workflow_service.channels import build_channels
from workflow_service.domain.engine import Engine, EngineSettings
from workflow_service.domain.service import WorkflowUseCases
from workflow_service.store.repository import MongoWorkflowStore

TENANT = "t-wf"
ADMIN = Principal(tenant_id=TENANT, user_id="u-admin", role="admin", roles=("admin",))
SALES = [f"u-sales-{i}" for i in range(5)]


class World:
    """A store, the fakes and the engine wired like server.py wires them."""

    def __init__(self, store: MongoWorkflowStore, records: FakeRecords, *, retries: int = 2) -> None:
        self.store = store
        self.records = records
        self.forms = FakeForms()
        self.clock_now = datetime.now(UTC)
        self.engine = self.new_engine(retries=retries)
        self.uc = WorkflowUseCases(store, self.forms, self.engine, clock=self.clock)

    def clock(self) -> datetime:
        return self.clock_now

    def new_engine(self, *, retries: int = 2, worker: str = "") -> Engine:
        return Engine(
            self.store,
            self.records,
            self.forms,
            self.store,
            build_channels(self.store),
            EngineSettings(tz=ZoneInfo("Asia/Shanghai"), retries=retries, retry_base=60.0, worker=worker),
            clock=self.clock,
        )

    def pump(self, limit: int = 50) -> int:
        """Feed the fake record service's events to the engine until none are left (as the broker would)."""
        handled = 0
        while self.records.events and handled < limit:
            self.engine.handle_event(self.records.events.pop(0))
            handled += 1
        return handled
