"""Unit tests of automation conditions (domain/conditions.py): operators per field type, checks, event operators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_runtime.errors import ValidationFailed
from workflow_service.domain.conditions import Condition, parse_condition, snapshot


def _opts(*items: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"value": value, "label": {"zh-CN": zh, "en": en}} for value, zh, en in items]


def _field(key: str, ftype: str, zh: str, en: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "type": ftype, "label": {"zh-CN": zh, "en": en}, **extra}


FIELDS: dict[str, dict[str, Any]] = {
    f["key"]: f
    for f in (
        _field("name", "text", "客户名称", "Customer name"),
        _field("email", "email", "邮箱", "Email"),
        _field("mobile", "mobile", "手机", "Mobile"),
        _field("website", "url", "网址", "Website"),
        _field(
            "level",
            "select",
            "客户分级",
            "Level",
            options=_opts(("a", "A类客户", "Class A"), ("b", "B类客户", "Class B")),
        ),
        _field("stage", "stage", "阶段", "Stage", options=_opts(("lead", "线索", "Lead"), ("won", "赢单", "Won"))),
        _field(
            "products",
            "multi_select",
            "产品",
            "Products",
            options=_opts(("crm", "客户管理", "CRM"), ("erp", "ERP", "ERP"), ("oa", "办公", "OA")),
        ),  # fmt: skip
        _field("tags", "tags", "标签", "Tags"),
        _field("amount", "money", "金额", "Amount"),
        _field("score", "number", "评分值", "Score"),
        _field("qty", "integer", "数量", "Quantity"),
        _field("rate", "percent", "折扣", "Discount"),
        _field("stars", "rating", "星级", "Stars"),
        _field("signed_on", "date", "签约日期", "Signed on"),
        _field("due_at", "datetime", "截止时间", "Due at"),
        _field("vip", "boolean", "重点客户", "VIP"),
        _field("rep", "user", "销售", "Sales rep"),
        _field("contacts", "relation", "联系人", "Contacts", relation={"form_id": "contact", "many": True}),
        _field("dept", "department", "部门", "Department"),
        _field("region", "region", "地区", "Region"),
        _field("address", "address", "地址", "Address"),
        _field("files", "attachment", "附件", "Files"),
    )
}


def cond(tree: Any) -> Condition:
    parsed = parse_condition(tree, FIELDS)
    assert parsed is not None
    return parsed


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def record(**data: Any) -> dict[str, Any]:
    return {"data": data}


MISSING = object()


def holds(field: str, op: str, value: Any, stored: Any) -> bool:
    """Whether leaf(field, op, value) matches a record whose `field` holds `stored` (MISSING: absent)."""
    data = {} if stored is MISSING else {field: stored}
    return cond(leaf(field, op, value)).matches({"data": data})


# ---------------------------------------------------------------- operators on each type

CASES = [
    # text: eq is exact (case-sensitive, as in MongoDB); contains/starts_with are case-insensitive
    ("name", "eq", "Acme", "Acme", True),
    ("name", "eq", "Acme", "acme", False),
    ("name", "eq", "Acme", MISSING, False),
    ("name", "eq", " Acme ", "Acme", True),
    ("name", "ne", "Acme", "Beta", True),
    ("name", "ne", "Acme", MISSING, True),
    ("name", "ne", "Acme", None, True),
    ("name", "ne", "Acme", "Acme", False),
    ("name", "in", ["Acme", "Beta"], "Beta", True),
    ("name", "in", ["Acme", "Beta"], "Gamma", False),
    ("name", "nin", ["Acme", "Beta"], MISSING, True),
    ("name", "nin", ["Acme", "Beta"], "Acme", False),
    ("name", "contains", "CM", "Acme", True),
    ("name", "contains", "CM", "Beta", False),
    ("name", "contains", "CM", MISSING, False),
    ("name", "contains", "a.c", "a.c corp", True),
    ("name", "contains", "a.c", "abc corp", False),
    ("name", "contains", "(深圳)", "华为（深圳）", False),
    ("name", "contains", "深圳", "华为(深圳)", True),
    ("name", "starts_with", "ac", "Acme", True),
    ("name", "starts_with", "ac", "The Acme", False),
    ("name", "starts_with", "ac", 123, False),
    ("name", "is_empty", None, MISSING, True),
    ("name", "is_empty", None, None, True),
    ("name", "is_empty", None, "", True),
    ("name", "is_empty", None, "x", False),
    ("name", "not_empty", None, "x", True),
    ("name", "not_empty", None, "", False),
    ("name", "not_empty", None, MISSING, False),
    # contact types: operands normalised like stored values
    ("email", "eq", "Sales@ACME.com", "Sales@acme.com", True),
    ("email", "contains", "ACME", "sales@acme.com", True),
    ("mobile", "eq", "+86 138-0013-8000", "13800138000", True),
    ("mobile", "contains", "138 0013", "13800138000", True),
    ("website", "eq", "www.acme.com", "https://www.acme.com", True),
    # select/stage: the option value, or its label in either language
    ("level", "eq", "a", "a", True),
    ("level", "eq", "Class A", "a", True),
    ("level", "eq", "A类客户", "a", True),
    ("level", "eq", "class a", "a", True),
    ("level", "eq", "Class A", "b", False),
    ("level", "ne", "B类客户", MISSING, True),
    ("level", "ne", "b", "b", False),
    ("level", "in", ["a", "Class B"], "b", True),
    ("level", "nin", ["a", "Class B"], "b", False),
    ("level", "is_empty", None, "", True),
    ("stage", "eq", "Won", "won", True),
    ("stage", "in", ["线索"], "lead", True),
    # multi_select: a list matches when one element does; ne/nin when none does
    ("products", "eq", "crm", ["crm", "erp"], True),
    ("products", "eq", "crm", ["oa"], False),
    ("products", "eq", "crm", [], False),
    ("products", "contains", "CRM", ["erp", "crm"], True),
    ("products", "contains", "客户管理", ["erp"], False),
    ("products", "ne", "crm", ["erp"], True),
    ("products", "ne", "crm", ["crm", "erp"], False),
    ("products", "ne", "crm", MISSING, True),
    ("products", "in", ["oa", "ERP"], ["erp"], True),
    ("products", "in", ["oa"], ["crm", "erp"], False),
    ("products", "nin", ["oa"], ["crm"], True),
    ("products", "nin", ["oa"], ["crm", "oa"], False),
    ("products", "is_empty", None, [], True),
    ("products", "is_empty", None, None, True),
    ("products", "is_empty", None, MISSING, True),
    ("products", "is_empty", None, ["crm"], False),
    ("products", "not_empty", None, ["crm"], True),
    # tags: free text; contains/starts_with on any tag, case-insensitive
    ("tags", "eq", "VIP", ["VIP", "new"], True),
    ("tags", "eq", "VIP", ["vip"], False),
    ("tags", "contains", "ip", ["VIP"], True),
    ("tags", "starts_with", "v", ["old", "VIP"], True),
    ("tags", "starts_with", "v", ["aVIP"], False),
    ("tags", "nin", ["VIP"], ["new"], True),
    # money: text in yuan, compared in fen
    ("amount", "eq", "1200.5", "1200.50", True),
    ("amount", "eq", 1200.5, "1200.50", True),
    ("amount", "eq", "¥1,200.50", "1200.50", True),
    ("amount", "ne", "1200.5", "1200.51", True),
    ("amount", "gt", "1000", "1200.50", True),
    ("amount", "gt", "1200.50", "1200.50", False),
    ("amount", "gte", "1200.50", "1200.50", True),
    ("amount", "lt", 1000, "1200.50", False),
    ("amount", "lte", "0", "-0.01", True),
    ("amount", "between", ["1000", "1200.50"], "1200.50", True),
    ("amount", "between", [1300, 2000], "1200.50", False),
    ("amount", "in", ["1", "1200.5"], "1200.50", True),
    ("amount", "gt", "0", MISSING, False),
    ("amount", "lt", "0", None, False),
    ("amount", "ne", "0", MISSING, True),
    ("amount", "is_empty", None, None, True),
    # number types
    ("score", "gt", 3, 3.5, True),
    ("score", "gte", 3, 3, True),
    ("score", "eq", 2, 2.0, True),
    ("score", "eq", "2.50", 2.5, True),
    ("score", "lt", 5, None, False),
    ("score", "lt", 5, True, False),  # a boolean is no number (MongoDB's type brackets)
    ("score", "gt", 1, "5", True),  # numeric text is read as its number
    ("score", "gt", 1, "abc", False),
    ("score", "ne", 1, "abc", True),
    ("qty", "in", [1, 2], 2, True),
    ("qty", "between", [1, 3], 4, False),
    ("rate", "lte", "12.5%", 12.5, True),
    ("rate", "gt", 12.5, 12.4, False),
    ("stars", "gte", 4, 5, True),
    ("stars", "eq", 4, 5, False),
    # date: "YYYY-MM-DD" text
    ("signed_on", "eq", "2026/5/1", "2026-05-01", True),
    ("signed_on", "gt", "2026-04-30", "2026-05-01", True),
    ("signed_on", "lt", "2026-05-01", "2026-05-01", False),
    ("signed_on", "between", ["2026-05-01", "2026-05-31"], "2026-05-31", True),
    ("signed_on", "between", ["2026-05-01", "2026-05-31"], "2026-06-01", False),
    ("signed_on", "lt", "2027-01-01", MISSING, False),
    ("signed_on", "nin", ["2026-05-01"], "2026-05-02", True),
    # datetime: aware moments, to the millisecond
    ("due_at", "gt", "2026-12-03T09:00:00Z", "2026-12-03T09:10:30.123456Z", True),
    ("due_at", "lt", "2026-12-03T09:00:00Z", "2026-12-03T09:10:30.123456Z", False),
    ("due_at", "eq", "2026-12-03T17:10:30.123+08:00", "2026-12-03T09:10:30.123456Z", True),
    ("due_at", "between", ["2026-12-01T00:00:00Z", "2026-12-31T23:59:59Z"], "2026-12-03T09:10:30Z", True),
    ("due_at", "gte", "2026-12-01T00:00:00Z", None, False),
    ("due_at", "is_empty", None, None, True),
    # boolean
    ("vip", "eq", True, True, True),
    ("vip", "eq", "是", True, True),
    ("vip", "eq", "no", False, True),
    ("vip", "eq", False, None, False),
    ("vip", "ne", True, MISSING, True),
    ("vip", "ne", True, True, False),
    ("vip", "is_empty", None, False, False),
    # references: one id, or a list of ids
    ("rep", "eq", "u-1", "u-1", True),
    ("rep", "in", ["u-2", "u-3"], "u-1", False),
    ("rep", "nin", ["u-2"], "u-1", True),
    ("dept", "eq", "d-1", "d-1", True),
    ("contacts", "eq", "r-2", ["r-1", "r-2"], True),
    ("contacts", "ne", "r-2", ["r-1", "r-2"], False),
    ("contacts", "nin", ["r-3"], ["r-1", "r-2"], True),
    ("contacts", "in", ["r-3", "r-1"], ["r-1"], True),
    ("contacts", "is_empty", None, [], True),
    # region/address: compared on the province
    ("region", "eq", "广东", {"province": "广东省", "city": "深圳市"}, True),
    ("region", "eq", "广东省", {"province": "广东省", "city": None}, True),
    ("region", "in", ["北京", "上海市"], {"province": "上海市", "city": None}, True),
    ("region", "ne", "广东", {"province": "北京市", "city": None}, True),
    ("region", "is_empty", None, {"province": None, "city": "深圳市"}, True),
    ("region", "not_empty", None, {"province": "广东省", "city": None}, True),
    ("address", "eq", {"province": "广东"}, {"province": "广东省", "city": "深圳市", "detail": "1 号"}, True),
    # other types: presence only
    ("files", "not_empty", None, [{"id": "f1", "name": "a.pdf"}], True),
    ("files", "is_empty", None, [], True),
    ("files", "is_empty", None, MISSING, True),
]


@pytest.mark.parametrize(("field", "op", "value", "stored", "expected"), CASES)
def test_operator(field: str, op: str, value: Any, stored: Any, expected: bool) -> None:
    assert holds(field, op, value, stored) is expected


SYSTEM_RECORD = {
    "data": {},
    "owner_id": "u-1",
    "department_id": "d-1",
    "created_by": "u-2",
    "created_at": "2026-12-03T09:10:30.123456Z",
    "updated_at": "2026-12-04T00:00:00Z",
}


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (leaf("owner_id", "eq", "u-1"), True),
        (leaf("owner_id", "in", ["u-3", "u-1"]), True),
        (leaf("department_id", "ne", "d-1"), False),
        (leaf("created_by", "nin", ["u-1"]), True),
        (leaf("created_at", "lt", "2027-01-01T00:00:00Z"), True),
        (leaf("created_at", "eq", "2026-12-03T09:10:30.123Z"), True),
        (leaf("updated_at", "between", ["2026-12-04T00:00:00Z", "2026-12-05T00:00:00+08:00"]), True),
        (leaf("updated_at", "gt", "2026-12-04T00:00:00Z"), False),
        (leaf("owner_id", "is_empty"), False),
    ],
)
def test_system_fields(tree: dict[str, Any], expected: bool) -> None:
    assert cond(tree).matches(SYSTEM_RECORD) is expected


def test_groups_nest() -> None:
    tree = {
        "and": [
            leaf("level", "eq", "Class A"),
            {"or": [leaf("amount", "gte", "1000"), leaf("tags", "eq", "VIP")]},
        ]
    }
    c = cond(tree)
    assert c.matches(record(level="a", amount="1000.00"))
    assert c.matches(record(level="a", amount="1.00", tags=["VIP"]))
    assert not c.matches(record(level="a", amount="1.00"))
    assert not c.matches(record(level="b", amount="5000.00"))
    assert c.fields() == {"level", "amount", "tags"}


def test_empty_means_always() -> None:
    assert parse_condition(None, FIELDS) is None
    assert parse_condition({}, FIELDS) is None


def test_fields_include_system_fields() -> None:
    c = cond({"or": [leaf("owner_id", "eq", "u-1"), leaf("name", "changed"), leaf("amount", "gt", 1)]})
    assert c.fields() == {"owner_id", "name", "amount"}


# ---------------------------------------------------------------- event operators

CHANGES = {
    "level": {"old": "a", "new": "b"},
    "amount": {"old": "1200.50", "new": None},
    "files": {"old": [], "new": [{"id": "f1"}]},
    "owner_id": {"old": "u-1", "new": "u-2"},
}


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (leaf("level", "changed"), True),
        (leaf("name", "changed"), False),
        (leaf("files", "changed"), True),
        (leaf("owner_id", "changed"), True),
        (leaf("level", "changed_from", "Class A"), True),
        (leaf("level", "changed_from", "b"), False),
        (leaf("level", "changed_to", "B类客户"), True),
        (leaf("level", "changed_to", "a"), False),
        (leaf("amount", "changed_from", "1200.5"), True),
        (leaf("amount", "changed_to", None), True),  # became empty
        (leaf("amount", "changed_from", None), False),
        (leaf("name", "changed_to", None), False),  # not among the changes
        (leaf("owner_id", "changed_to", "u-2"), True),
        ({"and": [leaf("level", "changed_to", "b"), leaf("amount", "is_empty")]}, True),
        ({"and": [leaf("level", "changed_to", "b"), leaf("amount", "not_empty")]}, False),
    ],
)
def test_event_operators(tree: dict[str, Any], expected: bool) -> None:
    rec = {"data": {"level": "b", "files": [{"id": "f1"}]}, "owner_id": "u-2"}
    assert cond(tree).matches(rec, CHANGES) is expected


def test_event_operators_need_changes() -> None:
    c = cond(leaf("level", "changed"))
    assert not c.matches(record(level="a"))
    assert not c.matches(record(level="a"), {})
    assert not cond(leaf("level", "changed_to", "a")).matches(record(level="a"))


def test_event_operators_are_not_compilable() -> None:
    c = cond({"or": [leaf("level", "eq", "a"), leaf("level", "changed")]})
    assert not c.compilable
    with pytest.raises(ValueError):
        c.to_mongo()
    assert cond(leaf("level", "eq", "a")).compilable


# ---------------------------------------------------------------- the MongoDB filter and the snapshot


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        (leaf("level", "eq", "Class A"), {"data.level": "a"}),
        (leaf("level", "ne", "a"), {"data.level": {"$ne": "a"}}),
        (leaf("products", "in", ["CRM", "oa"]), {"data.products": {"$in": ["crm", "oa"]}}),
        (leaf("products", "contains", "CRM"), {"data.products": "crm"}),
        (leaf("amount", "between", ["1", "2.5"]), {"data.amount": {"$gte": 100, "$lte": 250}}),
        (leaf("amount", "gt", "1"), {"data.amount": {"$gt": 100}}),
        (leaf("name", "contains", "a.b"), {"data.name": {"$regex": r"a\.b", "$options": "i"}}),
        (leaf("name", "starts_with", "Ac"), {"data.name": {"$regex": "^Ac", "$options": "i"}}),
        (leaf("name", "is_empty"), {"data.name": {"$in": [None, "", []]}}),
        (leaf("name", "not_empty"), {"data.name": {"$nin": [None, "", []]}}),
        (leaf("region", "eq", "广东"), {"data.region": "广东省"}),
        (leaf("owner_id", "eq", "u-1"), {"owner_id": "u-1"}),
        (
            leaf("created_at", "gte", "2026-12-03T17:00:00+08:00"),
            {"created_at": {"$gte": datetime(2026, 12, 3, 9, tzinfo=UTC)}},
        ),
        (
            {"or": [leaf("vip", "eq", True), {"and": [leaf("qty", "lt", 3), leaf("signed_on", "eq", "2026/5/1")]}]},
            {"$or": [{"data.vip": True}, {"$and": [{"data.qty": {"$lt": 3}}, {"data.signed_on": "2026-05-01"}]}]},
        ),
    ],
)
def test_to_mongo(tree: dict[str, Any], expected: dict[str, Any]) -> None:
    assert cond(tree).to_mongo() == expected


def test_to_mongo_prefix_applies_to_data_fields_only() -> None:
    c = cond({"and": [leaf("level", "eq", "a"), leaf("owner_id", "eq", "u-1")]})
    assert c.to_mongo("snapshot.data.") == {"$and": [{"snapshot.data.level": "a"}, {"owner_id": "u-1"}]}


def test_snapshot_normalises_values() -> None:
    rec = {
        "id": "r-1",
        "data": {
            "name": "Acme",
            "amount": "1200.50",
            "score": 3.5,
            "qty": 2,
            "signed_on": "2026-05-01",
            "due_at": "2026-12-03T09:10:30.123456Z",
            "level": "a",
            "products": ["crm", "", None, "oa"],
            "contacts": ["r-1"],
            "region": {"province": "广东省", "city": "深圳市"},
            "vip": None,
            "unknown": "dropped",
        },
        "owner_id": "u-1",
        "created_at": "2026-12-03T09:10:30Z",
        "version": 3,
    }
    assert snapshot(FIELDS, rec) == {
        "data": {
            "name": "Acme",
            "amount": 120050,
            "score": 3.5,
            "qty": 2,
            "signed_on": "2026-05-01",
            "due_at": datetime(2026, 12, 3, 9, 10, 30, 123000, tzinfo=UTC),
            "level": "a",
            "products": ["crm", "oa"],
            "contacts": ["r-1"],
            "region": "广东省",
            "vip": None,
        },
        "owner_id": "u-1",
        "created_at": datetime(2026, 12, 3, 9, 10, 30, tzinfo=UTC),
    }


def test_snapshot_keeps_unreadable_values() -> None:
    snap = snapshot(FIELDS, record(amount="n/a", score="abc", signed_on=5, due_at="soon"))
    assert snap["data"] == {"amount": "n/a", "score": "abc", "signed_on": 5, "due_at": "soon"}
    assert not cond(leaf("amount", "gt", 0)).matches(record(amount="n/a"))


# ---------------------------------------------------------------- checks


def _in_values(n: int) -> list[str]:
    return [f"v{i}" for i in range(n)]


def _deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = leaf("name", "eq", "x")
    for _ in range(levels - 1):
        node = {"and": [node]}
    return node


ERRORS = [
    ("not an object", "condition", "invalid_condition"),
    ({"and": "x"}, "condition", "invalid_condition"),
    ({"and": [leaf("name", "eq", "x")], "or": [leaf("name", "eq", "y")]}, "condition", "invalid_condition"),
    ({"and": []}, "condition.and", "empty_group"),
    ({"op": "eq", "value": 1}, "condition.field", "field_required"),
    (leaf("nope", "eq", 1), "condition.field", "unknown_field"),
    (leaf("name", "like", "x"), "condition.op", "unknown_operator"),
    (leaf("level", "contains", "a"), "condition.op", "operator_not_allowed"),
    (leaf("vip", "gt", True), "condition.op", "operator_not_allowed"),
    (leaf("name", "between", ["a", "b"]), "condition.op", "operator_not_allowed"),
    (leaf("files", "eq", "f1"), "condition.op", "operator_not_allowed"),
    (leaf("files", "changed_from", "f1"), "condition.op", "operator_not_allowed"),
    (leaf("created_at", "contains", "2026"), "condition.op", "operator_not_allowed"),
    (leaf("owner_id", "gt", "u-1"), "condition.op", "operator_not_allowed"),
    (leaf("name", "eq", None), "condition.value", "value_required"),
    (leaf("name", "eq", " "), "condition.value", "value_required"),
    (leaf("name", "eq", ["a"]), "condition.value", "value_type"),
    (leaf("name", "eq", {"$ne": "a"}), "condition.value", "value_type"),
    (leaf("name", "contains", True), "condition.value", "value_type"),
    (leaf("name", "contains", "x" * 201), "condition.value", "value_too_long"),
    (leaf("score", "eq", "abc"), "condition.value", "value_format"),
    (leaf("score", "eq", True), "condition.value", "value_type"),
    (leaf("amount", "gt", "12,34x"), "condition.value", "value_format"),
    (leaf("signed_on", "eq", "2026-13-01"), "condition.value", "value_format"),
    (leaf("signed_on", "eq", 20260501), "condition.value", "value_type"),
    (leaf("due_at", "gt", "2026-01-01T00:00:00"), "condition.value", "value_format"),
    (leaf("due_at", "gt", "2026-01-01"), "condition.value", "value_format"),
    (leaf("due_at", "eq", 12), "condition.value", "value_type"),
    (leaf("vip", "eq", "maybe"), "condition.value", "value_format"),
    (leaf("vip", "eq", 1), "condition.value", "value_type"),
    (leaf("email", "eq", "not-an-email"), "condition.value", "value_format"),
    (leaf("mobile", "eq", "123"), "condition.value", "value_format"),
    (leaf("rep", "eq", "bad id!"), "condition.value", "value_format"),
    (leaf("region", "eq", "火星"), "condition.value", "value_format"),
    (leaf("level", "eq", "Z"), "condition.value", "option"),
    (leaf("level", "changed_to", "Z"), "condition.value", "option"),
    (leaf("products", "contains", "Z"), "condition.value", "option"),
    (leaf("level", "in", ["a", "Z"]), "condition.value[1]", "option"),
    (leaf("level", "in", "a"), "condition.value", "value_type"),
    (leaf("level", "in", []), "condition.value", "value_required"),
    (leaf("name", "in", _in_values(201)), "condition.value", "too_many_values"),
    (leaf("score", "between", [1]), "condition.value", "between_values"),
    (leaf("score", "between", [1, 2, 3]), "condition.value", "between_values"),
    (leaf("score", "between", [1, "x"]), "condition.value[1]", "value_format"),
    (leaf("score", "between", 1), "condition.value", "value_type"),
    (
        {"and": [leaf("name", "eq", "x"), {"or": [leaf("name", "eq", "y"), leaf("level", "gt", "a")]}]},
        "condition.and[1].or[1].op",
        "operator_not_allowed",
    ),
    ({"or": [leaf("name", "eq", "x"), "leaf"]}, "condition.or[1]", "invalid_condition"),
    (_deep(6), "condition", "too_deep"),
    ({"or": [leaf("name", "eq", str(i)) for i in range(51)]}, "condition", "too_many_conditions"),
]


@pytest.mark.parametrize(("tree", "path", "rule"), ERRORS)
@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_validation_errors(tree: Any, path: str, rule: str, locale: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_condition(tree, FIELDS, locale=locale)
    [error] = caught.value.errors
    assert (error.field, error.rule) == (path, rule)
    assert error.message and error.message != rule
    if "label" in error.params:
        field = FIELDS.get(tree["field"]) if isinstance(tree, dict) and "field" in tree else None
        if field is not None:
            assert field["label"][locale] in error.message
    other = "en" if locale == "zh-CN" else "zh-CN"
    with pytest.raises(ValidationFailed) as again:
        parse_condition(tree, FIELDS, locale=other)
    assert again.value.errors[0].message != error.message


def test_limits_are_inclusive() -> None:
    assert parse_condition(_deep(5), FIELDS) is not None
    assert parse_condition({"or": [leaf("name", "eq", str(i)) for i in range(50)]}, FIELDS) is not None
    assert parse_condition(leaf("name", "in", _in_values(200)), FIELDS) is not None


def test_messages_name_the_field_label() -> None:
    tree = leaf("level", "contains", "a")
    with pytest.raises(ValidationFailed) as zh:
        parse_condition(tree, FIELDS)
    assert zh.value.errors[0].message == "条件中的字段“客户分级”不支持运算符 contains"
    with pytest.raises(ValidationFailed) as en:
        parse_condition(tree, FIELDS, locale="en")
    assert en.value.errors[0].message == "The field “Level” in the condition does not support the operator contains"
    with pytest.raises(ValidationFailed) as option:
        parse_condition(leaf("level", "eq", "Z"), FIELDS, locale="en")
    assert option.value.errors[0].message == "“Z” is not an option of the field “Level” in the condition"


def test_every_broken_leaf_is_reported_under_where() -> None:
    tree = {"and": [leaf("nope", "eq", 1), leaf("name", "eq", "ok"), leaf("amount", "gt", "x")]}
    with pytest.raises(ValidationFailed) as caught:
        parse_condition(tree, FIELDS, where="automation.condition")
    assert [(e.field, e.rule) for e in caught.value.errors] == [
        ("automation.condition.and[0].field", "unknown_field"),
        ("automation.condition.and[2].value", "value_format"),
    ]
    assert caught.value.to_problem()["errors"][1]["params"]["label"] == "金额"
