"""The gateway's outbox: user directory events (`user.created`, `user.updated`, `user.deleted`).

The record service keeps a replica of the directory from these events (owners
must exist and be active; an owner moving department re-scopes their records).
A user write and its envelope are stored in one transaction; `python -m
gateway relay` publishes pending envelopes to the `gateway.events` exchange
with publisher confirms (crm_runtime.events.OutboxRelay) and marks them sent.

    outbox document: {_id: <event id>, tenant_id, event: <envelope>, published: false}
    envelope data:   {user_id, username, name, department_id, active, manager_id, roles, email}

The workflow service keeps its own replica too (owners' managers, role members,
department members and e-mail addresses for its assignments and notifications).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crm_runtime.envelope import make_envelope
from crm_runtime.events import EventPublisher, OutboxRelay, exchange_name
from gateway.store import GatewayStore

SOURCE = "gateway"
EXCHANGE = exchange_name(SOURCE)  # gateway.events
ENVELOPE_FIELD = "event"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DELETED = "user.deleted"
# a change to one of these is worth a user.updated
REPLICATED_FIELDS = ("username", "name", "department_id", "active", "manager_id", "roles", "email")


def user_event_data(user: Mapping[str, Any]) -> dict[str, Any]:
    """The directory fields a consumer replicates."""
    return {
        "user_id": str(user["_id"]),
        "username": str(user.get("username") or ""),
        "name": str(user.get("name") or user.get("username") or ""),
        "department_id": str(user.get("department_id") or ""),
        "active": bool(user.get("active", True)),
        "manager_id": str(user.get("manager_id") or ""),
        "roles": [str(r) for r in (user.get("roles") or ([user["role"]] if user.get("role") else []))],
        "email": str(user.get("email") or ""),
    }


def user_event(event_type: str, user: Mapping[str, Any], actor: str = "system") -> dict[str, Any]:
    """The outbox document of a user event."""
    envelope = make_envelope(event_type, str(user["tenant_id"]), user_event_data(user), source=SOURCE, actor=actor)
    return {"_id": envelope["id"], "tenant_id": envelope["tenant_id"], ENVELOPE_FIELD: envelope, "published": False}


# ":2": the events gained manager_id, roles and email (the workflow's replica), so installs that
# backfilled before send every user once more
BACKFILL_FLAG = "user_directory_backfill:2"


def backfill_user_directory(store: GatewayStore) -> int:
    """Once per installation: a user.updated for every existing user, so a new replica fills up.

    The flag is set after the envelopes are written; a crash in between writes
    them again next start, which is harmless (user.updated is a full snapshot).
    """
    if store.meta.find_one({"_id": BACKFILL_FLAG}) is not None:
        return 0
    docs = [user_event(USER_UPDATED, user) for user in store.users.find({}, {"password_hash": 0})]
    for start in range(0, len(docs), 500):
        store.outbox.insert_many(docs[start : start + 500], ordered=False)
    store.meta.update_one({"_id": BACKFILL_FLAG}, {"$set": {"at": datetime.now(UTC), "events": len(docs)}}, upsert=True)
    return len(docs)


def build_relay(store: GatewayStore, amqp_url: str, *, poll_interval: float = 0.2) -> OutboxRelay:
    """The relay of the gateway outbox to `gateway.events`."""
    OutboxRelay.ensure_indexes(store.outbox)
    return OutboxRelay(
        store.outbox, EventPublisher(amqp_url, EXCHANGE), envelope_field=ENVELOPE_FIELD, poll_interval=poll_interval
    )
