"""MongoRecordRepository: the domain's RecordRepository over pymongo (raw documents, no ODM on hot paths)."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from crm_runtime import get_logger
from crm_runtime.access import record_acl
from record_service.domain.files import attachment_ids
from record_service.domain.forms import FormSchema
from record_service.domain.query import keyword_partition
from record_service.domain.repository import StaleVersion, UniqueTaken
from record_service.store.indexes import FormIndexes, ensure_base_indexes

log = get_logger("record.store")
T = TypeVar("T")
Doc = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
IN_CHUNK = 200  # `$in` is quadratic on SecantusDB beyond a few hundred values
INSERT_CHUNK = 1000


def order_key(tenant_id: str, form_id: str) -> str:
    """_id of a form's order counter in `counters`."""
    return f"order|{tenant_id}|{form_id}"


def _successor(value: Any) -> Any:
    """The least stored value above `value` of its type, or None when there is no such simple value."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return math.nextafter(float(value), math.inf)
    if isinstance(value, str):
        return value + "\x00"
    if isinstance(value, datetime):
        # the store keeps milliseconds: every stored time <= value is < value's millisecond + 1 ms
        return value.replace(microsecond=value.microsecond // 1000 * 1000) + timedelta(milliseconds=1)
    return None


def store_predicate(predicate: Doc) -> Doc:
    """The predicate as SecantusDB answers it correctly: `$lte v` becomes `$lt` the successor of v.

    SecantusDB 0.7 leaves the upper key out of an index range when the index
    has fields after the compared one (`(.., data.x, kp)`): `{$lte: 5}` misses
    the 5s. `$lt` its successor selects the same values on any store.
    """
    out: Doc = {}
    for path, cond in predicate.items():
        if isinstance(cond, dict) and "$lte" in cond:
            succ = _successor(cond["$lte"])
            if succ is not None:
                cond = {k: v for k, v in cond.items() if k != "$lte"}
                cond["$lt"] = min(cond["$lt"], succ) if "$lt" in cond else succ
        out[path] = cond
    return out


# NO_FIND_AND_MODIFY: SecantusDB 0.7 answers findAndModify (find_one_and_update/delete) by scanning the whole
# collection, whatever the filter or hint (measured: 106 ms on 20,000 records, 1 ms for update_one by _id).
# So no store code uses it: a counter is a compare-and-set or an update then a read in the same transaction.
ORDER_BLOCK = 16  # order numbers a process reserves at once for single creates
TALLY_SHARDS = 32  # a form's count is spread over this many counter documents: concurrent writes rarely meet
TALLY_PROJECTION = {"_id": 1, "tenant_id": 1, "form_id": 1, "deleted": 1, "kp": 1, "facets": 1}


def tally_key(tenant_id: str, form_id: str, deleted: bool, shard: int) -> str:
    """_id of one shard of a form's record counts (live or in the recycle bin) in `counters`: `n` counts all
    its records, `f.<facet_field>` those holding one value of a select or boolean field (query.facet)."""
    return f"tally|{tenant_id}|{form_id}|{int(bool(deleted))}|{shard:02d}"


def facet_field(name: str) -> str:
    """The field of a shard document counting the records of facet `name` (any value: hashed to a safe name)."""
    return "f." + hashlib.sha1(name.encode()).hexdigest()[:20]


Tallies = dict[tuple[str, str, bool], dict[str, int]]


def tally_deltas(docs: Sequence[Doc], sign: int) -> Tallies:
    """{(tenant, form, deleted): {counter field: change}} for records entering (sign 1) or leaving (-1) counts."""
    out: Tallies = {}
    for doc in docs:
        fields = out.setdefault((str(doc["tenant_id"]), str(doc["form_id"]), bool(doc.get("deleted"))), {})
        for name in ["n", *(facet_field(str(f)) for f in doc.get("facets") or [])]:
            fields[name] = fields.get(name, 0) + sign
    return out


def _merge_deltas(a: Tallies, b: Tallies) -> Tallies:
    out = {key: dict(fields) for key, fields in a.items()}
    for key, fields in b.items():
        into = out.setdefault(key, {})
        for name, delta in fields.items():
            into[name] = into.get(name, 0) + delta
    return out


_shard_of_thread = threading.local()
_next_shard = itertools.count(os.getpid() * 7)


def thread_shard() -> int:
    """The count shard this thread writes: threads of a process take turns, so concurrent writers of one
    process never meet on a shard (and of several processes rarely); any shard may hold any record's change."""
    shard = getattr(_shard_of_thread, "shard", None)
    if shard is None:
        shard = _shard_of_thread.shard = next(_next_shard) % TALLY_SHARDS
    return int(shard)


