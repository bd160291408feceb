"""What the workflow's domain needs of the world, as interfaces: its own store, the record and form
services, the directory replica and the notification channels.

The store (store/repository.py), the gRPC clients (clients/) and the channels
(channels.py) implement them; unit tests use plain fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from crm_runtime.principal import Principal
from workflow_service.domain.definitions import FormInfo

Doc = dict[str, Any]


class RecordPort(Protocol):
    """The record service as an automation uses it (always with a service principal of the tenant)."""

    def get(self, principal: Principal, record_id: str) -> Doc | None:
        """One live record (API shape), or None when it is gone."""
        ...

    def create(self, principal: Principal, form_id: str, data: Mapping[str, Any], owner_id: str, key: str) -> Doc:
        """Create a record; `key` is its idempotency key (a repeat returns the first record)."""
        ...

    def update(
        self, principal: Principal, record_id: str, data: Mapping[str, Any], expected_version: int, owner_id: str = ""
    ) -> Doc:
        """Partial update with optimistic concurrency (and an optional owner change)."""
        ...

    def move_to_pool(
        self, principal: Principal, record_id: str, pool_id: str, reason: str, data: Mapping[str, Any]
    ) -> Doc:
        """Return a record to a public pool (owner cleared), setting `data` fields with the move."""
        ...

    def assign_from_pool(self, principal: Principal, record_id: str, owner_id: str) -> Doc:
        """Give a record that sits in a pool to a user."""
        ...

    def count(self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None) -> int:
        """How many live records of a form match a filter tree (exact up to the service's cap)."""
        ...

    def page(
        self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None, cursor: str, size: int
    ) -> tuple[list[Doc], str]:
        """One page of matching records and the next cursor ("" on the last page)."""
        ...


class FormPort(Protocol):
    """Published forms of a tenant."""

    def published(self, principal: Principal, form_ref: str) -> FormInfo | None:
        """The latest published version of a form (id or key), or None."""
        ...


@dataclass(frozen=True)
class DirectoryUser:
    """A user as the workflow's replica of the gateway's directory holds them."""

    tenant_id: str
    user_id: str
    name: str = ""
    department_id: str = ""
    manager_id: str = ""
    roles: tuple[str, ...] = ()
    email: str = ""
    active: bool = True


class DirectoryPort(Protocol):
    """The replica of users (kept from the gateway's user.* events)."""

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        """One user, or None."""
        ...

    def members(self, tenant_id: str, *, department_id: str = "", role: str = "") -> list[DirectoryUser]:
        """Active users of a department and/or holding a role, ordered by user id."""
        ...


@dataclass(frozen=True)
class Message:
    """One notification to deliver: to whom, what, about which record."""

    tenant_id: str
    recipients: tuple[DirectoryUser, ...]
    title: str
    body: str
    record_id: str = ""
    form_id: str = ""
    key: str = ""  # idempotency key of the action that sends it


@dataclass
class Delivery:
    """What a channel did with a message: sent to whom, or why not."""

    channel: str
    status: str  # "sent", "not_configured", "no_address", "failed"
    detail: str = ""
    sent_to: list[str] = field(default_factory=list)


class Channel(Protocol):
    """A notification channel (in-app, e-mail; WeCom, DingTalk, Feishu, SMS, webhook behind the same shape)."""

    name: str

    @property
    def configured(self) -> bool:
        """False until the channel has what it needs (an SMTP host, a robot key ...)."""
        ...

    def send(self, message: Message) -> Delivery:
        """Deliver; raise only for a failure worth a retry (the server did not answer)."""
        ...


@dataclass(frozen=True)
class TimerItem:
    """A due item claimed by one worker under a lease: an automation's timer for one record, a retry, a schedule."""

    id: str
    kind: str  # "record", "retry", "schedule"
    tenant_id: str
    automation_id: str
    record_id: str
    due_at: datetime
    payload: Mapping[str, Any]


class WorkflowStore(Protocol):
    """The workflow's own database, as the engine uses it (store/repository.py)."""

    # automations
    def automations_for(self, tenant_id: str, form_id: str) -> list[Doc]:
        """Enabled automations whose trigger form, or related form, is `form_id`."""
        ...

    def automation(self, tenant_id: str, automation_id: str) -> Doc | None:
        """One automation (deleted ones included, for runs of an old version)."""
        ...

    def automation_version(self, tenant_id: str, automation_id: str, version: int) -> Doc | None:
        """The definition as it was at `version`."""
        ...

    # runs, dead letters
    def run(self, run_id: str) -> Doc | None:
        """A run by id."""
        ...

    def save_run(self, run: Doc) -> None:
        """Insert or replace a run."""
        ...

    def logged_runs(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these runs are logged already (one read)."""
        ...

    def add_dead_letter(self, letter: Doc) -> None:
        """Record an action that failed after its retries (or an event that failed); once per _id."""
        ...

    # effects
    def add_notifications(self, docs: Sequence[Doc]) -> int:
        """Insert in-app notifications; those already there (same _id) are skipped. Returns how many were new."""
        ...

    def next_pointer(self, pointer_id: str) -> int:
        """Atomically increment a round-robin pointer; returns the value before the increment."""
        ...

    def choice(self, key: str) -> str | None:
        """The assignee an action already chose (idempotency), or None."""
        ...

    def save_choice(self, key: str, tenant_id: str, user_id: str) -> str:
        """Remember an action's assignee; returns the one remembered first if another delivery won."""
        ...

    # timers
    def arm(
        self, item_id: str, *, kind: str, tenant_id: str, automation_id: str, record_id: str, due_at: datetime,
        payload: Mapping[str, Any], snapshot: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Create or move a pending timer item (a fired one is re-armed)."""
        ...

    def disarm(self, item_id: str) -> None:
        """Cancel a pending timer item."""
        ...

    def claim_due(
        self, *, now: datetime, lease_seconds: float, worker: str, automation_id: str = "", kind: str = "",
        match: Mapping[str, Any] | None = None, limit: int = 1,
    ) -> list[TimerItem]:  # fmt: skip
        """Lease up to `limit` due items (each by exactly one worker), optionally of one automation and matching
        a compiled condition; the earliest first."""
        ...

    def finish(self, item_id: str, worker: str, *, due_at: datetime | None = None, state: str = "fired") -> None:
        """Mark a leased item done (unless it was re-armed since it was claimed at `due_at`)."""
        ...

    def skip_due(self, *, now: datetime, automation_id: str, match: Mapping[str, Any]) -> int:
        """Mark due items of an automation that do not match its condition as skipped; returns how many."""
        ...

    def has_pending(self, item_id: str) -> bool:
        """True when the item is armed and not yet fired."""
        ...

    def refresh_snapshot(self, item_id: str, snapshot: Mapping[str, Any]) -> None:
        """Replace a pending item's snapshot of the record (the values its due scan filters)."""
        ...

    def move_pending(self, item_id: str, due_at: datetime) -> None:
        """Move a pending (or fired) item to a new due time; nothing when there is no item."""
        ...

    def schedule_automations(self) -> list[Doc]:
        """Enabled automations with a schedule trigger, every tenant."""
        ...

    def timer_automations(self) -> list[Doc]:
        """Enabled automations with a record timer trigger (date_relative, inactivity), every tenant."""
        ...


class AdminStore(WorkflowStore, Protocol):
    """What the API's use cases need of the store beyond the engine's port (store/repository.py)."""

    def insert_automation(self, doc: Doc) -> Doc:
        """Store a new automation at version 1 (and its first version)."""
        ...

    def replace_automation(self, tenant_id: str, automation_id: str, expected_version: int, doc: Doc) -> bool:
        """Compare-and-set on the version; False when it moved."""
        ...

    def get_automation(self, tenant_id: str, automation_id: str) -> Doc | None:
        """One automation of the tenant."""
        ...

    def list_automations(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """Live automations of a form or of the tenant."""
        ...

    def template_automation(self, tenant_id: str, template_key: str) -> Doc | None:
        """The automation a template installed under a key."""
        ...

    def list_runs(
        self, tenant_id: str, *, automation_id: str = "", record_id: str = "", before: datetime | None, size: int
    ) -> list[Doc]:
        """Runs newest first."""
        ...

    def list_dead_letters(self, tenant_id: str, *, before: datetime | None, size: int, replayed: bool) -> list[Doc]:
        """Dead letters newest first."""
        ...

    def dead_letter(self, tenant_id: str, letter_id: str) -> Doc | None:
        """One dead letter."""
        ...

    def mark_replayed(self, letter_id: str, at: datetime, by: str) -> bool:
        """Compare-and-set the replay mark."""
        ...

    def list_notifications(
        self, tenant_id: str, user_id: str, *, before: datetime | None, size: int, unread_only: bool
    ) -> list[Doc]:
        """A user's notifications newest first."""
        ...

    def unread(self, tenant_id: str, user_id: str) -> int:
        """Unread count."""
        ...

    def mark_read(self, tenant_id: str, user_id: str, ids: Sequence[str] | None) -> int:
        """Mark read; returns how many changed."""
        ...

    def disarm_automation(self, automation_id: str) -> int:
        """Cancel every pending timer item of an automation."""
        ...
