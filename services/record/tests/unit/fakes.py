"""In-memory fakes of the record service's own ports (domain/repository.py), for fast use-case tests.

`FakeRecordRepository` keeps records, history, unique claims and counters in
dictionaries and answers the Mongo-shaped predicates the use cases and the
planner send (equality with multikey arrays, `$in`, `$gt/$gte/$lt/$lte`, `$ne`,
dotted paths, a missing field equal to None), sorts as MongoDB does across
types, and runs a transaction on a copy that replaces the state only when the
function returns: a UniqueTaken or StaleVersion (or any error) leaves nothing
behind, as a store transaction does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from record_service.domain.files import StoredFile
from record_service.domain.forms import FormSchema
from record_service.domain.query import bson_key, get_path
from record_service.domain.repository import StaleVersion, UniqueTaken
from record_service.events import entries_of

T = TypeVar("T")
Doc = dict[str, Any]
_MISSING = object()


# ---------------------------------------------------------------- predicates


def _values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """Every value a path reaches (arrays of the last step expanded), as MongoDB compares them."""
    value = get_path(doc, path)
    if isinstance(value, list):
        return [*value, value]
    return [value]


def _has_path(doc: Mapping[str, Any], path: str) -> bool:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _comparable(a: Any, b: Any) -> bool:
    """Range operators compare within one BSON type bracket only."""
    if a is None or b is None:
        return False
    return bson_key(a)[0] == bson_key(b)[0]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, datetime) and isinstance(b, datetime):
        return (a if a.tzinfo else a.replace(tzinfo=UTC)) == (b if b.tzinfo else b.replace(tzinfo=UTC))
    return bool(a == b)


def _cond(doc: Mapping[str, Any], path: str, cond: Any) -> bool:
    values = _values(doc, path)
    if not isinstance(cond, Mapping) or not any(str(k).startswith("$") for k in cond):
        if cond is None:
            return not _has_path(doc, path) or any(v is None for v in values)
        return any(_same(v, cond) for v in values)
    for op, operand in cond.items():
        if op == "$in":
            if not any(_cond(doc, path, o) for o in operand):
                return False
        elif op == "$ne":
            if _cond(doc, path, operand):
                return False
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = False
            for v in values:
                if not _comparable(v, operand):
                    continue
                key, bound = bson_key(v), bson_key(operand)
                if (
                    (op == "$gt" and key > bound)
                    or (op == "$gte" and key >= bound)
                    or (op == "$lt" and key < bound)
                    or (op == "$lte" and key <= bound)
                ):
                    ok = True
                    break
            if not ok:
                return False
        else:
            raise NotImplementedError(f"the fake store does not answer {op}")
    return True


def matches(doc: Mapping[str, Any], predicate: Mapping[str, Any]) -> bool:
    """True when a stored document passes a predicate of the shape the use cases send."""
    return all(_cond(doc, path, cond) for path, cond in predicate.items())


def _project(doc: Doc, projection: Mapping[str, Any] | None) -> Doc:
    if not projection:
        return copy.deepcopy(doc)
    if all(not v for v in projection.values()):
        return {k: copy.deepcopy(v) for k, v in doc.items() if k not in projection}
    out: Doc = {"_id": doc["_id"]}
    for path in projection:
        head = path.split(".", 1)[0]
        if head in doc:
            out[head] = copy.deepcopy(doc[head])
    return out


def _sorted(docs: list[Doc], sort: Sequence[tuple[str, int]] | None) -> list[Doc]:
    for path, direction in reversed(list(sort or [])):
        docs.sort(key=lambda d, p=path: bson_key(get_path(d, p)), reverse=direction < 0)
    return docs


# ---------------------------------------------------------------- the repository


@dataclass
class _State:
    records: dict[str, Doc] = field(default_factory=dict)
    history: dict[str, Doc] = field(default_factory=dict)
    uniques: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)


class FakeTransaction:
    """The writes of one transaction, on the repository's working copy."""

    def __init__(self, state: _State) -> None:
        self._s = state

    def next_sequence(self, key: str, count: int = 1) -> int:
        self._s.counters[key] = self._s.counters.get(key, 0) + count
        return self._s.counters[key]

    def claim_uniques(self, claims: Sequence[tuple[str, str]]) -> None:
        for position, (key, record_id) in enumerate(claims):
            if key in self._s.uniques:
                raise UniqueTaken(key, position if len(claims) > 1 else None)
            self._s.uniques[key] = record_id

    def release_uniques(self, keys: Sequence[str], record_id: str) -> None:
        for key in keys:
            if self._s.uniques.get(key) == record_id:
                del self._s.uniques[key]

    def insert_records(self, docs: Sequence[Doc]) -> None:
        for doc in docs:
            if doc["_id"] in self._s.records:
                raise ValueError(f"duplicate record id {doc['_id']}")
            self._s.records[doc["_id"]] = copy.deepcopy(doc)

    def update_record(self, record_id: str, expected_version: int, set_fields: Doc, unset: Sequence[str] = ()) -> None:
        doc = self._s.records.get(record_id)
        if doc is None or doc.get("version") != expected_version:
            raise StaleVersion(record_id)
        for path, value in set_fields.items():
            target = doc
            *parents, last = path.split(".")
            for part in parents:
                target = target.setdefault(part, {})
            target[last] = copy.deepcopy(value)
        for path in unset:
            target = doc
            *parents, last = path.split(".")
            for part in parents:
                target = target.get(part) or {}
            target.pop(last, None)

    def insert_history(self, docs: Sequence[Doc]) -> None:
        for doc in docs:
            if doc["_id"] in self._s.history:
                raise ValueError(f"duplicate history id {doc['_id']}")
            self._s.history[doc["_id"]] = copy.deepcopy(doc)


