"""Indexes of the record store, shaped for SecantusDB's planner.

SecantusDB uses an index only when one index covers every field of the
predicate (a prefix of a compound index does), reads a whole index range
before it applies a limit and sorts in memory. So every query path has exactly
one index and reads a bounded range of it (store/planner.py picks the path of a
list page or a count and reads its windows): the default order reads windows of
(tenant_id, form_id, deleted, seq), a scoped list windows of (..., acl, seq)
(the caller's `acl $in [tokens]`, multikey; an owner or department filter is
the acl token `u:<id>` / `d:<id>`); filters use (..., X) for X in created_at,
updated_at, dedupe, and (..., data.<key>, kp) for each indexed form field, so
that a count can read a sample of partitions of a value; (..., kp) samples
the whole form for the capped count; keyword pages use (tenant_id,
form_id, deleted, kw, kp), one token and a range of partitions; updates with a
version check go by _id; history pages use (tenant_id, record_id,
at); an owner's move to another department rewrites their records through
(tenant_id, owner_id); a download finds the records holding a file through
(tenant_id, files); the 360° timeline reads many records' history through
(tenant_id, record_id, at) too (store/history.py); files are read by `_id` in
the GridFS bucket (store/attachments.py).
"""

from __future__ import annotations

import threading
from typing import Any

from pymongo import ASCENDING
from pymongo.collection import Collection

from crm_runtime.events import OutboxRelay
from record_service.domain.forms import FormSchema

PREFIX = [("tenant_id", ASCENDING), ("form_id", ASCENDING), ("deleted", ASCENDING)]
BASE_PATHS = ("created_at", "updated_at", "dedupe", "seq", "kp")
ACL_INDEX = "list_acl_seq"
OWNER_INDEX = "by_owner"
FILES_INDEX = "by_files"
KEYWORD_INDEX = "list_kw_kp"
# replaced: (.., kw) by KEYWORD_INDEX; (.., acl) by ACL_INDEX; owner and department filters by acl tokens
# id_version: SecantusDB answers {_id, version} through the _id index alone (measured: no scan)
LEGACY_INDEXES = ("list_kw", "list_acl", "list_owner_id", "list_department_id", "id_version")


def index_name(path: str) -> str:
    """The name of the list index on `path` (a form field's: `list_data_<key>_kp`)."""
    name = "list_" + path.replace(".", "_")
    return name + "_kp" if path.startswith("data.") else name


def field_index_keys(path: str) -> list[tuple[str, int]]:
    """Keys of a form field's index: the value, then the partition (sampled by capped counts)."""
    return [*PREFIX, (path, ASCENDING), ("kp", ASCENDING)]


def ensure_base_indexes(records: Collection[Any], history: Collection[Any]) -> None:
    """The indexes every deployment needs, whatever the forms."""
    for path in BASE_PATHS:
        records.create_index([*PREFIX, (path, ASCENDING)], name=index_name(path))
    records.create_index([*PREFIX, ("acl", ASCENDING), ("seq", ASCENDING)], name=ACL_INDEX)
    records.create_index([*PREFIX, ("kw", ASCENDING), ("kp", ASCENDING)], name=KEYWORD_INDEX)
    existing = set(records.index_information())
    for name in LEGACY_INDEXES:
        if name in existing:
            records.drop_index(name)
    records.create_index([("tenant_id", ASCENDING), ("owner_id", ASCENDING)], name=OWNER_INDEX)
    records.create_index([("tenant_id", ASCENDING), ("files", ASCENDING)], name=FILES_INDEX)
    history.create_index(
        [("tenant_id", ASCENDING), ("record_id", ASCENDING), ("at", ASCENDING)], name="history_by_record"
    )
    OutboxRelay.ensure_indexes(history)


class FormIndexes:
    """Creates `(tenant_id, form_id, deleted, data.<key>, kp)` for each indexed field, once per process per key.

    The index of a field from before partitions (`list_data_<key>`, no kp) is dropped when its successor is made.
    """

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
                self._records.create_index(field_index_keys(path), name=index_name(path))
                legacy = "list_" + path.replace(".", "_")
                if legacy in self._records.index_information():
                    self._records.drop_index(legacy)
                self._done.add(path)
                created.append(path)
        return created
