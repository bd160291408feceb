"""The workflow's replica of the user directory, kept from the gateway's `user.*` events.

Assignments need a department's active members and a role's holders, a notify
action an owner's manager and an e-mail address: the workflow reads them from
its own copy (`users` in crm_workflow), never from the gateway's database.
Each user.created / user.updated carries the whole user (user_id, username,
name, department_id, active, manager_id, roles, email); user.deleted marks the
user inactive, so their old records still name them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow_service.domain.ports import DirectoryUser
from workflow_service.store.repository import MongoWorkflowStore

USER_EVENTS = ("user.created", "user.updated", "user.deleted")


def apply_user_event(store: MongoWorkflowStore, envelope: Mapping[str, Any]) -> None:
    """Upsert the user an event is about (a delete makes them inactive)."""
    tenant_id = str(envelope.get("tenant_id") or "")
    data = envelope.get("data") or {}
    user_id = str(data.get("user_id") or "")
    if not tenant_id or not user_id:
        return
    before = store.user(tenant_id, user_id)
    deleted = envelope.get("type") == "user.deleted"
    roles = data.get("roles")
    store.put_user(
        DirectoryUser(
            tenant_id=tenant_id,
            user_id=user_id,
            name=str(data.get("name") or data.get("username") or (before.name if before else "")),
            department_id=str(data.get("department_id") or ""),
            manager_id=str(data.get("manager_id") or ""),
            roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (before.roles if before else ()),
            email=str(data.get("email") or ""),
            active=False if deleted else bool(data.get("active", True)),
        )
    )
