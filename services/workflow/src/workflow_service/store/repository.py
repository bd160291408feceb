"""The workflow's database (`crm_workflow`) over raw pymongo: automations and their versions, runs, dead
letters, notifications, round-robin pointers and choices, timer items and the directory replica.

Query paths and their indexes (every list reads a bounded index range: the local store reads a whole
range before it applies a limit, so pages are read in time windows, see `_newest_first`):

    automations          {tenant_id, form_id, enabled} / {tenant_id, related_form_id} / {timer, enabled}
                         / {tenant_id, template_key} (unique where set: a template installs once)
    automation_versions  _id "<id>:<version>"
    runs                 {tenant_id, automation_id, started_at} / {tenant_id, record_id, started_at}
    dead_letters         {tenant_id, created_at}
    notifications        {tenant_id, user_id, created_at} / {tenant_id, user_id, read}
    pointers, choices    _id (choices expire after 30 days)
    timers               {automation_id, kind, state, due_at} / {kind, state, due_at}
    users                _id "<tenant>|<user>" / {tenant_id, department_id} / {tenant_id, roles}

Leases and counters are compare-and-set `update_one`s on `_id` (SecantusDB answers findAndModify by
scanning the whole collection, see record_service.store.repository): a worker reads due candidates
through the index, then claims one with `update_one({_id, state, lease_until <= now, due_at})` —
only one worker's update matches.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crm_runtime.errors import Conflict
from workflow_service.domain.ports import DirectoryUser, Doc, TimerItem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SNAPSHOT_KEYS = ("data", "owner_id", "department_id", "created_by", "created_at", "updated_at")
TIMER_KINDS = ("date_relative", "inactivity")
CANDIDATES = 20  # due items read per claim attempt
WINDOWS = (
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=7),
    timedelta(days=31),
    timedelta(days=366),
    timedelta(days=366 * 10),
)


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _aware_doc(doc: Doc) -> Doc:
    return {k: _aware(v) for k, v in doc.items()}


class MongoWorkflowStore:
    """Everything the workflow service keeps, one collection per concept."""

    def __init__(self, db: Database[Any]) -> None:
        self.db = db
        self.automations: Collection[Any] = db["automations"]
        self.versions: Collection[Any] = db["automation_versions"]
        self.runs: Collection[Any] = db["runs"]
        self.dead_letters: Collection[Any] = db["dead_letters"]
        self.notifications: Collection[Any] = db["notifications"]
        self.pointers: Collection[Any] = db["pointers"]
        self.choices: Collection[Any] = db["choices"]
        self.timers: Collection[Any] = db["timers"]
        self.users: Collection[Any] = db["users"]
        self.pools: Collection[Any] = db["pools"]
        self.outbox: Collection[Any] = db["outbox"]
        self.jobs: Collection[Any] = db["handover_jobs"]
        self.meta: Collection[Any] = db["meta"]

    def ensure_indexes(self) -> None:
        """Every query path's index (idempotent, at start-up)."""
        self.automations.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("form_id", ASCENDING), ("enabled", ASCENDING)], name="by_form"),
                IndexModel([("tenant_id", ASCENDING), ("related_form_id", ASCENDING)], name="by_related_form"),
                IndexModel([("timer", ASCENDING), ("enabled", ASCENDING)], name="timer_automations"),
                IndexModel(
                    [("tenant_id", ASCENDING), ("template_key", ASCENDING)],
                    name="template_once",
                    unique=True,
                    partialFilterExpression={"template_key": {"$type": "string"}},
                ),
            ]
        )
        self.runs.create_indexes(
            [
                IndexModel(
                    [("tenant_id", ASCENDING), ("automation_id", ASCENDING), ("started_at", ASCENDING)],
                    name="by_automation",
                ),
                IndexModel(
                    [("tenant_id", ASCENDING), ("record_id", ASCENDING), ("started_at", ASCENDING)], name="by_record"
                ),
            ]
        )
        self.dead_letters.create_index([("tenant_id", ASCENDING), ("created_at", ASCENDING)], name="by_time")
        self.notifications.create_indexes(
            [
                IndexModel(
                    [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("created_at", ASCENDING)], name="by_user"
                ),
                IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING), ("read", ASCENDING)], name="unread"),
            ]
        )
        self.choices.create_index([("at", ASCENDING)], expireAfterSeconds=30 * 86400, name="choices_ttl")
        self.timers.create_indexes(
            [
                IndexModel(
                    [("automation_id", ASCENDING), ("kind", ASCENDING), ("state", ASCENDING), ("due_at", ASCENDING)],
                    name="due_by_automation",
                ),
                IndexModel([("kind", ASCENDING), ("state", ASCENDING), ("due_at", ASCENDING)], name="due_by_kind"),
            ]
        )
        self.pools.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("watch_forms", ASCENDING)], name="by_watched_form"),
                IndexModel(
                    [("tenant_id", ASCENDING), ("template_key", ASCENDING)],
                    name="pool_template_once",
                    unique=True,
                    partialFilterExpression={"template_key": {"$type": "string"}},
                ),
            ]
        )
        self.users.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("department_id", ASCENDING)], name="by_department"),
                IndexModel([("tenant_id", ASCENDING), ("roles", ASCENDING)], name="by_role"),
            ]
        )

    # ------------------------------------------------------------ automations

    @staticmethod
    def _public(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        out = _aware_doc(dict(doc))
        out["id"] = out.pop("_id")
        return out

    def definitions_revision(self, tenant_id: str) -> int:
        """A number that moves whenever an automation or a pool of the tenant is written (caches check it)."""
        doc = self.meta.find_one({"_id": f"rev:{tenant_id}"})
        return int(doc.get("n") or 0) if doc else 0

    def _bump(self, tenant_id: str) -> None:
        self.meta.update_one({"_id": f"rev:{tenant_id}"}, {"$inc": {"n": 1}}, upsert=True)

    def insert_automation(self, doc: Doc) -> Doc:
        """Store a new automation (version 1) and its first version; DuplicateKeyError for a template twice."""
        stored = {**doc, "timer": (doc.get("trigger") or {}).get("type") in TIMER_KINDS}
        stored["related_form_id"] = (doc.get("trigger") or {}).get("related_form_id")
        try:
            self.automations.insert_one(stored)
        except DuplicateKeyError:
            raise Conflict(f"automation of template {stored.get('template_key')} exists") from None
        self._keep_version(stored)
        self._bump(str(stored["tenant_id"]))
        return self._public(stored) or {}

    def _keep_version(self, doc: Doc) -> None:
        version = {k: v for k, v in doc.items() if k != "_id"}
        self.versions.replace_one({"_id": f"{doc['_id']}:{doc['version']}"}, version, upsert=True)

    def replace_automation(self, tenant_id: str, automation_id: str, expected_version: int, doc: Doc) -> bool:
        """Compare-and-set on the version: False when it moved (or the automation is gone)."""
        stored = {**doc, "timer": (doc.get("trigger") or {}).get("type") in TIMER_KINDS}
        stored["related_form_id"] = (doc.get("trigger") or {}).get("related_form_id")
        stored["version"] = expected_version + 1
        result = self.automations.replace_one(
            {"_id": automation_id, "tenant_id": tenant_id, "version": expected_version}, stored
        )
        if result.modified_count != 1:
            return False
        self._keep_version({**stored, "_id": automation_id})
        self._bump(tenant_id)
        return True

    def get_automation(self, tenant_id: str, automation_id: str) -> Doc | None:
        """One automation of the tenant (deleted ones too), API-shaped."""
        return self._public(self.automations.find_one({"_id": automation_id, "tenant_id": tenant_id}))

    def list_automations(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """Live automations of a form (or of the tenant), by name."""
        query: Doc = {"tenant_id": tenant_id}
        if form_id:
            query["form_id"] = form_id
        found = [self._public(d) for d in self.automations.find(query) if not d.get("deleted")]
        return sorted((d for d in found if d), key=lambda d: (str(d.get("form_key")), str(d["name"].get("zh-CN"))))

    def template_automation(self, tenant_id: str, template_key: str) -> Doc | None:
        """The automation a template installed under `template_key`, if any."""
        return self._public(self.automations.find_one({"tenant_id": tenant_id, "template_key": template_key}))

    # WorkflowStore (the engine's port)

    def automations_for(self, tenant_id: str, form_id: str) -> list[Doc]:
        """See WorkflowStore."""
        own = self.automations.find({"tenant_id": tenant_id, "form_id": form_id, "enabled": True})
        related = self.automations.find({"tenant_id": tenant_id, "related_form_id": form_id})
        seen: dict[str, Doc] = {}
        for doc in [*own, *related]:
            if doc.get("enabled") and not doc.get("deleted"):
                seen[str(doc["_id"])] = self._public(doc) or {}
        return list(seen.values())

    def automation(self, tenant_id: str, automation_id: str) -> Doc | None:
        """See WorkflowStore."""
        return self.get_automation(tenant_id, automation_id)

    def automation_version(self, tenant_id: str, automation_id: str, version: int) -> Doc | None:
        """See WorkflowStore."""
        doc = self.versions.find_one({"_id": f"{automation_id}:{version}"})
        if doc is None or doc.get("tenant_id") != tenant_id:
            return None
        out = _aware_doc(dict(doc))
        out.pop("_id", None)
        out["id"] = automation_id
        return out

    def timer_automations(self) -> list[Doc]:
        """See WorkflowStore."""
        return [
            self._public(d) or {}
            for d in self.automations.find({"timer": True, "enabled": True})
            if not d.get("deleted")
        ]

    def schedule_automations(self) -> list[Doc]:
        """Enabled scheduled automations of every tenant (their next firing is armed at worker start)."""
        found = self.automations.find({"tenant_id": {"$gt": ""}, "trigger.type": "schedule"})
        return [self._public(d) or {} for d in found if d.get("enabled") and not d.get("deleted")]

    # ------------------------------------------------------------ runs, dead letters

    def run(self, run_id: str) -> Doc | None:
        """See WorkflowStore."""
        doc = self.runs.find_one({"_id": run_id})
        return _aware_doc(doc) if doc is not None else None

    def logged_runs(self, run_ids: Sequence[str]) -> set[str]:
        """See WorkflowStore (by _id, in chunks)."""
        out: set[str] = set()
        for start in range(0, len(run_ids), 200):
            out |= {
                str(d["_id"]) for d in self.runs.find({"_id": {"$in": list(run_ids[start : start + 200])}}, {"_id": 1})
            }
        return out

    def save_run(self, run: Doc) -> None:
        """See WorkflowStore."""
        self.runs.replace_one({"_id": run["_id"]}, run, upsert=True)

    def _newest_first(
        self, collection: Collection[Any], query: Doc, field: str, before: datetime | None, size: int
    ) -> list[Doc]:
        """Up to `size` documents before `before`, newest first, read in growing time windows (bounded ranges).

        Without `before` the first window is open above (a clock a little ahead is still read).
        """
        upper = before or datetime.now(UTC)
        out: list[Doc] = []
        for index, window in enumerate(WINDOWS):
            lower = upper - window
            bounds: Doc = {"$gte": lower} if before is None and index == 0 else {"$gte": lower, "$lt": upper}
            found = list(collection.find({**query, field: bounds}))
            found.sort(key=lambda d: (_aware(d.get(field)), str(d["_id"])), reverse=True)
            out.extend(found)
            if len(out) >= size:
                break
            upper = lower
        return [_aware_doc(d) for d in out[:size]]

    def list_runs(
        self, tenant_id: str, *, automation_id: str = "", record_id: str = "", before: datetime | None, size: int
    ) -> list[Doc]:
        """Runs of an automation or of a record, newest first."""
        query: Doc = {"tenant_id": tenant_id}
        if automation_id:
            query["automation_id"] = automation_id
        if record_id:
            query["record_id"] = record_id
        return self._newest_first(self.runs, query, "started_at", before, size)

    def add_dead_letter(self, letter: Doc) -> None:
        """See WorkflowStore."""
        self.dead_letters.update_one({"_id": letter["_id"]}, {"$setOnInsert": letter}, upsert=True)

    def list_dead_letters(self, tenant_id: str, *, before: datetime | None, size: int, replayed: bool) -> list[Doc]:
        """Dead letters of the tenant, newest first (replayed ones only when asked)."""
        rows = self._newest_first(self.dead_letters, {"tenant_id": tenant_id}, "created_at", before, size * 4)
        return [r for r in rows if replayed or not r.get("replayed_at")][:size]

    def dead_letter(self, tenant_id: str, letter_id: str) -> Doc | None:
        """One dead letter of the tenant."""
        doc = self.dead_letters.find_one({"_id": letter_id, "tenant_id": tenant_id})
        return _aware_doc(doc) if doc is not None else None

    def mark_replayed(self, letter_id: str, at: datetime, by: str) -> bool:
        """Compare-and-set: False when another replay was first."""
        result = self.dead_letters.update_one(
            {"_id": letter_id, "replayed_at": None}, {"$set": {"replayed_at": at, "replayed_by": by}}
        )
        return result.modified_count == 1

    # ------------------------------------------------------------ notifications

    def add_notifications(self, docs: Sequence[Doc]) -> int:
        """See WorkflowStore."""
        if not docs:
            return 0
        try:
            self.notifications.insert_many(list(docs), ordered=False)
            return len(docs)
        except BulkWriteError as exc:
            return int(exc.details.get("nInserted", 0))

    def list_notifications(
        self, tenant_id: str, user_id: str, *, before: datetime | None, size: int, unread_only: bool
    ) -> list[Doc]:
        """A user's notifications, newest first."""
        query: Doc = {"tenant_id": tenant_id, "user_id": user_id}
        if unread_only:
            rows = list(self.notifications.find({**query, "read": False}))
            rows.sort(key=lambda d: (_aware(d.get("created_at")), str(d["_id"])), reverse=True)
            if before is not None:
                rows = [r for r in rows if _aware(r.get("created_at")) < before]
            return [_aware_doc(r) for r in rows[:size]]
        return self._newest_first(self.notifications, query, "created_at", before, size)

    def unread(self, tenant_id: str, user_id: str) -> int:
        """How many of a user's notifications are unread."""
        return int(self.notifications.count_documents({"tenant_id": tenant_id, "user_id": user_id, "read": False}))

    def mark_read(self, tenant_id: str, user_id: str, ids: Sequence[str] | None) -> int:
        """Mark some (or, with None, all) of a user's notifications read; returns how many changed."""
        query: Doc = {"tenant_id": tenant_id, "user_id": user_id, "read": False}
        if ids is not None:
            query["_id"] = {"$in": list(ids)}
        return int(self.notifications.update_many(query, {"$set": {"read": True}}).modified_count)

    # ------------------------------------------------------------ assignment

    def next_pointer(self, pointer_id: str) -> int:
        """See WorkflowStore (a compare-and-set loop on the pointer document)."""
        while True:
            doc = self.pointers.find_one({"_id": pointer_id})
            if doc is None:
                try:
                    self.pointers.insert_one({"_id": pointer_id, "n": 1})
                    return 0
                except DuplicateKeyError:
                    continue
            current = int(doc.get("n") or 0)
            if self.pointers.update_one({"_id": pointer_id, "n": current}, {"$set": {"n": current + 1}}).modified_count:
                return current

    def choice(self, key: str) -> str | None:
        """See WorkflowStore."""
        doc = self.choices.find_one({"_id": key})
        return str(doc["user_id"]) if doc else None

    def save_choice(self, key: str, tenant_id: str, user_id: str) -> str:
        """See WorkflowStore."""
        try:
            self.choices.insert_one({"_id": key, "tenant_id": tenant_id, "user_id": user_id, "at": datetime.now(UTC)})
            return user_id
        except DuplicateKeyError:
            return self.choice(key) or user_id

    # ------------------------------------------------------------ timers

    def arm(
        self,
        item_id: str,
        *,
        kind: str,
        tenant_id: str,
        automation_id: str,
        record_id: str,
        due_at: datetime,
        payload: Mapping[str, Any],
        snapshot: Mapping[str, Any] | None = None,
    ) -> None:
        """See WorkflowStore."""
        fields: Doc = {
            "kind": kind,
            "tenant_id": tenant_id,
            "automation_id": automation_id,
            "record_id": record_id,
            "due_at": due_at,
            "payload": dict(payload),
            "state": "pending",
            "lease_until": EPOCH,
            "armed_at": datetime.now(UTC),
        }
        update: Doc = {"$set": fields}
        if snapshot is not None:
            fields.update({k: snapshot[k] for k in SNAPSHOT_KEYS if k in snapshot})
            missing = {k: "" for k in SNAPSHOT_KEYS if k not in snapshot}
            if missing:
                update["$unset"] = missing
        self.timers.update_one({"_id": item_id}, update, upsert=True)

    def disarm(self, item_id: str) -> None:
        """See WorkflowStore."""
        self.timers.update_one({"_id": item_id, "state": "pending"}, {"$set": {"state": "cancelled"}})

    def has_pending(self, item_id: str) -> bool:
        """See WorkflowStore."""
        return self.timers.find_one({"_id": item_id, "state": "pending"}, {"_id": 1}) is not None

    def refresh_snapshot(self, item_id: str, snapshot: Mapping[str, Any]) -> None:
        """See WorkflowStore."""
        fields = {k: snapshot[k] for k in SNAPSHOT_KEYS if k in snapshot}
        update: Doc = {"$set": fields}
        missing = {k: "" for k in SNAPSHOT_KEYS if k not in snapshot}
        if missing:
            update["$unset"] = missing
        self.timers.update_one({"_id": item_id, "state": "pending"}, update)

    def move_pending(self, item_id: str, due_at: datetime) -> None:
        """See WorkflowStore."""
        self.timers.update_one(
            {"_id": item_id, "state": {"$in": ["pending", "fired", "skipped"]}},
            {"$set": {"due_at": due_at, "state": "pending", "lease_until": EPOCH}},
        )

    def claim_due(
        self,
        *,
        now: datetime,
        lease_seconds: float,
        worker: str,
        automation_id: str = "",
        kind: str = "",
        match: Mapping[str, Any] | None = None,
        limit: int = 1,
    ) -> list[TimerItem]:
        """See WorkflowStore: the due range read once through its index, then leases taken in batches.

        One read of the due items' ids (the local store reads a whole range before any limit, so reading
        it once per sweep rather than once per item keeps a pass linear), then for each chunk of 200 an
        `update_many` that sets this worker's lease token where the item is still pending and not leased,
        and a read of which ones carry the token: each item is leased by exactly one worker. `match` (the
        compiled condition) is added to the range read: cheap on MongoDB, a collection scan on SecantusDB
        (an index is used only when one covers every predicate), so the engine passes it only when told
        the store filters residual predicates well.
        """
        query: Doc = {"state": "pending", "due_at": {"$lte": now}}
        if kind:
            query["kind"] = kind
        if automation_id:
            query["automation_id"] = automation_id
        full = {"$and": [query, dict(match)]} if match else query
        due = [
            d["_id"]
            for d in self.timers.find(full, {"_id": 1, "lease_until": 1})
            if _aware(d.get("lease_until") or EPOCH) <= now
        ]
        token = uuid.uuid4().hex
        claimed: list[TimerItem] = []
        for start in range(0, len(due), 200):
            if len(claimed) >= limit:
                break
            chunk = due[start : start + min(200, limit - len(claimed))]
            self.timers.update_many(
                {"_id": {"$in": chunk}, "state": "pending", "lease_until": {"$lte": now}},
                {"$set": {"lease_until": now + timedelta(seconds=lease_seconds), "worker": worker, "lease": token}},
            )
            for doc in self.timers.find({"_id": {"$in": chunk}}, {k: 0 for k in SNAPSHOT_KEYS}):
                if doc.get("lease") != token or doc.get("state") != "pending":
                    continue
                claimed.append(
                    TimerItem(
                        id=str(doc["_id"]),
                        kind=str(doc.get("kind")),
                        tenant_id=str(doc.get("tenant_id")),
                        automation_id=str(doc.get("automation_id")),
                        record_id=str(doc.get("record_id") or ""),
                        due_at=_aware(doc["due_at"]),
                        payload=dict(doc.get("payload") or {}),
                    )
                )
        claimed.sort(key=lambda item: item.due_at)
        return claimed

    def finish(self, item_id: str, worker: str, *, due_at: datetime | None = None, state: str = "fired") -> None:
        """See WorkflowStore: only the worker holding the lease, and only if the item was not re-armed since."""
        query: Doc = {"_id": item_id, "worker": worker, "state": "pending"}
        if due_at is not None:
            query["due_at"] = due_at
        self.timers.update_one(query, {"$set": {"state": state, "fired_at": datetime.now(UTC)}})

    def skip_due(self, *, now: datetime, automation_id: str, match: Mapping[str, Any]) -> int:
        """See WorkflowStore: due items of an automation its compiled condition leaves out, marked skipped
        (the ids read through the due index, the condition as a `$nor`; for a store that filters well)."""
        query = {"automation_id": automation_id, "kind": "record", "state": "pending", "due_at": {"$lte": now}}
        ids = [d["_id"] for d in self.timers.find({"$and": [query, {"$nor": [dict(match)]}]}, {"_id": 1})]
        skipped = 0
        for start in range(0, len(ids), 200):
            skipped += self.timers.update_many(
                {"_id": {"$in": ids[start : start + 200]}, "state": "pending", "lease_until": {"$lte": now}},
                {"$set": {"state": "skipped"}},
            ).modified_count
        return skipped

    def disarm_automation(self, automation_id: str) -> int:
        """See AdminStore (a disabled, changed or deleted automation's armed items)."""
        found = self.timers.update_many(
            {"automation_id": automation_id, "state": "pending"}, {"$set": {"state": "cancelled"}}
        )
        return int(found.modified_count)

    def pending_timers(self, automation_id: str) -> int:
        """How many items of an automation are armed (tests, metrics)."""
        return int(self.timers.count_documents({"automation_id": automation_id, "state": "pending"}))

    # ------------------------------------------------------------ pools

    def save_pool(self, doc: Doc, event: Doc, *, expected_version: int = 0) -> bool:
        """Insert (expected_version 0) or compare-and-set a pool, with its outbox event, in one transaction."""
        recycle = doc.get("recycle") or {}
        stored = {
            **doc,
            "watch_forms": sorted({str(doc["form_id"]), *(str(a["form_id"]) for a in recycle.get("activity") or [])}),
        }

        def write(session: Any) -> bool:
            if expected_version:
                done = self.pools.replace_one(
                    {"_id": doc["_id"], "tenant_id": doc["tenant_id"], "version": expected_version},
                    stored,
                    session=session,
                )
                if done.modified_count != 1:
                    return False
            else:
                try:
                    self.pools.insert_one(stored, session=session)
                except DuplicateKeyError:
                    raise Conflict(f"pool of template {doc.get('template_key')} exists") from None
            self.outbox.insert_one(event, session=session)
            return True

        with self.db.client.start_session() as session:
            saved = bool(session.with_transaction(write))
        if saved:
            self._bump(str(doc["tenant_id"]))
        return saved

    def get_pool(self, tenant_id: str, pool_id: str) -> Doc | None:
        """One pool of the tenant, API-shaped (deleted ones included)."""
        return self._public(self.pools.find_one({"_id": pool_id, "tenant_id": tenant_id}))

    def list_pools(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """Live pools of a form (or of the tenant)."""
        query: Doc = {"tenant_id": tenant_id}
        if form_id:
            query["watch_forms"] = form_id
        found = [self._public(d) for d in self.pools.find(query) if not d.get("deleted")]
        return sorted((d for d in found if d and (not form_id or d["form_id"] == form_id)), key=lambda d: d["name"])

    def pools_watching(self, tenant_id: str, form_id: str) -> list[Doc]:
        """Enabled pools whose form, or one of whose activity forms, is `form_id` (the engine's events)."""
        found = self.pools.find({"tenant_id": tenant_id, "watch_forms": form_id})
        return [self._public(d) or {} for d in found if d.get("enabled", True) and not d.get("deleted")]

    def template_pool(self, tenant_id: str, template_key: str) -> Doc | None:
        """The pool a template installed under `template_key`, if any."""
        return self._public(self.pools.find_one({"tenant_id": tenant_id, "template_key": template_key}))

    # ------------------------------------------------------------ handover jobs

    def save_job(self, job: Doc) -> None:
        """Insert or replace a handover job (by _id)."""
        self.jobs.replace_one({"_id": job["_id"]}, job, upsert=True)

    def job(self, tenant_id: str, job_id: str) -> Doc | None:
        """One handover job of the tenant."""
        doc = self.jobs.find_one({"_id": job_id, "tenant_id": tenant_id})
        return _aware_doc(doc) if doc is not None else None

    # ------------------------------------------------------------ directory replica

    def put_user(self, user: DirectoryUser) -> None:
        """Upsert a user of the replica."""
        self.users.replace_one(
            {"_id": f"{user.tenant_id}|{user.user_id}"},
            {
                "tenant_id": user.tenant_id,
                "user_id": user.user_id,
                "name": user.name,
                "department_id": user.department_id,
                "manager_id": user.manager_id,
                "roles": list(user.roles),
                "email": user.email,
                "active": user.active,
                "at": datetime.now(UTC),
            },
            upsert=True,
        )

    @staticmethod
    def _user(doc: Doc) -> DirectoryUser:
        return DirectoryUser(
            tenant_id=str(doc.get("tenant_id") or ""),
            user_id=str(doc.get("user_id") or ""),
            name=str(doc.get("name") or ""),
            department_id=str(doc.get("department_id") or ""),
            manager_id=str(doc.get("manager_id") or ""),
            roles=tuple(str(r) for r in doc.get("roles") or ()),
            email=str(doc.get("email") or ""),
            active=bool(doc.get("active", True)),
        )

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        """See DirectoryPort."""
        if not tenant_id or not user_id:
            return None
        doc = self.users.find_one({"_id": f"{tenant_id}|{user_id}"})
        return self._user(doc) if doc else None

    def members(self, tenant_id: str, *, department_id: str = "", role: str = "") -> list[DirectoryUser]:
        """See DirectoryPort."""
        if not department_id and not role:
            return []
        query: Doc = {"tenant_id": tenant_id}
        if department_id:
            query["department_id"] = department_id
        docs = self.users.find(query) if department_id else self.users.find({"tenant_id": tenant_id, "roles": role})
        users = [self._user(d) for d in docs]
        return sorted(
            (u for u in users if u.active and (not role or role in u.roles)),
            key=lambda u: u.user_id,
        )


def ensure_indexes(db: Database[Any]) -> MongoWorkflowStore:
    """The store with its indexes ensured."""
    store = MongoWorkflowStore(db)
    store.ensure_indexes()
    return store
