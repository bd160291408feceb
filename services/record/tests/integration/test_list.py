"""ListRecords on the real store: filters, sorts, pagination, counts (capped), Chinese keyword."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest

from crm.record.v1 import record_pb2

pytestmark = pytest.mark.integration


def bulk(api: Any, rows: list[dict[str, Any]]) -> list[str]:
    resp = api.call("BulkCreateRecords", form_id="customer", records_json=json.dumps(rows, ensure_ascii=False))
    return list(resp.record_ids)


@pytest.fixture()
def seeded(tenant: Any) -> Any:
    api = tenant.api()
    rows = [
        {
            "customer_name": f"北京华信恒通科技有限公司{i}" if i % 10 == 0 else f"上海瑞丰贸易{i}",
            "level": "ABC"[i % 3],
            "amount": i,
            "signed_on": f"2024-05-{(i % 28) + 1:02d}",
        }
        for i in range(60)
    ]
    bulk(api, rows)
    return tenant


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["data"]["customer_name"] for r in rows]


def test_filters_and_sorts(seeded: Any) -> None:
    api = seeded.api()
    rows, resp = api.list("customer", filter_json={"field": "level", "op": "eq", "value": "B"}, page_size=100)
    assert len(rows) == 20 and resp.total == 20 and not resp.total_capped
    assert all(r["data"]["level"] == "B" for r in rows)
    tree = {
        "and": [
            {"field": "level", "op": "in", "value": ["A", "C"]},
            {"field": "amount", "op": "between", "value": ["10", "30"]},
            {
                "or": [
                    {"field": "signed_on", "op": "lt", "value": "2024-05-15"},
                    {"field": "customer_name", "op": "contains", "value": "华信"},
                ]
            },
        ]
    }
    rows, resp = api.list(
        "customer", filter_json=tree, sort_json=[{"field": "amount", "direction": "asc"}], page_size=100
    )
    amounts = [float(r["data"]["amount"]) for r in rows]
    assert amounts == sorted(amounts) and resp.total == len(rows) > 0
    assert all(10 <= a <= 30 and r["data"]["level"] in "AC" for a, r in zip(amounts, rows, strict=True))
    assert all(r["data"]["signed_on"] < "2024-05-15" or "华信" in r["data"]["customer_name"] for r in rows)
    expected = sum(
        1
        for i in range(60)
        if "ABC"[i % 3] in "AC" and 10 <= i <= 30 and (f"2024-05-{(i % 28) + 1:02d}" < "2024-05-15" or i % 10 == 0)
    )
    assert len(rows) == expected
    rows, _ = api.list(
        "customer",
        filter_json={"field": "created_at", "op": "today"},
        page_size=5,
        count_mode=record_pb2.COUNT_MODE_NONE,
    )
    assert len(rows) == 5
    for bad in (
        {"field": "nope", "op": "eq", "value": 1},
        {"field": "level", "op": "regex", "value": ".*"},
        {"field": "amount", "op": "gt", "value": {"$gt": 1}},
    ):
        with pytest.raises(grpc.RpcError) as exc:
            api.list("customer", filter_json=bad)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("tree", "sort"),
    [
        (None, None),
        ({"field": "level", "op": "eq", "value": "A"}, None),
        ({"field": "signed_on", "op": "gte", "value": "2024-05-10"}, [{"field": "created_at", "direction": "asc"}]),
        (None, [{"field": "amount", "direction": "desc"}]),
    ],
)
def test_pagination_visits_every_row_once_in_order(seeded: Any, tree: Any, sort: Any) -> None:
    api = seeded.api()
    kw: dict[str, Any] = {"page_size": 100}
    if tree:
        kw["filter_json"] = tree
    if sort:
        kw["sort_json"] = sort
    everything, _ = api.list("customer", **kw)
    seen: list[str] = []
    cursor = ""
    while True:
        rows, resp = api.list("customer", **{**kw, "page_size": 7, "cursor": cursor})
        seen += [r["id"] for r in rows]
        cursor = resp.next_cursor
        if not cursor:
            break
    assert seen == [r["id"] for r in everything] and len(seen) == len(set(seen)) > 0


def test_chinese_keyword_finds_substrings(seeded: Any) -> None:
    api = seeded.api()
    rows, resp = api.list("customer", keyword="华信", page_size=50)
    assert len(rows) == 6 and resp.total == 6
    assert all("华信" in n for n in names(rows))
    rows, _ = api.list("customer", keyword="信恒通科", page_size=50)
    assert len(rows) == 6
    rows, _ = api.list("customer", keyword="华通", page_size=50)  # both characters present, not adjacent
    assert rows == []
    rows, _ = api.list(
        "customer", keyword="瑞丰 贸易", filter_json={"field": "level", "op": "eq", "value": "A"}, page_size=50
    )
    assert rows and all("瑞丰" in n and r["data"]["level"] == "A" for n, r in zip(names(rows), rows, strict=True))


def test_bad_cursor_and_page_size_are_422(seeded: Any) -> None:
    api = seeded.api()
    for kw in ({"cursor": "garbage!"}, {"page_size": 500}):
        with pytest.raises(grpc.RpcError) as exc:
            api.list("customer", **kw)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_count_is_capped_at_ten_thousand(tenant: Any) -> None:
    api = tenant.api()
    t0 = time.perf_counter()
    for start in (0, 5001):
        bulk(api, [{"customer_name": f"容量{i}", "level": "A"} for i in range(start, start + 5001)])
    elapsed = time.perf_counter() - t0
    _, resp = api.list("customer", page_size=1)
    assert resp.total == 10_000 and resp.total_capped
    _, resp = api.list("customer", page_size=1, count_mode=record_pb2.COUNT_MODE_EXACT)
    assert resp.total == 10_002 and not resp.total_capped
    _, resp = api.list("customer", page_size=1, count_mode=record_pb2.COUNT_MODE_NONE)
    assert resp.total == -1
    _, resp = api.list("customer", page_size=1, keyword="容量")  # counted through the residual stream
    assert resp.total == 10_000 and resp.total_capped
    print(f"bulk created 10,002 records in {elapsed:.1f}s")


def test_keyword_pages_walk_the_partitions_on_the_store(tenant: Any, db: Any) -> None:
    api = tenant.api()
    rows = [
        {"customer_name": f"{'杭州' if i % 3 else '苏州'}锦程数联咨询有限公司{i}", "level": "ABC"[i % 3]}
        for i in range(700)
    ]
    ids = bulk(api, rows)
    stored = {d["_id"]: d["kp"] for d in db["records"].find({"_id": {"$in": ids[:200]}}, {"kp": 1})}
    assert len(stored) == 200 and len(set(stored.values())) > 100  # spread over the partitions
    for keyword, expected in (("锦程", 700), ("苏州锦程", 234)):  # a keyword of several tokens too
        seen: list[str] = []
        cursor = ""
        while True:
            page, resp = api.list("customer", keyword=keyword, page_size=50, cursor=cursor)
            seen += [r["id"] for r in page]
            cursor = resp.next_cursor
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == expected
    _, resp = api.list("customer", keyword="苏州锦程", page_size=1)
    assert resp.total == 234


def test_records_without_a_partition_get_one_at_start_up(db: Any) -> None:
    from record_service.domain.query import keyword_partition
    from record_service.store.repository import MongoRecordRepository

    repo = MongoRecordRepository(db)
    db["meta"].delete_one({"_id": "keyword_partitions"})
    db["records"].insert_many([{"_id": f"legacy-{i}", "tenant_id": "old", "form_id": "x"} for i in range(3)])
    assert repo.backfill_keyword_partitions() == 3
    for i in range(3):
        assert db["records"].find_one({"_id": f"legacy-{i}"})["kp"] == keyword_partition(f"legacy-{i}")
    db["records"].insert_one({"_id": "legacy-late", "tenant_id": "old", "form_id": "x"})
    assert repo.backfill_keyword_partitions() == 0  # done once: the marker stops a second scan
    assert "list_kw_kp" in db["records"].index_information()
    db["records"].delete_many({"tenant_id": "old"})


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("tree", [None, {"field": "level", "op": "eq", "value": "B"}])
def test_sort_by_a_number_walks_value_windows_with_ties_and_empty_values(
    tenant: Any, direction: str, tree: Any
) -> None:
    """Read in windows of the field's values: every row once, MongoDB's order (empty first ascending), ties by id."""
    api = tenant.api()
    rows = [
        {"customer_name": f"排序{i}", "level": "ABC"[i % 3], **({"amount": (i * 37) % 50} if i % 7 else {})}
        for i in range(300)
    ]
    ids = bulk(api, rows)
    rows[5]["amount"] = 10**9  # a value far past the others: the open end of the windows reads it
    api.call("UpdateRecord", record_id=ids[5], data_json=json.dumps({"amount": 10**9}), expected_version=1)
    wanted = [(r.get("amount"), rid) for r, rid in zip(rows, ids, strict=True) if tree is None or r["level"] == "B"]
    wanted.sort(key=lambda t: ((0,) if t[0] is None else (1, t[0]), t[1]), reverse=direction == "desc")
    kw: dict[str, Any] = {"sort_json": [{"field": "amount", "direction": direction}], "page_size": 9}
    if tree:
        kw["filter_json"] = tree
    seen: list[str] = []
    cursor = ""
    while True:
        page, resp = api.list("customer", **kw, cursor=cursor, count_mode=record_pb2.COUNT_MODE_NONE)
        seen += [r["id"] for r in page]
        cursor = resp.next_cursor
        if not cursor:
            break
    amounts = dict(zip(ids, [r.get("amount") for r in rows], strict=True))
    assert [(amounts[i], i) for i in seen] == wanted


def test_one_character_and_long_prefix_keywords_read_token_ranges(tenant: Any) -> None:
    """Prefix tokens on the store: one CJK character (no single-character tokens) and a long digit prefix."""
    api = tenant.api()
    bulk(
        api,
        [
            {"customer_name": "北京华信恒通科技有限公司 13800138000"},
            {"customer_name": "上海瑞丰贸易 13912345678"},
            {"customer_name": "华"},
        ],
    )
    for keyword, expected in (("华", 2), ("司", 1), ("丰", 1), ("1380013", 1), ("139123", 1), ("13", 2), ("美", 0)):
        rows, resp = api.list("customer", keyword=keyword, page_size=50)
        assert len(rows) == expected == resp.total, keyword
