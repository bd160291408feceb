"""The user replica (`crm_record.directory`) and its consumer of the gateway's `user.*` events.

Documents: `_id` "tenant|user_id" -> {tenant_id, user_id, department_id,
active, name, at}. The consumer (durable queue `record.directory`, bound to
`gateway.events` for user.created, user.updated, user.deleted; data {user_id,
username, name, department_id, active}) upserts them. When a user's
department changes, every record they own gets the new `department_id` and the
matching `d:` acl token: two update_many through the (tenant_id, owner_id)
index. That is a directory change, not a record change: no version bump, no
history entry, no event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

from crm_runtime import get_logger
from crm_runtime.events import EventConsumer
from record_service.domain.directory import DirectoryUser

log = get_logger("record.directory")

GATEWAY_EXCHANGE = "gateway.events"
USER_EVENTS = ("user.created", "user.updated", "user.deleted")
DIRECTORY_QUEUE = "record.directory"


def directory_id(tenant_id: str, user_id: str) -> str:
    """_id of a replica document."""
    return f"{tenant_id}|{user_id}"


class MongoDirectory:
    """The Directory over the `directory` collection, and the writer that keeps records' scope in step."""

    def __init__(self, db: Database[Any]) -> None:
        self._users: Collection[Any] = db["directory"]
        self._records: Collection[Any] = db["records"]

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        """See Directory (one read by _id)."""
        if not tenant_id or not user_id:
            return None
        doc = self._users.find_one({"_id": directory_id(tenant_id, user_id)})
        if doc is None:
            return None
        return DirectoryUser(
            tenant_id=str(doc.get("tenant_id") or ""),
            user_id=str(doc.get("user_id") or ""),
            department_id=str(doc.get("department_id") or ""),
            active=bool(doc.get("active", True)),
            name=str(doc.get("name") or ""),
        )

    def put(self, tenant_id: str, user_id: str, department_id: str = "", *, active: bool = True, name: str = "") -> int:
        """Upsert a user; when their department changed, move the scope of the records they own.

        Returns the records whose department was rewritten.
        """
        before = self.user(tenant_id, user_id)
        self._users.update_one(
            {"_id": directory_id(tenant_id, user_id)},
            {
                "$set": {
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "department_id": department_id,
                    "active": active,
                    "name": name,
                    "at": datetime.now(UTC),
                }
            },
            upsert=True,
        )
        if before is not None and before.department_id == department_id:
            return 0
        return self.move_owned_records(tenant_id, user_id, department_id)

    def move_owned_records(self, tenant_id: str, user_id: str, department_id: str) -> int:
        """department_id and the `d:` acl token of every record `user_id` owns follow their department."""
        owned = {"tenant_id": tenant_id, "owner_id": user_id}
        old = {str(d.get("department_id") or "") for d in self._records.find(owned, {"department_id": 1})}
        stale = sorted(f"d:{dept}" for dept in old if dept and dept != department_id)
        if not stale and old <= {department_id}:
            return 0
        update: dict[str, Any] = {"$set": {"department_id": department_id}}
        if stale:
            update["$pull"] = {"acl": {"$in": stale}}
        moved = self._records.update_many(owned, update).modified_count
        if department_id:
            self._records.update_many(owned, {"$addToSet": {"acl": f"d:{department_id}"}})
        log.info("owner_department_moved", tenant_id=tenant_id, user_id=user_id, records=moved)
        return moved

    def on_event(self, envelope: dict[str, Any]) -> None:
        """Handler of user.created / user.updated / user.deleted."""
        tenant_id = str(envelope.get("tenant_id") or "")
        data = envelope.get("data") or {}
        user_id = str(data.get("user_id") or "")
        if not tenant_id or not user_id:
            return
        kind = str(envelope.get("type") or "")
        if kind == "user.deleted":
            before = self.user(tenant_id, user_id)
            dept = before.department_id if before is not None else str(data.get("department_id") or "")
            name = before.name if before is not None else str(data.get("name") or "")
            self.put(tenant_id, user_id, dept, active=False, name=name)
            return
        self.put(
            tenant_id,
            user_id,
            str(data.get("department_id") or ""),
            active=bool(data.get("active", True)),
            name=str(data.get("name") or data.get("username") or ""),
        )


def directory_consumer(
    amqp_url: str, directory: MongoDirectory, db: Database[Any], *, queue: str = DIRECTORY_QUEUE
) -> EventConsumer:
    """The durable consumer of the gateway's user events (one queue shared by every replica)."""
    consumer = EventConsumer(
        amqp_url,
        queue,
        [(GATEWAY_EXCHANGE, key) for key in USER_EVENTS],
        directory.on_event,
        db["directory_processed"],
    )
    consumer.ensure_indexes()
    return consumer