def bounds_key(tenant_id: str, form_id: str, key: str) -> str:
    """_id of a form field's value bounds in `counters`."""
    return f"bounds|{tenant_id}|{form_id}|{key}"


class MongoTransaction:
    """The writes of one transaction, bound to its session."""

    def __init__(self, repo: MongoRecordRepository, session: ClientSession) -> None:
        self._r = repo
        self._s = session

    @property
    def session(self) -> ClientSession:
        """The transaction's session (for the repository's own multi-step writes)."""
        return self._s

    def next_sequence(self, key: str, count: int = 1) -> int:
        """$inc a counter inside the transaction (rolled back with it: gap-free), then read it in the same
        snapshot (no findAndModify: see NO_FIND_AND_MODIFY)."""
        self._r.counters.update_one({"_id": key}, {"$inc": {"seq": count}}, upsert=True, session=self._s)
        doc = self._r.counters.find_one({"_id": key}, {"seq": 1}, session=self._s)
        assert doc is not None  # written just before, in this transaction
        return int(doc["seq"])

    def claim_uniques(self, claims: Sequence[tuple[str, str]]) -> None:
        """Insert claim documents; the _id clash of a held key raises UniqueTaken(key, position)."""
        if len(claims) == 1:
            key, record_id = claims[0]
            try:
                self._r.uniques.insert_one({"_id": key, "record_id": record_id}, session=self._s)
            except DuplicateKeyError:
                raise UniqueTaken(key) from None
            return
        for start in range(0, len(claims), INSERT_CHUNK):
            chunk = claims[start : start + INSERT_CHUNK]
            try:
                self._r.uniques.insert_many(
                    [{"_id": key, "record_id": rid} for key, rid in chunk], ordered=True, session=self._s
                )
            except BulkWriteError as exc:
                first = (exc.details.get("writeErrors") or [{}])[0]
                position = start + int(first.get("index", 0))
                raise UniqueTaken(claims[position][0], position) from None

    def release_uniques(self, keys: Sequence[str], record_id: str) -> None:
        """Delete the claims that `record_id` holds (by _id, the only index of `uniques`)."""
        for start in range(0, len(keys), IN_CHUNK):
            chunk = list(keys[start : start + IN_CHUNK])
            held = [
                d["_id"]
                for d in self._r.uniques.find({"_id": {"$in": chunk}}, session=self._s)
                if d.get("record_id") == record_id
            ]
            if held:
                self._r.uniques.delete_many({"_id": {"$in": held}}, session=self._s)

    def insert_records(self, docs: Sequence[Doc]) -> None:
        """insert_one for one, insert_many in chunks for many; the forms' counts move with them."""
        if len(docs) == 1:
            self._r.records.insert_one(docs[0], session=self._s)
        else:
            for start in range(0, len(docs), INSERT_CHUNK):
                self._r.records.insert_many(list(docs[start : start + INSERT_CHUNK]), ordered=False, session=self._s)
        self.tally(tally_deltas(docs, 1))

    def update_record(self, record_id: str, expected_version: int, set_fields: Doc, unset: Sequence[str] = ()) -> None:
        """Conditional update through the (_id, version) index; StaleVersion when the version moved.

        A change of `deleted` (delete, restore, merge) also moves the record between its form's counts:
        its state before is read first in the same transaction (by _id; not findAndModify, which scans).
        """
        update: Doc = {"$set": set_fields}
        if unset:
            update["$unset"] = {k: "" for k in unset}
        where = {"_id": record_id, "version": expected_version}
        if "deleted" not in set_fields and "facets" not in set_fields:
            result = self._r.records.update_one(where, update, session=self._s)
            if result.matched_count != 1:
                raise StaleVersion(record_id)
            return
        before = self._r.records.find_one(where, TALLY_PROJECTION, session=self._s)
        if before is None or self._r.records.update_one(where, update, session=self._s).matched_count != 1:
            raise StaleVersion(record_id)
        after = {**before, **{k: set_fields[k] for k in ("deleted", "facets") if k in set_fields}}
        self.tally(_merge_deltas(tally_deltas([before], -1), tally_deltas([after], 1)))

    def tally(self, deltas: Tallies) -> None:
        """$inc this thread's count shard of each (form, deleted) concerned: a create is one update, a bulk
        chunk one update, a delete two; in one round trip."""
        shard = thread_shard()
        moves = [(tally_key(*where, shard), {n: d for n, d in fields.items() if d}) for where, fields in deltas.items()]
        moves = [(key, inc) for key, inc in moves if inc]
        if len(moves) == 1:
            self._r.counters.update_one({"_id": moves[0][0]}, {"$inc": moves[0][1]}, upsert=True, session=self._s)
        elif moves:
            ops = [UpdateOne({"_id": key}, {"$inc": inc}, upsert=True) for key, inc in moves]
            self._r.counters.bulk_write(ops, ordered=False, session=self._s)

    def insert_history(self, docs: Sequence[Doc]) -> None:
        """History/outbox entries."""
        if len(docs) == 1:
            self._r.history.insert_one(docs[0], session=self._s)
            return
        for start in range(0, len(docs), INSERT_CHUNK):
            self._r.history.insert_many(list(docs[start : start + INSERT_CHUNK]), ordered=False, session=self._s)


