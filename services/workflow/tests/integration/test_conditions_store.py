"""Property test: a condition matches a record in Python exactly when the store finds the record's snapshot.

Random records of one test form (missing, null, empty and multi-valued values
included) are snapshotted into a real SecantusDB collection; for random
condition trees (nested and/or, every compilable operator, operands drawn from
the same value pools, given as a user would type them) the ids for which
`Condition.matches` holds must be exactly the ids `find(to_mongo())` returns.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import MongoClient
from pymongo.collection import Collection

from crm_runtime.testing import StoreProcess, start_store
from workflow_service.domain.conditions import parse_condition, snapshot

pytestmark = pytest.mark.integration

MISSING = object()


def _opts(*items: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"value": value, "label": {"zh-CN": zh, "en": en}} for value, zh, en in items]


FIELDS: dict[str, dict[str, Any]] = {
    "name": {"key": "name", "type": "text", "label": {"zh-CN": "名称", "en": "Name"}},
    "level": {
        "key": "level",
        "type": "select",
        "label": {"zh-CN": "客户分级", "en": "Level"},
        "options": _opts(("a", "A类", "Class A"), ("b", "B类", "Class B"), ("c", "C类", "Class C")),
    },
    "products": {
        "key": "products",
        "type": "multi_select",
        "label": {"zh-CN": "产品", "en": "Products"},
        "options": _opts(("crm", "客户管理", "CRM"), ("erp", "资源计划", "ERP"), ("oa", "办公", "OA")),
    },
    "amount": {"key": "amount", "type": "money", "label": {"zh-CN": "金额", "en": "Amount"}},
    "score": {"key": "score", "type": "number", "label": {"zh-CN": "分数", "en": "Score"}},
    "signed_on": {"key": "signed_on", "type": "date", "label": {"zh-CN": "签约日期", "en": "Signed on"}},
    "due_at": {"key": "due_at", "type": "datetime", "label": {"zh-CN": "截止时间", "en": "Due at"}},
    "vip": {"key": "vip", "type": "boolean", "label": {"zh-CN": "重点", "en": "VIP"}},
    "region": {"key": "region", "type": "region", "label": {"zh-CN": "地区", "en": "Region"}},
    "contacts": {
        "key": "contacts",
        "type": "relation",
        "label": {"zh-CN": "联系人", "en": "Contacts"},
        "relation": {"form_id": "contact", "many": True},
    },
}

# What records hold (API output); None and MISSING are added to every pool.
RECORD_VALUES: dict[str, list[Any]] = {
    "name": ["Acme", "acme corp", "ACME", "Beta", "", "a.c", "abc", "深圳华为", "Ωmega", "corp (cn)"],
    "level": ["a", "b", "c", ""],
    "products": [[], ["crm"], ["crm", "erp"], ["oa"], ["erp", "oa", "crm"]],
    # "n/a" and True: values of another type (kept as given) compare as MongoDB's type brackets say
    "amount": ["0.00", "1200.50", "-5.00", "99.99", "100.00", "1200.51", "n/a"],
    "score": [0, 1, 2.5, 3, -1, 1000, 3.0, True],
    "signed_on": ["2026-05-01", "2026-05-31", "2025-12-31", "2026-06-01"],
    "due_at": [
        "2026-12-03T09:10:30.123456Z",
        "2026-12-03T09:10:30.123Z",
        "2026-01-01T00:00:00Z",
        "2027-03-01T12:00:00Z",
    ],
    "vip": [True, False],
    "region": [
        {"province": "广东省", "city": "深圳市"},
        {"province": "北京市", "city": None},
        {"province": None, "city": "某市"},
        {"province": "上海市", "city": "上海市"},
    ],
    "contacts": [["r-1"], ["r-1", "r-2"], [], ["r-2", "r-3"]],
}
SYSTEM_VALUES: dict[str, list[Any]] = {
    "owner_id": ["u-1", "u-2", "u-3", None],
    "created_at": ["2026-01-01T00:00:00Z", "2026-06-15T08:30:00.5Z", "2026-12-31T23:59:59.999Z"],
}

# What conditions compare with, as a user would type them.
OPERANDS: dict[str, list[Any]] = {
    "name": ["Acme", "acme", "ACME", "a.c", "深圳", "Beta", "corp", "ω", "a", "(cn)"],
    "level": ["a", "Class B", "C类", "b"],
    "products": ["crm", "ERP", "办公"],
    "amount": ["0", "1200.5", "100", -5, "99.99", "1,200.51"],
    "score": [0, 1, 2.5, "3", 1000, -1],
    "signed_on": ["2026-05-01", "2026/5/31", "2026-01-01", "2026-06-01"],
    "due_at": ["2026-12-03T09:10:30.123Z", "2026-12-03T17:10:30.123+08:00", "2026-06-01T00:00:00Z"],
    "vip": [True, False, "是"],
    "region": ["广东", "北京市", "上海"],
    "contacts": ["r-1", "r-2", "r-3"],
    "owner_id": ["u-1", "u-2"],
    "created_at": ["2026-01-01T00:00:00Z", "2026-06-15T08:30:00.500Z", "2026-12-31T23:59:59.999Z"],
}
EQ_OPS = ["eq", "ne", "in", "nin", "is_empty", "not_empty"]
RANGE_OPS = [*EQ_OPS, "gt", "gte", "lt", "lte", "between"]
OPS: dict[str, list[str]] = {
    "name": [*EQ_OPS, "contains", "starts_with"],
    "level": EQ_OPS,
    "products": [*EQ_OPS, "contains"],
    "amount": RANGE_OPS,
    "score": RANGE_OPS,
    "signed_on": RANGE_OPS,
    "due_at": RANGE_OPS,
    "vip": ["eq", "ne", "is_empty", "not_empty"],
    "region": EQ_OPS,
    "contacts": EQ_OPS,
    "owner_id": EQ_OPS,
    "created_at": RANGE_OPS,
}


def _with_empties(pool: list[Any]) -> list[Any]:
    return [*pool, None, MISSING]


def _assemble(values: dict[str, Any]) -> dict[str, Any]:
    data = {k: val for k, val in values.items() if k in FIELDS and val is not MISSING}
    rec: dict[str, Any] = {"data": data}
    rec.update({k: val for k, val in values.items() if k in SYSTEM_VALUES and val is not MISSING})
    return rec


records_st = st.fixed_dictionaries(
    {
        **{k: st.sampled_from(_with_empties(pool)) for k, pool in RECORD_VALUES.items()},
        "owner_id": st.sampled_from(SYSTEM_VALUES["owner_id"]),
        "created_at": st.sampled_from(SYSTEM_VALUES["created_at"]),
    }
).map(_assemble)


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    field = draw(st.sampled_from(sorted(OPS)))
    op = draw(st.sampled_from(OPS[field]))
    pool = st.sampled_from(OPERANDS[field])
    if op in ("is_empty", "not_empty"):
        return {"field": field, "op": op}
    if op in ("in", "nin"):
        value: Any = draw(st.lists(pool, min_size=1, max_size=3))
    elif op == "between":
        value = [draw(pool), draw(pool)]
    else:
        value = draw(pool)
    return {"field": field, "op": op, "value": value}


def _trees(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Trees whose leaves are at most at `depth` (the root is 1): at most 3 * 3 * 2 * 2 = 36 leaves."""
    if depth >= 5:
        return leaves()
    children = st.lists(_trees(depth + 1), min_size=1, max_size=3 if depth <= 2 else 2)
    groups = st.builds(lambda kind, nodes: {kind: nodes}, st.sampled_from(["and", "or"]), children)
    return st.one_of(leaves(), groups)


