"""The public pools' replica (`crm_record.pools`) and its consumer of the workflow's `pool.*` events.

Pools (members, admins, caps, cooldown) are defined in the workflow service;
the record service needs them where it decides who sees and claims a pool's
records (domain/pool.py). Documents: `_id` "<tenant>|<pool id>" -> {tenant_id,
pool: {id, form_id, name, members: {users, departments}, admins,
max_owned_per_user, max_owned_per_department, max_claims_per_day,
cooldown_days, version}, deleted}. An event carries the whole pool; an older
version than the one kept is ignored (events may arrive out of order).
"""

from __future__ import annotations

from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from crm_runtime import get_logger
from crm_runtime.events import EventConsumer

log = get_logger("record.pools")

WORKFLOW_EXCHANGE = "workflow.events"
POOL_EVENTS = ("pool.updated", "pool.deleted")
POOL_QUEUE = "record.pools"


class PoolReplica:
    """Upserts pools from their events."""

    def __init__(self, db: Database[Any]) -> None:
        self._pools: Collection[Any] = db["pools"]

    def on_event(self, envelope: dict[str, Any]) -> None:
        """Handler of pool.updated / pool.deleted."""
        tenant_id = str(envelope.get("tenant_id") or "")
        pool = dict(envelope.get("data") or {})
        pool_id = str(pool.get("id") or "")
        if not tenant_id or not pool_id:
            return
        version = int(pool.get("version") or 0)
        key = f"{tenant_id}|{pool_id}"
        kept = self._pools.find_one({"_id": key}, {"version": 1})
        if kept is not None and int(kept.get("version") or 0) > version:
            return
        self._pools.replace_one(
            {"_id": key},
            {
                "tenant_id": tenant_id,
                "pool": pool,
                "version": version,
                "deleted": envelope.get("type") == "pool.deleted",
            },
            upsert=True,
        )
        log.info("pool_replicated", tenant_id=tenant_id, pool_id=pool_id, version=version)


def pool_consumer(amqp_url: str, db: Database[Any], *, queue: str = POOL_QUEUE) -> EventConsumer:
    """The durable consumer of the workflow's pool events (one queue shared by every replica)."""
    consumer = EventConsumer(
        amqp_url,
        queue,
        [(WORKFLOW_EXCHANGE, key) for key in POOL_EVENTS],
        PoolReplica(db).on_event,
        db["pools_processed"],
    )
    consumer.ensure_indexes()
    return consumer