class FakeRecordRepository:
    """RecordRepository in dictionaries; `fail_on_insert` makes the n-th transaction that inserts records fail."""

    def __init__(self) -> None:
        self._state = _State()
        self.bounds: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.guard_sets: dict[tuple[str, str, str], list[Any]] = {}
        self.pool_docs: dict[tuple[str, str], Any] = {}
        self.quotas: dict[str, int] = {}
        self.indexed: list[tuple[str, int]] = []
        self.transactions = 0
        self.fail_on_insert: int | None = None
        self._inserting = 0

    # the state, for assertions
    @property
    def records(self) -> dict[str, Doc]:
        return self._state.records

    @property
    def history(self) -> dict[str, Doc]:
        return self._state.history

    @property
    def uniques(self) -> dict[str, str]:
        return self._state.uniques

    @property
    def counters(self) -> dict[str, int]:
        return self._state.counters

    def transaction(self, fn: Callable[[Any], T]) -> T:
        work = copy.deepcopy(self._state)
        tx = FakeTransaction(work)
        before = len(work.records)
        result = fn(tx)
        if len(work.records) > before:
            self._inserting += 1
            if self.fail_on_insert is not None and self._inserting == self.fail_on_insert:
                raise RuntimeError("the store went away")
        self._state = work
        self.transactions += 1
        return result

    def get(self, record_id: str) -> Doc | None:
        doc = self._state.records.get(record_id)
        return copy.deepcopy(doc) if doc is not None else None

    def get_many(self, ids: Sequence[str], projection: Doc | None = None) -> list[Doc]:
        return [_project(self._state.records[i], projection) for i in dict.fromkeys(ids) if i in self._state.records]

    def unique_holder(self, key: str) -> str | None:
        return self._state.uniques.get(key)

    def guards(self, tenant_id: str, form_id: str) -> list[Any]:
        return [dict(g) for (t, f, _o), gs in self.guard_sets.items() if (t, f) == (tenant_id, form_id) for g in gs]

    def pool(self, tenant_id: str, pool_id: str) -> Any:
        return self.pool_docs.get((tenant_id, pool_id))

    def take_quota(self, key: str, limit: int) -> bool:
        if self.quotas.get(key, 0) >= limit:
            return False
        self.quotas[key] = self.quotas.get(key, 0) + 1
        return True

    def replace_guards(self, tenant_id: str, form_id: str, owner: str, guards: Sequence[Any]) -> None:
        self.guard_sets[(tenant_id, form_id, owner)] = [dict(g) for g in guards]

    def unique_holders(self, keys: Sequence[str]) -> dict[str, str]:
        return {k: self._state.uniques[k] for k in keys if k in self._state.uniques}

    def discard(self, record_ids: Sequence[str], history_ids: Sequence[str], unique_keys: Sequence[str]) -> None:
        for rid in record_ids:
            self._state.records.pop(rid, None)
        for hid in history_ids:
            self._state.history.pop(hid, None)
        for key in unique_keys:
            self._state.uniques.pop(key, None)

    def reserve_order(self, tenant_id: str, form_id: str, count: int = 1) -> int:
        key = f"order|{tenant_id}|{form_id}"
        self._state.counters[key] = self._state.counters.get(key, 0) + count
        return self._state.counters[key]

    def last_order(self, tenant_id: str, form_id: str) -> int:
        return self._state.counters.get(f"order|{tenant_id}|{form_id}", 0)

    def tally(self, tenant_id: str, form_id: str, deleted: bool, facets: Sequence[str] = ()) -> int | None:
        where = {"tenant_id": tenant_id, "form_id": form_id, "deleted": deleted}
        rows = [d for d in self._state.records.values() if matches(d, where)]
        if facets:
            rows = [d for d in rows if set(d.get("facets") or []) & set(facets)]
        return len(rows)

    def value_bounds(self, tenant_id: str, form_id: str, key: str) -> tuple[Any, Any] | None:
        return self.bounds.get((tenant_id, form_id, key))

    def widen_bounds(self, tenant_id: str, form_id: str, key: str, low: Any, high: Any) -> tuple[Any, Any]:
        known = self.bounds.get((tenant_id, form_id, key))
        bounds = (low, high) if known is None else (min(known[0], low), max(known[1], high))
        self.bounds[(tenant_id, form_id, key)] = bounds
        return bounds

    def return_sequence(self, key: str, last: int, count: int) -> bool:
        if self._state.counters.get(key) != last:
            return False
        self._state.counters[key] = last - count
        return True

    def release_held(self, hold: str) -> int:
        held = [e for e in self._state.history.values() if e.get("published") == hold]
        for entry in held:
            entry["published"] = False
        return len(held)

    def find(
        self,
        predicate: Doc,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        batch_size: int = 0,
        projection: Doc | None = None,
    ) -> Iterator[Doc]:
        found = [d for d in self._state.records.values() if matches(d, predicate)]
        found = _sorted(found, sort)
        if limit:
            found = found[:limit]
        return iter([_project(d, projection) for d in found])

    def count(self, predicate: Doc, limit: int = 0) -> int:
        total = sum(1 for d in self._state.records.values() if matches(d, predicate))
        return min(total, limit) if limit else total

    def history_page(self, tenant_id: str, record_id: str, before: datetime | None, limit: int) -> list[Doc]:
        predicate: Doc = {"tenant_id": tenant_id, "record_id": record_id}
        if before is not None:
            predicate["at"] = {"$lte": before}
        rows = [e for e in self._state.history.values() if matches(e, predicate)]
        rows = _sorted(rows, [("at", -1), ("_id", -1)])[:limit]
        return [_project(e, {"event": 0}) for e in rows]

    def ensure_form_indexes(self, form: FormSchema) -> None:
        self.indexed.append((form.id, form.version))

    def holding_file(self, tenant_id: str, file_id: str, limit: int = 200) -> list[Doc]:
        return list(self.find({"tenant_id": tenant_id, "files": file_id}, limit=limit))