class MongoRecordRepository:
    """Records, history (the outbox), unique claims and counters in one database."""

    def __init__(self, db: Database[Any]) -> None:
        self.db = db
        self.records: Collection[Any] = db["records"]
        self.history: Collection[Any] = db["history"]
        self.uniques: Collection[Any] = db["uniques"]
        self.counters: Collection[Any] = db["counters"]
        self.meta: Collection[Any] = db["meta"]
        self.guard_docs: Collection[Any] = db["guards"]
        self.pools: Collection[Any] = db["pools"]
        self._form_indexes = FormIndexes(self.records)
        self._order_lock = threading.Lock()
        self._order_blocks: dict[tuple[str, str], tuple[int, int]] = {}  # (tenant, form) -> (next, last) of a block

    def ensure_indexes(self) -> None:
        """The base indexes and the one-off backfills (start-up)."""
        ensure_base_indexes(self.records, self.history)
        self.guard_docs.create_index([("tenant_id", ASCENDING), ("form_id", ASCENDING)], name="guards_by_form")
        backfilled = self.backfill_keyword_partitions()
        if backfilled:
            log.info("keyword_partitions_backfilled", records=backfilled)
        backfilled = self.backfill_access()
        if backfilled:
            log.info("record_acl_backfilled", records=backfilled)
        backfilled = self.backfill_order()
        if backfilled:
            log.info("record_order_backfilled", records=backfilled)
        counted = self.backfill_tallies()
        if counted:
            log.info("record_counts_backfilled", forms=counted)

    def backfill_keyword_partitions(self) -> int:
        """Give `kp` to records stored before keyword partitions existed; once per database.

        A full scan, so it runs only until the `meta` marker says it finished;
        idempotent when two replicas start together. Returns the records updated.
        """
        marker = "keyword_partitions"
        if self.meta.find_one({"_id": marker}) is not None:
            return 0
        updated = 0
        batch: list[UpdateOne] = []
        # one pass over the collection; the updates go by _id, in chunks
        for doc in self.records.find({}, {"_id": 1, "kp": 1}).batch_size(INSERT_CHUNK):
            if "kp" not in doc:
                batch.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"kp": keyword_partition(str(doc["_id"]))}}))
            if len(batch) == INSERT_CHUNK:
                updated += self.records.bulk_write(batch, ordered=False).modified_count
                batch = []
        if batch:
            updated += self.records.bulk_write(batch, ordered=False).modified_count
        self.meta.update_one({"_id": marker}, {"$set": {"done_at": datetime.now(UTC)}}, upsert=True)
        return updated

    def backfill_access(self) -> int:
        """Give `acl` (owner, department, shares) and `files` to records stored before access control.

        Like the `kp` backfill: one pass, only until the `meta` marker says it
        finished. The acl is computed from the stored owner_id and
        department_id; records whose owner later moves are rewritten by the
        directory consumer. Returns the records updated.
        """
        marker = "record_acl"
        if self.meta.find_one({"_id": marker}) is not None:
            return 0
        updated = 0
        batch: list[UpdateOne] = []
        projection = {"_id": 1, "acl": 1, "owner_id": 1, "department_id": 1, "shares": 1, "data": 1}
        for doc in self.records.find({}, projection).batch_size(INSERT_CHUNK):
            if "acl" not in doc:
                shares = doc.get("shares") or []
                acl = record_acl(str(doc.get("owner_id") or ""), str(doc.get("department_id") or ""), shares)
                fields = {"acl": acl, "shares": shares, "files": attachment_ids(doc.get("data") or {})}
                batch.append(UpdateOne({"_id": doc["_id"]}, {"$set": fields}))
            if len(batch) == INSERT_CHUNK:
                updated += self.records.bulk_write(batch, ordered=False).modified_count
                batch = []
        if batch:
            updated += self.records.bulk_write(batch, ordered=False).modified_count
        self.meta.update_one({"_id": marker}, {"$set": {"done_at": datetime.now(UTC)}}, upsert=True)
        return updated

    def holding_file(self, tenant_id: str, file_id: str, limit: int = 200) -> list[Doc]:
        """Records of the tenant (live or deleted) whose data holds the file, through (tenant_id, files)."""
        return list(self.records.find({"tenant_id": tenant_id, "files": file_id}).limit(limit))

    def ensure_form_indexes(self, form: FormSchema) -> None:
        """Indexes of the form's indexed fields."""
        self._form_indexes.ensure(form)

    def transaction(self, fn: Callable[[MongoTransaction], T]) -> T:
        """One multi-document transaction, retried by pymongo on transient conflicts."""
        with self.db.client.start_session() as session:
            return session.with_transaction(lambda s: fn(MongoTransaction(self, s)))

    def get(self, record_id: str) -> Doc | None:
        """By _id only (the _id index); the caller checks tenant and scope."""
        return self.records.find_one({"_id": record_id})

    def get_many(self, ids: Sequence[str], projection: Doc | None = None) -> list[Doc]:
        """By _id, in chunks of 200."""
        out: list[Doc] = []
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), IN_CHUNK):
            out += list(self.records.find({"_id": {"$in": unique[start : start + IN_CHUNK]}}, projection))
        return out

    def guards(self, tenant_id: str, form_id: str) -> list[Doc]:
        """The change guards of a form (approval_gate), from every owner."""
        return [dict(d["guard"]) for d in self.guard_docs.find({"tenant_id": tenant_id, "form_id": form_id})]

    def pool(self, tenant_id: str, pool_id: str) -> Doc | None:
        """The replicated pool (store/pools.py keeps it), by _id "<tenant>|<pool>"."""
        doc = self.pools.find_one({"_id": f"{tenant_id}|{pool_id}"})
        return dict(doc["pool"]) if doc and not doc.get("deleted") else None

    def take_quota(self, key: str, limit: int) -> bool:
        """One atomic conditional increment (`n < limit`), or the first use inserted."""
        if self.counters.update_one({"_id": key, "n": {"$lt": limit}}, {"$inc": {"n": 1}}).modified_count:
            return True
        if limit < 1 or self.counters.find_one({"_id": key}, {"_id": 1}) is not None:
            return False
        try:
            self.counters.insert_one({"_id": key, "n": 1, "at": datetime.now(UTC)})
            return True
        except DuplicateKeyError:
            return self.take_quota(key, limit)

    def replace_guards(self, tenant_id: str, form_id: str, owner: str, guards: Sequence[Doc]) -> None:
        """Replace the guards one owner keeps on a form."""
        self.guard_docs.delete_many({"tenant_id": tenant_id, "form_id": form_id, "owner": owner})
        if guards:
            self.guard_docs.insert_many(
                [{"tenant_id": tenant_id, "form_id": form_id, "owner": owner, "guard": dict(g)} for g in guards]
            )

    def unique_holder(self, key: str) -> str | None:
        """Who holds a unique key."""
        doc = self.uniques.find_one({"_id": key})
        return str(doc["record_id"]) if doc else None

    def unique_holders(self, keys: Sequence[str]) -> dict[str, str]:
        """{key: record id} for claimed keys, by _id in chunks of 200."""
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), IN_CHUNK):
            for doc in self.uniques.find({"_id": {"$in": unique[start : start + IN_CHUNK]}}):
                out[doc["_id"]] = str(doc["record_id"])
        return out

    def discard(self, record_ids: Sequence[str], history_ids: Sequence[str], unique_keys: Sequence[str]) -> None:
        """Delete by _id (chunked) what committed chunks of a failed bulk wrote; the records in transactions
        that also take them out of their forms' counts."""
        for collection, ids in ((self.history, history_ids), (self.uniques, unique_keys)):
            for start in range(0, len(ids), IN_CHUNK):
                collection.delete_many({"_id": {"$in": list(ids[start : start + IN_CHUNK])}})
        for start in range(0, len(record_ids), IN_CHUNK):
            chunk = list(record_ids[start : start + IN_CHUNK])

            def txn(tx: MongoTransaction, chunk: list[str] = chunk) -> None:
                gone = list(self.records.find({"_id": {"$in": chunk}}, TALLY_PROJECTION, session=tx.session))
                self.records.delete_many({"_id": {"$in": chunk}}, session=tx.session)
                tx.tally(tally_deltas(gone, -1))

            self.transaction(txn)

    def tally(self, tenant_id: str, form_id: str, deleted: bool, facets: Sequence[str] = ()) -> int | None:
        """The form's count of live (or deleted) records from its count shards; None until they are exact.

        With `facets`: the records holding any of those values of one select or boolean field (a record
        holds one). Shards are exact from the form's first record on (`reserve_order` marks a new order
        counter `tallied` and `faceted`); the whole count of a form older than that is counted once by
        `backfill_tallies`, its per-value counts are not kept (None: the records are counted).
        """
        keys = [order_key(tenant_id, form_id)] + [
            tally_key(tenant_id, form_id, deleted, shard) for shard in range(TALLY_SHARDS)
        ]
        docs = {d["_id"]: d for d in self.counters.find({"_id": {"$in": keys}})}
        order = docs.get(keys[0])
        if order is not None and not order.get("faceted" if facets else "tallied"):
            return None
        if not facets:
            return sum(int(docs[k].get("n", 0)) for k in keys[1:] if k in docs)
        names = [facet_field(f)[2:] for f in dict.fromkeys(facets)]
        return sum(int((docs[k].get("f") or {}).get(name, 0)) for k in keys[1:] if k in docs for name in names)

    def backfill_tallies(self) -> int:
        """Count, once, the records of forms stored before counts were kept; returns the forms counted.

        Per form in one transaction: the counts read and every shard written in the same snapshot, so a
        create committing meanwhile conflicts with it (and is retried) instead of being lost or counted twice.
        """
        done = 0
        for order in list(self.counters.find({"_id": {"$regex": "^order\\|"}, "tallied": {"$ne": True}})):
            _, tenant_id, form_id = str(order["_id"]).split("|", 2)

            def txn(tx: MongoTransaction, tenant_id: str = tenant_id, form_id: str = form_id) -> None:
                for deleted in (False, True):
                    where = {"tenant_id": tenant_id, "form_id": form_id, "deleted": deleted}
                    n = self.records.count_documents(where, session=tx.session)
                    for shard in range(TALLY_SHARDS):
                        self.counters.update_one(
                            {"_id": tally_key(tenant_id, form_id, deleted, shard)},
                            {"$set": {"n": n if shard == 0 else 0}},
                            upsert=True,
                            session=tx.session,
                        )
                self.counters.update_one(
                    {"_id": order_key(tenant_id, form_id)}, {"$set": {"tallied": True}}, session=tx.session
                )

            self.transaction(txn)
            done += 1
        return done

    def reserve_order(self, tenant_id: str, form_id: str, count: int = 1, *, counted: bool = True) -> int:
        """The last of `count` new order numbers of the form. One number comes from this process's block
        (ORDER_BLOCK reserved at once: concurrent single creates rarely touch the counter); several, or a
        block, are reserved in the store (`_reserve`). Numbers of a block left unused are gaps, which the
        read windows allow for; across processes the order is the order of their blocks."""
        key = (tenant_id, form_id)
        if count != 1:
            last = self._reserve(tenant_id, form_id, count, counted=counted)
            with self._order_lock:  # the next single create is numbered after these, not from an older block
                self._order_blocks.pop(key, None)
            return last
        with self._order_lock:
            nxt, last = self._order_blocks.get(key, (1, 0))
            if nxt > last:
                last = self._reserve(tenant_id, form_id, ORDER_BLOCK, counted=counted)
                nxt = last - ORDER_BLOCK + 1
            self._order_blocks[key] = (nxt + 1, last)
            return nxt

    def _reserve(self, tenant_id: str, form_id: str, count: int = 1, *, counted: bool = True) -> int:
        """One atomic $inc of the form's order counter, outside any transaction (never a write conflict).

        A new counter is the form's first record: its counts are exact from here on (`tallied`, `faceted`), unless
        `counted` is False (the order backfill of records stored before counts were kept).
        A compare-and-set on the counter (by _id), not findAndModify (NO_FIND_AND_MODIFY); writers racing it
        retry, and two first creates racing the insert: the loser's clashes on _id and is retried.
        """
        key = order_key(tenant_id, form_id)
        for _attempt in range(100):
            doc = self.counters.find_one({"_id": key}, {"seq": 1})
            if doc is None:
                fresh: Doc = {"_id": key, "seq": count}
                if counted:
                    fresh.update({"tallied": True, "faceted": True})
                try:
                    self.counters.insert_one(fresh)
                    return count
                except DuplicateKeyError:
                    continue
            seq = int(doc["seq"])
            # compare-and-set: the numbers seq+1 .. seq+count are ours when nobody moved the counter meanwhile
            if self.counters.update_one({"_id": key, "seq": seq}, {"$inc": {"seq": count}}).modified_count == 1:
                return seq + count
        raise RuntimeError(f"order counter of {tenant_id}/{form_id} could not be reserved")

    def last_order(self, tenant_id: str, form_id: str) -> int:
        """The counter's value by _id."""
        doc = self.counters.find_one({"_id": order_key(tenant_id, form_id)})
        return int(doc["seq"]) if doc else 0

    def backfill_order(self) -> int:
        """Give `seq` to records stored before the order number existed; once per database.

        Per form, in (created_at, _id) order after the form's current counter,
        which then moves past them. A full scan, so it runs only until the
        `meta` marker says it finished. Returns the records updated.
        """
        marker = "record_order"
        if self.meta.find_one({"_id": marker}) is not None:
            return 0
        groups: dict[tuple[str, str], list[tuple[Any, str]]] = {}
        projection = {"_id": 1, "seq": 1, "tenant_id": 1, "form_id": 1, "created_at": 1}
        for doc in self.records.find({}, projection).batch_size(INSERT_CHUNK):
            if "seq" not in doc:
                key = (str(doc.get("tenant_id") or ""), str(doc.get("form_id") or ""))
                groups.setdefault(key, []).append((doc.get("created_at") or _EPOCH, str(doc["_id"])))
        updated = 0
        for (tenant_id, form_id), rows in groups.items():
            rows.sort()
            last = self.reserve_order(tenant_id, form_id, len(rows), counted=False)
            first = last - len(rows) + 1
            batch = [UpdateOne({"_id": rid}, {"$set": {"seq": first + i}}) for i, (_at, rid) in enumerate(rows)]
            for start in range(0, len(batch), INSERT_CHUNK):
                updated += self.records.bulk_write(batch[start : start + INSERT_CHUNK], ordered=False).modified_count
        self.meta.update_one({"_id": marker}, {"$set": {"done_at": datetime.now(UTC)}}, upsert=True)
        return updated

    def value_bounds(self, tenant_id: str, form_id: str, key: str) -> tuple[Any, Any] | None:
        """By _id in `counters`."""
        doc = self.counters.find_one({"_id": bounds_key(tenant_id, form_id, key)})
        return (doc.get("low"), doc.get("high")) if doc else None

    def widen_bounds(self, tenant_id: str, form_id: str, key: str, low: Any, high: Any) -> tuple[Any, Any]:
        """One atomic $min/$max, outside any transaction (the bounds only size read windows), then read back:
        the bounds returned hold at least `low` and `high`."""
        where = {"_id": bounds_key(tenant_id, form_id, key)}
        self.counters.update_one(where, {"$min": {"low": low}, "$max": {"high": high}}, upsert=True)
        doc = self.counters.find_one(where)
        return (doc.get("low"), doc.get("high")) if doc else (low, high)

    def return_sequence(self, key: str, last: int, count: int) -> bool:
        """Decrement the counter only if it still ends at `last` (the counters collection is tiny)."""
        result = self.counters.update_one({"_id": key, "seq": last}, {"$inc": {"seq": -count}})
        return result.modified_count == 1

    def release_held(self, hold: str) -> int:
        """published: hold -> False through the `published` index."""
        return self.history.update_many({"published": hold}, {"$set": {"published": False}}).modified_count

    def find(
        self,
        predicate: Doc,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        batch_size: int = 0,
        projection: Doc | None = None,
    ) -> Iterator[Doc]:
        """A cursor over an index-covered predicate (never hinted: hints are slow on SecantusDB)."""
        cursor = self.records.find(store_predicate(predicate), projection)
        if sort:
            cursor = cursor.sort(list(sort))
        if limit:
            cursor = cursor.limit(limit)
        if batch_size:
            cursor = cursor.batch_size(batch_size)
        return cursor

    def count(self, predicate: Doc, limit: int = 0) -> int:
        """count_documents, stopping at `limit` when > 0."""
        if limit:
            return self.records.count_documents(store_predicate(predicate), limit=limit)
        return self.records.count_documents(store_predicate(predicate))

    def history_page(self, tenant_id: str, record_id: str, before: datetime | None, limit: int) -> list[Doc]:
        """Entries newest first through (tenant_id, record_id, at)."""
        predicate: Doc = {"tenant_id": tenant_id, "record_id": record_id}
        if before is not None:
            predicate["at"] = {"$lte": before}
        cursor = self.history.find(predicate, {"event": 0}).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return list(cursor)
