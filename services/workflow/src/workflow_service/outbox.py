"""The workflow's outbox: its own events (`approval.completed`, `pool.updated`, ...) on `workflow.events`.

A change and the envelope it causes are written together (one transaction, or
the envelope first with the change keyed to it, so that a crash leaves either
both or an envelope whose change is re-derivable); `python -m workflow_service
relay` publishes pending envelopes with publisher confirms (mandatory: an event
no consumer is bound for is kept `unrouted`, see crm_runtime.events) and marks
them sent.

    outbox document: {_id: <event id>, tenant_id, event: <envelope>, published: false}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from crm_runtime.envelope import make_envelope
from crm_runtime.events import EventPublisher, OutboxRelay, exchange_name

SOURCE = "workflow"
EXCHANGE = exchange_name(SOURCE)  # workflow.events
ENVELOPE_FIELD = "event"


def outbox_document(event_type: str, tenant_id: str, data: Mapping[str, Any], actor: str = "system") -> dict[str, Any]:
    """The outbox document of one event."""
    envelope = make_envelope(event_type, tenant_id, dict(data), source=SOURCE, actor=actor)
    return {"_id": envelope["id"], "tenant_id": tenant_id, ENVELOPE_FIELD: envelope, "published": False}


def outbox(db: Database[Any]) -> Collection[Any]:
    """The outbox collection of the workflow's database."""
    return db["outbox"]


def build_relay(db: Database[Any], amqp_url: str, *, poll_interval: float = 0.2) -> OutboxRelay:
    """The relay of the workflow's outbox to `workflow.events`."""
    collection = outbox(db)
    OutboxRelay.ensure_indexes(collection)
    return OutboxRelay(
        collection, EventPublisher(amqp_url, EXCHANGE), envelope_field=ENVELOPE_FIELD, poll_interval=poll_interval
    )