# ---------------------------------------------------------------- the other ports


class FakeHistoryReader:
    """HistoryReader over a FakeRecordRepository's history."""

    def __init__(self, repo: FakeRecordRepository) -> None:
        self._repo = repo

    def recent(self, tenant_id: str, record_ids: Sequence[str], limit: int) -> list[Doc]:
        ids = list(dict.fromkeys(record_ids))
        rows = [
            e
            for doc in self._repo.history.values()
            if doc.get("tenant_id") == tenant_id and matches(doc, {"record_id": {"$in": ids}})
            for e in entries_of(_project(doc, {"event": 0}), ids)
        ]
        rows.sort(key=lambda r: (r["at"], r["_id"]), reverse=True)
        return rows[:limit]


class FakeFileStore:
    """FileStore in a dictionary."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[StoredFile, bytes]] = {}

    def put(self, tenant_id: str, uploaded_by: str, name: str, content_type: str, content: bytes) -> StoredFile:
        stored = StoredFile(
            id=f"f{len(self.files) + 1:023d}",
            tenant_id=tenant_id,
            name=name,
            size=len(content),
            content_type=content_type,
            sha256=hashlib.sha256(content).hexdigest(),
            uploaded_by=uploaded_by,
            uploaded_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        self.files[stored.id] = (stored, content)
        return stored

    def get(self, tenant_id: str, file_id: str) -> StoredFile | None:
        hit = self.files.get(file_id)
        return hit[0] if hit is not None and hit[0].tenant_id == tenant_id else None

    def chunks(self, file_id: str) -> Iterator[bytes]:
        yield self.files[file_id][1]

    def lookup(self, tenant_id: str, ids: Sequence[str]) -> dict[str, Doc]:
        out: dict[str, Doc] = {}
        for file_id in ids:
            stored = self.get(tenant_id, file_id)
            if stored is not None:
                out[file_id] = {**stored.summary(), "uploaded_by": stored.uploaded_by}
        return out


class FakeCipher:
    """A reversible stand-in for Fernet (base64 with a marker; a bad token raises ValueError)."""

    def encrypt(self, plaintext: str) -> str:
        return "enc:" + base64.urlsafe_b64encode(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith("enc:"):
            raise ValueError("not a token of this cipher")
        return base64.urlsafe_b64decode(token[4:].encode()).decode()
