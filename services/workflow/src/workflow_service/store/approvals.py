"""The approvals' collections in `crm_workflow` over raw pymongo (domain.approval_ports.ApprovalStore).

Query paths and their indexes (every list reads a bounded index range, in time windows as
store/repository.py's `_newest_first`, with a (time, _id) cursor so that rows of one instant
are neither repeated nor skipped across pages):

    approval_processes          {tenant_id, form_id, enabled} / {tenant_id, key} (unique where set)
                                / {tenant_id, template_key} (unique where set: a template installs once)
    approval_process_versions   _id "<id>:<version>" (an instance keeps the version it started with)
    approval_instances          _id / {tenant_id, submitted_by, submitted_at} (submitted by me)
                                / {tenant_id, open_key} (unique where set: one open approval per record,
                                  one per held change)
    approval_tasks              _id / {tenant_id, user_id, state, box_at} (the inbox: to do = pending,
                                  done, cc) / {instance_id, visit}

Every state change is a compare-and-set `update_one` (a task on its state, an instance on its `seq`),
never findAndModify (SecantusDB answers it by scanning the whole collection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crm_runtime.errors import Conflict
from workflow_service.domain.ports import Doc
from workflow_service.store.repository import WINDOWS, _aware, _aware_doc


def _public(doc: Mapping[str, Any] | None) -> Doc | None:
    if doc is None:
        return None
    out = _aware_doc(dict(doc))
    out["id"] = out.pop("_id")
    return out


def _deep_aware(value: Any) -> Any:
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, list):
        return [_deep_aware(v) for v in value]
    if isinstance(value, dict):
        return {k: _deep_aware(v) for k, v in value.items()}
    return value


class MongoApprovalStore:
    """Processes (and versions), instances and tasks."""

    def __init__(self, db: Database[Any]) -> None:
        self.db = db
        self.processes: Collection[Any] = db["approval_processes"]
        self.versions: Collection[Any] = db["approval_process_versions"]
        self.instances_: Collection[Any] = db["approval_instances"]
        self.tasks: Collection[Any] = db["approval_tasks"]

    def ensure_indexes(self) -> None:
        """Every query path's index (idempotent, at start-up)."""
        self.processes.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("form_id", ASCENDING), ("enabled", ASCENDING)], name="by_form"),
                IndexModel(
                    [("tenant_id", ASCENDING), ("key", ASCENDING)],
                    name="key_once",
                    unique=True,
                    partialFilterExpression={"key": {"$type": "string"}},
                ),
                IndexModel(
                    [("tenant_id", ASCENDING), ("template_key", ASCENDING)],
                    name="template_once",
                    unique=True,
                    partialFilterExpression={"template_key": {"$type": "string"}},
                ),
            ]
        )
        self.instances_.create_indexes(
            [
                IndexModel(
                    [("tenant_id", ASCENDING), ("submitted_by", ASCENDING), ("submitted_at", ASCENDING)],
                    name="submitted",
                ),
                IndexModel(
                    [("tenant_id", ASCENDING), ("open_key", ASCENDING)],
                    name="one_open",
                    unique=True,
                    partialFilterExpression={"open_key": {"$type": "string"}},
                ),
            ]
        )
        self.tasks.create_indexes(
            [
                IndexModel(
                    [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("state", ASCENDING), ("box_at", ASCENDING)],
                    name="inbox",
                ),
                IndexModel([("instance_id", ASCENDING), ("visit", ASCENDING)], name="by_visit"),
            ]
        )

    # ------------------------------------------------------------ processes

    @staticmethod
    def _stored_process(doc: Mapping[str, Any]) -> Doc:
        stored = dict(doc)
        if not stored.get("key") or stored.get("deleted"):
            stored.pop("key", None)  # the unique index holds live keys only
        return stored

    def _keep_version(self, doc: Mapping[str, Any]) -> None:
        version = {k: v for k, v in doc.items() if k != "_id"}
        self.versions.replace_one({"_id": f"{doc['_id']}:{doc['version']}"}, version, upsert=True)

    def insert_process(self, doc: Doc) -> Doc:
        """See ApprovalStore."""
        stored = self._stored_process(doc)
        try:
            self.processes.insert_one(stored)
        except DuplicateKeyError as exc:
            raise Conflict(f"approval process key taken: {exc.details and exc.details.get('keyValue')}") from None
        self._keep_version(stored)
        return _public(stored) or {}

    def replace_process(self, tenant_id: str, process_id: str, expected_version: int, doc: Doc) -> bool:
        """See ApprovalStore."""
        stored = self._stored_process({k: v for k, v in doc.items() if k not in ("id", "_id")})
        stored["version"] = expected_version + 1
        result = self.processes.replace_one(
            {"_id": process_id, "tenant_id": tenant_id, "version": expected_version}, stored
        )
        if result.modified_count != 1:
            return False
        self._keep_version({**stored, "_id": process_id})
        return True

    def get_process(self, tenant_id: str, process_id: str) -> Doc | None:
        """See ApprovalStore."""
        if not process_id:
            return None
        return _public(self.processes.find_one({"_id": process_id, "tenant_id": tenant_id}))

    def process_by_key(self, tenant_id: str, key: str) -> Doc | None:
        """See ApprovalStore."""
        return _public(self.processes.find_one({"tenant_id": tenant_id, "key": key})) if key else None

    def process_version(self, tenant_id: str, process_id: str, version: int) -> Doc | None:
        """See ApprovalStore."""
        doc = self.versions.find_one({"_id": f"{process_id}:{version}"})
        if doc is None or doc.get("tenant_id") != tenant_id:
            return None
        out = _aware_doc(dict(doc))
        out.pop("_id", None)
        out["id"] = process_id
        return out

    def list_processes(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """See ApprovalStore."""
        query: Doc = {"tenant_id": tenant_id}
        if form_id:
            query["form_id"] = form_id
        found = [_public(d) for d in self.processes.find(query) if not d.get("deleted")]
        return sorted(
            (d for d in found if d), key=lambda d: (str(d.get("form_key")), str((d.get("name") or {}).get("zh-CN")))
        )

    def template_process(self, tenant_id: str, template_key: str) -> Doc | None:
        """See ApprovalStore."""
        return _public(self.processes.find_one({"tenant_id": tenant_id, "template_key": template_key}))

    def set_process_fields(self, process_id: str, fields: Mapping[str, Any]) -> None:
        """See ApprovalStore."""
        self.processes.update_one({"_id": process_id}, {"$set": dict(fields)})

    # ------------------------------------------------------------ instances

    def insert_instance(self, doc: Doc) -> str:
        """See ApprovalStore."""
        try:
            self.instances_.insert_one(doc)
            return "inserted"
        except DuplicateKeyError:
            if self.instances_.find_one({"_id": doc["_id"]}, {"_id": 1}) is not None:
                return "exists"
            return "open"

    def instance(self, instance_id: str) -> Doc | None:
        """See ApprovalStore."""
        doc = self.instances_.find_one({"_id": instance_id}) if instance_id else None
        return _deep_aware(dict(doc)) if doc is not None else None

    def open_instance(self, tenant_id: str, open_key: str) -> Doc | None:
        """See ApprovalStore."""
        doc = self.instances_.find_one({"tenant_id": tenant_id, "open_key": open_key})
        return _deep_aware(dict(doc)) if doc is not None else None

    def delete_instance(self, instance_id: str) -> None:
        """See ApprovalStore."""
        self.tasks.delete_many({"instance_id": instance_id})
        self.instances_.delete_one({"_id": instance_id})

    def update_instance(self, instance_id: str, seq: int, update: Mapping[str, Any]) -> bool:
        """See ApprovalStore."""
        change = {k: dict(v) for k, v in update.items()}
        change.setdefault("$inc", {})["seq"] = 1
        result = self.instances_.update_one({"_id": instance_id, "seq": seq}, change)
        return result.modified_count == 1

    def push_event(self, instance_id: str, event: Doc) -> bool:
        """See ApprovalStore."""
        result = self.instances_.update_one(
            {"_id": instance_id, "events.key": {"$ne": event["key"]}}, {"$push": {"events": event}}
        )
        return result.modified_count == 1

    def pull_effect(self, instance_id: str, effect: str) -> None:
        """See ApprovalStore."""
        self.instances_.update_one({"_id": instance_id}, {"$pull": {"effects": effect}})

    def put_event(self, doc: Doc) -> None:
        """See ApprovalStore (the workflow's outbox, published by `python -m workflow_service relay`)."""
        try:
            self.db["outbox"].insert_one(dict(doc))
        except DuplicateKeyError:
            pass

    def instances(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        """See ApprovalStore."""
        if not ids:
            return {}
        found = self.instances_.find({"_id": {"$in": list(dict.fromkeys(ids))}, "tenant_id": tenant_id})
        return {str(d["_id"]): _deep_aware(dict(d)) for d in found}

    def _newest_first(
        self, collection: Collection[Any], query: Doc, field: str, before: tuple[datetime, str] | None, size: int
    ) -> list[Doc]:
        """Up to `size` documents ordered by (field, _id) descending below `before`, read in growing windows."""
        upper = before[0] if before else datetime.now(UTC)
        out: list[Doc] = []
        for index, window in enumerate(WINDOWS):
            lower = upper - window
            if index == 0:
                bounds: Doc = {"$gte": lower, "$lte": upper} if before else {"$gte": lower}
            else:
                bounds = {"$gte": lower, "$lt": upper}
            found = list(collection.find({**query, field: bounds}))
            if before is not None and index == 0:
                found = [d for d in found if (_aware(d.get(field)), str(d["_id"])) < (before[0], before[1])]
            found.sort(key=lambda d: (_aware(d.get(field)), str(d["_id"])), reverse=True)
            out.extend(found)
            if len(out) >= size:
                break
            upper = lower
        return [_deep_aware(dict(d)) for d in out[:size]]

    def list_submitted(
        self, tenant_id: str, user_id: str, *, before: tuple[datetime, str] | None, size: int
    ) -> list[Doc]:
        """See ApprovalStore."""
        query = {"tenant_id": tenant_id, "submitted_by": user_id}
        return self._newest_first(self.instances_, query, "submitted_at", before, size)

    # ------------------------------------------------------------ tasks

    def insert_tasks(self, docs: Sequence[Doc]) -> int:
        """See ApprovalStore."""
        if not docs:
            return 0
        try:
            self.tasks.insert_many([dict(d) for d in docs], ordered=False)
            return len(docs)
        except BulkWriteError as exc:
            return int(exc.details.get("nInserted", 0))

    def task(self, task_id: str) -> Doc | None:
        """See ApprovalStore."""
        doc = self.tasks.find_one({"_id": task_id}) if task_id else None
        return _deep_aware(dict(doc)) if doc is not None else None

    def tasks_of(self, instance_id: str, visit: int | None = None) -> list[Doc]:
        """See ApprovalStore."""
        query: Doc = {"instance_id": instance_id}
        if visit is not None:
            query["visit"] = visit
        else:
            query["visit"] = {"$gte": 0}
        return sorted((_deep_aware(dict(d)) for d in self.tasks.find(query)), key=lambda d: str(d["_id"]))

    def cas_task(self, task_id: str, states: Sequence[str], fields: Mapping[str, Any]) -> bool:
        """See ApprovalStore."""
        result = self.tasks.update_one({"_id": task_id, "state": {"$in": list(states)}}, {"$set": dict(fields)})
        return result.modified_count == 1

    def close_tasks(self, instance_id: str, visit: int | None, at: datetime) -> int:
        """See ApprovalStore."""
        query: Doc = {"instance_id": instance_id, "state": {"$in": ["pending", "queued"]}}
        query["visit"] = visit if visit is not None else {"$gte": 0}
        result = self.tasks.update_many(query, {"$set": {"state": "cancelled", "box_at": at}})
        return int(result.modified_count)

    def list_box(
        self, tenant_id: str, user_id: str, state: str, *, before: tuple[datetime, str] | None, size: int
    ) -> list[Doc]:
        """See ApprovalStore."""
        query = {"tenant_id": tenant_id, "user_id": user_id, "state": state}
        return self._newest_first(self.tasks, query, "box_at", before, size)


def ensure_indexes(db: Database[Any]) -> MongoApprovalStore:
    """The store with its indexes ensured."""
    store = MongoApprovalStore(db)
    store.ensure_indexes()
    return store
