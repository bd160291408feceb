"""to_output and filter_value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import crm_schema as s
from crm_runtime.errors import ValidationFailed


def test_to_output(f: Any, ctx: Any) -> None:
    assert s.to_output(f("m", "money"), 123450, ctx=ctx) == "1234.50"
    assert s.to_output(f("c", "created_at"), datetime(2024, 5, 1, 1, 30, tzinfo=UTC), ctx=ctx) == "2024-05-01T01:30:00Z"
    assert s.to_output(f("d", "datetime"), "2024-05-01T09:30:00+08:00", ctx=ctx) == "2024-05-01T01:30:00Z"
    assert s.to_output(f("d", "date"), "2024-05-01", ctx=ctx) == "2024-05-01"
    assert s.to_output(f("r", "rollup", result_type="money"), 500, ctx=ctx) == "5.00"
    assert s.to_output(f("x", "formula", result_type="money"), 1, ctx=ctx) == "0.01"
    assert s.to_output(f("x", "text"), None, ctx=ctx) is None
    items = f("items", "sub_table", fields=[f("price", "money"), f("at", "datetime")])
    rows = [{"price": 100, "at": datetime(2024, 1, 1, tzinfo=UTC)}]
    assert s.to_output(items, rows, ctx=ctx) == [{"price": "1.00", "at": "2024-01-01T00:00:00Z"}]


def test_mask() -> None:
    assert s.mask("13800138000") == "138****8000"
    assert s.mask("11010519491231002X") == "1101****002X"
    assert s.mask("short") == "******"


def filter_rule(field: dict[str, Any], op: str, value: Any, ctx: Any) -> str:
    with pytest.raises(ValidationFailed) as info:
        s.filter_value(field, op, value, ctx=ctx)
    assert len(info.value.errors) == 1
    assert info.value.errors[0].field == field["key"]
    return info.value.errors[0].rule


def test_filter_coerces_to_stored_form(f: Any, ctx: Any) -> None:
    assert s.filter_value(f("m", "money"), "gte", "100", ctx=ctx) == 10000
    assert s.filter_value(f("m", "money"), "between", ["1", "¥2.5"], ctx=ctx) == [100, 250]
    assert s.filter_value(f("d", "date"), "lt", "2024/5/1", ctx=ctx) == "2024-05-01"
    assert s.filter_value(f("t", "datetime"), "gte", "2024-05-01", ctx=ctx) == datetime(2024, 4, 30, 16, tzinfo=UTC)
    assert s.filter_value(f("t", "created_at"), "lt", "2024-05-01T00:00:00Z", ctx=ctx) == datetime(
        2024, 5, 1, tzinfo=UTC
    )
    assert s.filter_value(f("p", "mobile"), "eq", "+86 138-0013-8000", ctx=ctx) == "13800138000"
    assert s.filter_value(f("p", "mobile"), "contains", "138 0013", ctx=ctx) == "1380013"
    assert s.filter_value(f("e", "email"), "eq", "A@B.COM", ctx=ctx) == "A@b.com"
    assert s.filter_value(f("s", "select", options=["A", "B"]), "in", ["A", "B"], ctx=ctx) == ["A", "B"]
    assert s.filter_value(f("m", "multi_select", options=["A", "B"]), "contains", "B", ctx=ctx) == "B"
    assert s.filter_value(f("b", "boolean"), "eq", "是", ctx=ctx) is True
    assert s.filter_value(f("r", "region"), "eq", "广东", ctx=ctx) == "广东省"
    assert s.filter_path(f("r", "region")) == ".province"
    assert s.filter_path(f("t", "text")) == ""
    assert s.filter_value(f("t", "text"), "contains", " 华信 ", ctx=ctx) == "华信"
    assert s.filter_value(f("t", "text"), "empty", None, ctx=ctx) is None
    assert s.filter_value(f("o", "owner"), "eq", "u1", ctx=ctx) == "u1"
    rel = f("c", "relation", relation={"form_id": "customer"})
    # Filtering by a deleted record's id is allowed: filters do not look records up.
    assert s.filter_value(rel, "eq", "gone", ctx=ctx) == "gone"
    assert s.filter_value(f("n", "formula", result_type="money"), "gt", "1", ctx=ctx) == 100


def test_filter_refusals(f: Any, ctx: Any) -> None:
    assert filter_rule(f("s", "select", options=["A"]), "eq", "Z", ctx) == "option"
    assert filter_rule(f("m", "money"), "gte", "abc", ctx) == "format"
    assert filter_rule(f("m", "money"), "gte", {"$gt": 0}, ctx) == "operator"
    assert filter_rule(f("t", "text"), "eq", {"$ne": None}, ctx) == "operator"
    assert filter_rule(f("t", "text"), "in", [{"$where": "1"}], ctx) == "operator"
    assert filter_rule(f("t", "text"), "regex", ".*", ctx) == "filter_operator"
    assert filter_rule(f("b", "boolean"), "gt", True, ctx) == "filter_operator"
    assert filter_rule(f("e", "encrypted_text"), "eq", "x", ctx) == "filter_operator"
    assert filter_rule(f("m", "money"), "between", ["1"], ctx) == "format"
    assert filter_rule(f("m", "money"), "in", "1", ctx) == "type"
    assert filter_rule(f("p", "mobile"), "eq", "123", ctx) == "format"
    assert filter_rule(f("t", "text"), "eq", "", ctx) == "required"


def test_filter_error_message_is_localised(f: Any, en_ctx: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        s.filter_value(f("amount", "money", "金额", "Amount"), "gte", "abc", ctx=en_ctx)
    assert info.value.errors[0].message == "Amount is not a valid amount of money"
    assert s.operators_for(f("c", "relation", relation={"form_id": "x", "many": True})) >= {"contains", "all"}
