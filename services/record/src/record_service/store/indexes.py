"""Indexes of the record store, shaped for SecantusDB's planner.

SecantusDB uses an index only when one index covers every field of the
predicate, so every query path has exactly one index: list/count paths are
(tenant_id, form_id, deleted, X) for X in created_at, updated_at, owner_id,
department_id, dedupe, acl (the caller's `acl $in [tokens]`, multikey) and
`data.<key>` of each indexed form field; keyword pages use (tenant_id,
form_id, deleted, kw, kp), one token and a range of partitions; updates with a
version check use (_id, version); history pages use (tenant_id, record_id,
at); an owner's move to another department rewrites their records through
(tenant_id, owner_id); a download finds the records holding a file through
(tenant_id, files).
"""

from __future__ import annotations

import threading
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from crm_runtime.events import OutboxRelay
from record_service.domain.forms import FormSchema

PREFIX = [("tenant_id", ASCENDING), ("form_id", ASCENDING), ("deleted", ASCENDING)]
BASE_PATHS = ("created_at", "updated_at", "owner_id", "department_id", "dedupe", "acl")
OWNER_INDEX = "by_owner"
FILES_INDEX = "by_files"
KEYWORD_INDEX = "list_kw_kp"
LEGACY_INDEXES = ("list_kw",)  # (.., kw) before keyword partitions: replaced by KEYWORD_INDEX


def index_name(path: str) -> str:
    """The name of the list index on `path`."""
    return "list_" + path.replace(".", "_")


def ensure_base_indexes(records: Collection[Any], history: Collection[Any]) -> None:
    """The indexes every deployment needs, whatever the forms."""
    for path in BASE_PATHS:
        records.create_index([*PREFIX, (path, ASCENDING)], name=index_name(path))
    records.create_index([*PREFIX, ("kw", ASCENDING), ("kp", ASCENDING)], name=KEYWORD_INDEX)
    existing = set(records.index_information())
    for name in LEGACY_INDEXES:
        if name in existing:
            records.drop_index(name)
    records.create_index([("_id", ASCENDING), ("version", ASCENDING)], name="id_version")
    records.create_index([("tenant_id", ASCENDING), ("owner_id", ASCENDING)], name=OWNER_INDEX)
    records.create_index([("tenant_id", ASCENDING), ("files", ASCENDING)], name=FILES_INDEX)
    history.create_index(
        [("tenant_id", ASCENDING), ("record_id", ASCENDING), ("at", ASCENDING)], name="history_by_record"
    )
    OutboxRelay.ensure_indexes(history)


class FormIndexes:
    """Creates `(tenant_id, form_id, deleted, data.<key>)` for each indexed field, once per process per key."""

    def __init__(self, records: Collection[Any]) -> None:
        self._records = records
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def ensure(self, form: FormSchema) -> list[str]:
        """Create the missing indexes of the form's indexed fields; returns the names created now."""
        created: list[str] = []
        for key in sorted(form.indexed_keys):
            path = f"data.{key}"
            if path in self._done:
                continue
            with self._lock:
                if path in self._done:
                    continue
                self._records.create_index([*PREFIX, (path, ASCENDING)], name=index_name(path))
                self._done.add(path)
                created.append(path)
        return created