trees_st = _trees(1)


def _python_ids(tree: dict[str, Any], records: list[dict[str, Any]]) -> set[int]:
    condition = parse_condition(tree, FIELDS)
    assert condition is not None and condition.compilable
    return {i for i, rec in enumerate(records) if condition.matches(rec)}


def _store_ids(tree: dict[str, Any], collection: Collection[Any]) -> set[int]:
    condition = parse_condition(tree, FIELDS)
    assert condition is not None
    return {doc["_id"] for doc in collection.find(condition.to_mongo(), {"_id": 1})}


def _load(collection: Collection[Any], records: list[dict[str, Any]]) -> None:
    collection.delete_many({})
    collection.insert_many([{"_id": i, **snapshot(FIELDS, rec)} for i, rec in enumerate(records)])


@pytest.fixture(scope="module")
def store() -> Iterator[StoreProcess]:
    s = start_store(cache_size="256M")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(store: StoreProcess) -> Iterator[MongoClient[Any]]:
    c: MongoClient[Any] = MongoClient(store.url, tz_aware=True)
    yield c
    c.close()


@pytest.fixture()
def collection(client: MongoClient[Any]) -> Collection[Any]:
    return client["crm_workflow_it"][f"conditions_{uuid.uuid4().hex[:10]}"]


def _fixed_pool(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` records with values drawn from the pools (MISSING and None included) by a seeded generator."""
    rng = random.Random(seed)
    pools = {**{k: _with_empties(p) for k, p in RECORD_VALUES.items()}, **SYSTEM_VALUES}
    return [_assemble({k: rng.choice(pool) for k, pool in pools.items()}) for _ in range(n)]


FIXED_RECORDS = _fixed_pool(80, seed=20261203)
_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout: a failure prints its example
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(tree=trees_st)
def test_trees_agree_on_a_fixed_pool(collection: Collection[Any], tree: dict[str, Any]) -> None:
    if collection.estimated_document_count() == 0:
        _load(collection, FIXED_RECORDS)
    assert _python_ids(tree, FIXED_RECORDS) == _store_ids(tree, collection)


@_SETTINGS
@given(records=st.lists(records_st, min_size=1, max_size=60), trees=st.lists(trees_st, min_size=1, max_size=3))
def test_random_records_and_trees_agree(
    collection: Collection[Any], records: list[dict[str, Any]], trees: list[dict[str, Any]]
) -> None:
    _load(collection, records)
    for tree in trees:
        assert _python_ids(tree, records) == _store_ids(tree, collection), tree


@pytest.mark.parametrize("field", sorted(OPS))
def test_every_operator_and_operand_agrees(collection: Collection[Any], field: str) -> None:
    """Each field with each of its operators and each operand of its pool, over the fixed pool."""
    _load(collection, FIXED_RECORDS)
    for op in OPS[field]:
        operands: list[Any] = [None] if op in ("is_empty", "not_empty") else OPERANDS[field]
        for operand in operands:
            value = [operand, OPERANDS[field][-1]] if op in ("in", "nin", "between") else operand
            tree = {"field": field, "op": op, "value": value}
            assert _python_ids(tree, FIXED_RECORDS) == _store_ids(tree, collection), tree
