"""What the approvals need of the world beyond the engine's ports (domain/ports.py): their own store
(store/approvals.py) and the record service's approval gate (clients.py GrpcRecords; FakeRecords in tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from crm_runtime.principal import Principal
from workflow_service.domain.ports import Doc, RecordPort


class ApprovalRecords(RecordPort, Protocol):
    """The record service with its approval gate (SetRecordLock, ClearRecordLock, SetFieldGuards, ResolveHeldChange)."""

    def set_lock(self, principal: Principal, record_id: str, lock: Mapping[str, Any]) -> Doc:
        """Lock a record ({id, kind, name}); the same lock again is a no-op; another lock is a Conflict."""
        ...

    def clear_lock(self, principal: Principal, record_id: str, lock_id: str) -> None:
        """Clear a record's lock if it is `lock_id`."""
        ...

    def set_guards(self, principal: Principal, form_id: str, owner: str, guards: Sequence[Mapping[str, Any]]) -> int:
        """Replace the guards `owner` keeps on a form; returns how many are kept."""
        ...

    def resolve_change(
        self, principal: Principal, record_id: str, change_id: str, approve: bool, reason: str = ""
    ) -> Doc:
        """Apply (approve) or drop a held change; a Conflict when it is not (any longer) held."""
        ...


class Timers(Protocol):
    """The engine's timer list (store/repository.py): armed items are claimed under a lease by one worker."""

    def arm(
        self, item_id: str, *, kind: str, tenant_id: str, automation_id: str, record_id: str, due_at: datetime,
        payload: Mapping[str, Any], snapshot: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Create or move a pending item."""
        ...

    def disarm(self, item_id: str) -> None:
        """Cancel a pending item."""
        ...


class ApprovalStore(Protocol):
    """The approvals' collections: processes and their versions, instances, tasks."""

    # processes
    def insert_process(self, doc: Doc) -> Doc:
        """A new process at version 1 (and its first version); Conflict for a taken key or template key."""
        ...

    def replace_process(self, tenant_id: str, process_id: str, expected_version: int, doc: Doc) -> bool:
        """Compare-and-set on the version (keeps the new version); False when it moved."""
        ...

    def get_process(self, tenant_id: str, process_id: str) -> Doc | None:
        """One process of the tenant (deleted ones too)."""
        ...

    def process_by_key(self, tenant_id: str, key: str) -> Doc | None:
        """The live process with this key."""
        ...

    def process_version(self, tenant_id: str, process_id: str, version: int) -> Doc | None:
        """A process as it was at `version`."""
        ...

    def list_processes(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """Live processes of a form, or of the tenant."""
        ...

    def template_process(self, tenant_id: str, template_key: str) -> Doc | None:
        """The process a template installed under a key."""
        ...

    def set_process_fields(self, process_id: str, fields: Mapping[str, Any]) -> None:
        """Set bookkeeping fields of a process (not a new version: e.g. guards_synced)."""
        ...

    # instances
    def insert_instance(self, doc: Doc) -> str:
        """ "inserted", "exists" (this _id is there: a repeat), or "open" (the record has another open instance)."""
        ...

    def instance(self, instance_id: str) -> Doc | None:
        """One instance by id (any tenant: callers check it)."""
        ...

    def open_instance(self, tenant_id: str, open_key: str) -> Doc | None:
        """The pending instance holding an open key (a record, or a held change)."""
        ...

    def delete_instance(self, instance_id: str) -> None:
        """Remove an instance that never started (and its tasks)."""
        ...

    def update_instance(self, instance_id: str, seq: int, update: Mapping[str, Any]) -> bool:
        """Compare-and-set on `seq` (the update also increments it); False when another write was first."""
        ...

    def push_event(self, instance_id: str, event: Doc) -> bool:
        """Append a timeline event once per its `key`."""
        ...

    def pull_effect(self, instance_id: str, effect: str) -> None:
        """An effect carried out: off the instance's list."""
        ...

    def put_event(self, doc: Doc) -> None:
        """An outbox document of the workflow's own events (one with the same _id already there: nothing)."""
        ...

    def instances(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        """Instances by id (one bounded read of at most a page)."""
        ...

    def list_submitted(
        self, tenant_id: str, user_id: str, *, before: tuple[datetime, str] | None, size: int
    ) -> list[Doc]:
        """A user's instances, newest first."""
        ...

    # tasks
    def insert_tasks(self, docs: Sequence[Doc]) -> int:
        """Insert tasks; those already there (same _id) are skipped. Returns how many were new."""
        ...

    def task(self, task_id: str) -> Doc | None:
        """One task by id."""
        ...

    def tasks_of(self, instance_id: str, visit: int | None = None) -> list[Doc]:
        """The tasks of an instance (of one visit)."""
        ...

    def cas_task(self, task_id: str, states: Sequence[str], fields: Mapping[str, Any]) -> bool:
        """Set fields of a task while it is in one of `states`; False when it was not."""
        ...

    def close_tasks(self, instance_id: str, visit: int | None, at: datetime) -> int:
        """Cancel the open (pending, queued) tasks of an instance (of one visit)."""
        ...

    def list_box(
        self, tenant_id: str, user_id: str, state: str, *, before: tuple[datetime, str] | None, size: int
    ) -> list[Doc]:
        """A user's tasks in one state, newest first."""
        ...
