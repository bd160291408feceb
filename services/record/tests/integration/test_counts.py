"""A form's record count is kept as records are written (count shards in `counters`), not counted.

SecantusDB counts by reading every matching document, so the unfiltered count
of a list (the default list of every caller who sees all records) comes from
shards moved in the same transactions as the records: these tests change the
records every way the service can and compare with counting them.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import grpc
import pytest

from crm.record.v1 import record_pb2
from record_service.store.repository import TALLY_SHARDS, facet_field, order_key, tally_key

pytestmark = pytest.mark.integration

EXACT = record_pb2.COUNT_MODE_EXACT


def bulk(api: Any, rows: list[dict[str, Any]]) -> list[str]:
    resp = api.call("BulkCreateRecords", form_id="customer", records_json=json.dumps(rows, ensure_ascii=False))
    return list(resp.record_ids)


def listed(api: Any, deleted: bool = False) -> int:
    _, resp = api.list("customer", page_size=1, count_mode=EXACT, deleted=deleted)
    return int(resp.total)


def stored(db: Any, tenant: Any, deleted: bool = False) -> int:
    return int(
        db["records"].count_documents({"tenant_id": tenant.id, "form_id": tenant.customer.id, "deleted": deleted})
    )


def shards(db: Any, tenant: Any, deleted: bool = False) -> int:
    keys = [tally_key(tenant.id, tenant.customer.id, deleted, s) for s in range(TALLY_SHARDS)]
    return sum(int(d.get("n", 0)) for d in db["counters"].find({"_id": {"$in": keys}}))


def agree(api: Any, db: Any, tenant: Any) -> tuple[int, int]:
    """Live and deleted counts as listed; each equal to the stored records and to the shards."""
    live, gone = listed(api), listed(api, deleted=True)
    assert (
        (live, gone) == (stored(db, tenant), stored(db, tenant, True)) == (shards(db, tenant), shards(db, tenant, True))
    )
    return live, gone


def test_counts_follow_creates_bulks_deletes_restores_and_a_discarded_bulk(
    tenant: Any, db: Any, record_server: Any
) -> None:
    api = tenant.api()
    assert agree(api, db, tenant) == (0, 0)
    one = api.create("customer", {"customer_name": "计数一"})
    ids = bulk(api, [{"customer_name": f"计数批{i}", "level": "ABC"[i % 3]} for i in range(1500)])  # two chunks
    assert agree(api, db, tenant) == (1501, 0)
    assert db["counters"].find_one({"_id": order_key(tenant.id, tenant.customer.id)})["tallied"] is True
    for rid in ids[:3]:
        api.call("DeleteRecord", record_id=rid, expected_version=1)
    assert agree(api, db, tenant) == (1498, 3)
    api.call("RestoreRecord", record_id=ids[0])
    assert agree(api, db, tenant) == (1499, 2)
    with pytest.raises(grpc.RpcError):  # a stale version moves nothing
        api.call("DeleteRecord", record_id=one["id"], expected_version=7)
    assert agree(api, db, tenant) == (1499, 2)
    # what a failed bulk's compensation removes (live and deleted alike) leaves the counts with it
    record_server.repo.discard(ids[1:101], [], [])
    assert agree(api, db, tenant) == (1401, 0)  # ids[1] and ids[2] were in the recycle bin


def test_the_listed_count_is_the_kept_one_and_a_filter_is_still_counted(tenant: Any, db: Any) -> None:
    api = tenant.api()
    bulk(api, [{"customer_name": f"保持{i}", "level": "AB"[i % 2]} for i in range(40)])
    key = tally_key(tenant.id, tenant.customer.id, False, 0)
    db["counters"].update_one({"_id": key}, {"$inc": {"n": 1000}}, upsert=True)
    try:
        assert listed(api) == 1040  # read from the shards, not counted
        _, resp = api.list(
            "customer", page_size=1, filter_json=json.dumps({"field": "level", "op": "eq", "value": "A"})
        )
        assert resp.total == 20  # a filtered count still reads the records
        _, resp = api.list("customer", page_size=1)
        assert resp.total == 1040 and not resp.total_capped
    finally:
        db["counters"].update_one({"_id": key}, {"$inc": {"n": -1000}})
    assert listed(api) == 40


def test_concurrent_creates_are_each_counted_once(tenant: Any, db: Any) -> None:
    api = tenant.api()
    api.create("customer", {"customer_name": "并发起点"})  # the order counter exists: creates race on the shards only
    errors: list[BaseException] = []

    def create(n: int) -> None:
        try:
            for i in range(5):
                api.create("customer", {"customer_name": f"并发计数{n}-{i}"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert agree(api, db, tenant) == (61, 0)


def test_forms_stored_before_counts_are_counted_once_at_start(tenant: Any, db: Any, record_server: Any) -> None:
    api = tenant.api()
    ids = bulk(api, [{"customer_name": f"旧数据{i}"} for i in range(30)])
    api.call("DeleteRecord", record_id=ids[0], expected_version=1)
    # as a database from before counts were kept: no shards, an order counter without the flag
    db["counters"].delete_many({"_id": {"$regex": f"^tally\\|{tenant.id}\\|"}})
    db["counters"].update_one({"_id": order_key(tenant.id, tenant.customer.id)}, {"$unset": {"tallied": ""}})
    repo = record_server.repo
    assert repo.tally(tenant.id, tenant.customer.id, False) is None
    assert listed(api) == 29  # counted while the shards cannot tell
    assert repo.backfill_tallies() >= 1
    assert repo.backfill_tallies() == 0  # once
    assert agree(api, db, tenant) == (29, 1)
    api.create("customer", {"customer_name": "旧数据之后"})
    assert agree(api, db, tenant) == (30, 1)


def level_count(api: Any, *levels: str, deleted: bool = False) -> int:
    tree = (
        {"field": "level", "op": "eq", "value": levels[0]}
        if len(levels) == 1
        else {
            "field": "level",
            "op": "in",
            "value": list(levels),
        }
    )
    _, resp = api.list("customer", page_size=1, count_mode=EXACT, deleted=deleted, filter_json=tree)
    return int(resp.total)


def stored_level(db: Any, tenant: Any, *levels: str, deleted: bool = False) -> int:
    where = {
        "tenant_id": tenant.id,
        "form_id": tenant.customer.id,
        "deleted": deleted,
        "data.level": {"$in": list(levels)},
    }
    return int(db["records"].count_documents(where))


def test_counts_of_a_select_value_are_kept_through_updates_deletes_and_merges_of_values(tenant: Any, db: Any) -> None:
    api = tenant.api()
    ids = bulk(api, [{"customer_name": f"分级{i}", "level": "ABC"[i % 3]} for i in range(90)])
    api.create("customer", {"customer_name": "无分级"})
    one = api.create("customer", {"customer_name": "单建A", "level": "A"})
    assert [level_count(api, v) for v in "ABC"] == [31, 30, 30]
    assert level_count(api, "A", "C") == 61
    # the count comes from the kept shards: a shard moved by hand shows (then put back)
    key, b = tally_key(tenant.id, tenant.customer.id, False, 3), facet_field('level="B"')
    db["counters"].update_one({"_id": key}, {"$inc": {b: 500}}, upsert=True)
    assert level_count(api, "B") == 530
    db["counters"].update_one({"_id": key}, {"$inc": {b: -500}})
    # a value changed, cleared, a record deleted and restored: the counts move with it
    api.update(one["id"], {"level": "C"}, 1)
    record = api.get(ids[1])  # a B
    api.update(ids[1], {"level": None}, record["version"])
    api.call("DeleteRecord", record_id=ids[2], expected_version=1)  # a C
    api.update(ids[3], {"customer_name": "分级3改名"}, 1)  # an A, its level untouched
    for levels in (("A",), ("B",), ("C",), ("A", "B", "C")):
        assert level_count(api, *levels) == stored_level(db, tenant, *levels)
        assert level_count(api, *levels, deleted=True) == stored_level(db, tenant, *levels, deleted=True)
    assert [level_count(api, v) for v in "ABC"] == [30, 29, 30]
    api.call("RestoreRecord", record_id=ids[2])
    assert level_count(api, "C") == 31


def test_a_form_older_than_value_counts_is_counted(tenant: Any, db: Any) -> None:
    api = tenant.api()
    bulk(api, [{"customer_name": f"旧分级{i}", "level": "AB"[i % 2]} for i in range(20)])
    db["counters"].update_one({"_id": order_key(tenant.id, tenant.customer.id)}, {"$unset": {"faceted": ""}})
    key = tally_key(tenant.id, tenant.customer.id, False, 0)
    db["counters"].update_one(
        {"_id": key}, {"$inc": {facet_field('level="A"'): 500}}, upsert=True
    )  # not read: not faceted
    assert level_count(api, "A") == 10
    assert listed(api) == 20  # the whole count is still kept


def test_order_numbers_reserved_concurrently_are_distinct_and_in_order(tenant: Any, record_server: Any) -> None:
    repo = record_server.repo
    got: list[int] = []
    ranges: list[range] = []
    unordered: list[list[int]] = []
    lock = threading.Lock()

    def reserve() -> None:
        mine: list[int] = []
        for count in (1, 3, 1, 5, 1, 1):
            last = repo.reserve_order(tenant.id, "numbered", count)
            numbers = range(last - count + 1, last + 1)
            mine.extend(numbers)
            with lock:
                got.extend(numbers)
                if count > 1:
                    ranges.append(numbers)
        if mine != sorted(mine):  # a thread's numbers grow: creation order, singles after a bulk too
            unordered.append(mine)

    threads = [threading.Thread(target=reserve) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not unordered
    assert len(got) == len(set(got)) == 120  # never twice (single numbers come from blocks: gaps are allowed)
    assert all(min(r) > 0 for r in ranges) and repo.last_order(tenant.id, "numbered") >= max(got)
