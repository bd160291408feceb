"""validate_data: create vs update, required rules, refused keys, operator injection, sub-tables."""

from __future__ import annotations

from typing import Any

import pytest

import crm_schema as s


def rules(result: s.ValidationResult) -> dict[str, str]:
    return {e.field: e.rule for e in result.errors}


@pytest.fixture
def fields(f: Any) -> list[dict[str, Any]]:
    return [
        f("name", "text", "客户名称", "Customer name", required=True),
        f("level", "select", "客户分级", "Level", options=["A", "B", "C"], default="C"),
        f("stage", "stage", "销售阶段", "Stage", options=[{"value": "new"}, {"value": "lost"}], default="new"),
        f(
            "lost_reason",
            "select",
            "输单原因",
            "Lost reason",
            options=["price"],
            required_when={"field": "stage", "in": ["lost"]},
        ),
        f("amount", "money", "金额", "Amount"),
        f("qty", "integer", "数量", "Qty"),
        f("total", "formula", "合计", "Total", expression="amount * qty", result_type="money"),
        f("code", "auto_number", "编号", "Code", pattern="HT-{0000}"),
        f("locked", "text", "锁定", "Locked", read_only=True),
        f("approval", "approval_status", "审批状态", "Approval"),
        f("owner", "owner", "负责人", "Owner"),
        f("mobile", "mobile", "手机号", "Mobile"),
    ]


def test_create_applies_defaults_and_formulas(fields: Any, ctx: Any) -> None:
    result = s.validate_data(fields, {"name": "华信", "amount": "10.5", "qty": 3}, existing=None, ctx=ctx)
    assert result.ok
    assert result.values == {"name": "华信", "level": "C", "stage": "new", "amount": 1050, "qty": 3, "total": 3150}


def test_create_requires_required_fields(fields: Any, ctx: Any) -> None:
    result = s.validate_data(fields, {"name": "  "}, existing=None, ctx=ctx)
    assert rules(result) == {"name": "required"}
    result = s.validate_data(fields, {}, existing=None, ctx=ctx)
    assert rules(result) == {"name": "required"}


def test_required_when(fields: Any, ctx: Any) -> None:
    result = s.validate_data(fields, {"name": "x", "stage": "lost"}, existing=None, ctx=ctx)
    assert rules(result) == {"lost_reason": "required"}
    result = s.validate_data(fields, {"name": "x", "stage": "lost", "lost_reason": "price"}, existing=None, ctx=ctx)
    assert result.ok
    # On update, moving the stage to lost makes the stored empty reason a problem.
    existing = {"name": "x", "stage": "new"}
    result = s.validate_data(fields, {"stage": "lost"}, existing=existing, ctx=ctx)
    assert rules(result) == {"lost_reason": "required"}
    existing = {"name": "x", "stage": "lost", "lost_reason": "price"}
    result = s.validate_data(fields, {"lost_reason": None}, existing=existing, ctx=ctx)
    assert rules(result) == {"lost_reason": "required"}


def test_update_checks_only_given_keys(fields: Any, ctx: Any) -> None:
    existing = {"name": "华信", "amount": 1000, "qty": 2, "total": 2000}
    result = s.validate_data(fields, {"qty": 5}, existing=existing, ctx=ctx)
    assert result.ok
    # No defaults on update; the formula is recomputed from existing + new values.
    assert result.values == {"qty": 5, "total": 5000}
    # Clearing a required field is refused; clearing an optional one stores None.
    assert rules(s.validate_data(fields, {"name": ""}, existing=existing, ctx=ctx)) == {"name": "required"}
    assert s.validate_data(fields, {"amount": None}, existing=existing, ctx=ctx).values == {
        "amount": None,
        "total": None,
    }
    # An update of an unrelated field leaves a record without the (now required) name alone.
    assert s.validate_data(fields, {"qty": 1}, existing={"qty": 2}, ctx=ctx).ok


def test_unknown_system_and_read_only_keys(fields: Any, en_ctx: Any) -> None:
    data = {
        "nope": 1,
        "owner_id": "u1",
        "created_at": "2024-01-01",
        "_id": "x",
        "tenant_id": "t",
        "owner": "u2",
        "code": "HT-0001",
        "total": 1,
        "approval": "approved",
        "locked": "x",
    }
    result = s.validate_data(fields, data, existing={"name": "x"}, ctx=en_ctx)
    assert rules(result) == {
        "nope": "unknown_field",
        "owner_id": "system_field",
        "created_at": "system_field",
        "_id": "system_field",
        "tenant_id": "system_field",
        "owner": "system_field",
        "code": "read_only",
        "total": "read_only",
        "approval": "read_only",
        "locked": "read_only",
    }
    assert result.values == {}


def test_platform_may_write_read_only_fields(fields: Any, ctx: Any) -> None:
    result = s.validate_data(
        fields, {"locked": "set by automation"}, existing={"name": "x"}, ctx=ctx, allow_read_only=True
    )
    assert result.ok and result.values == {"locked": "set by automation"}
    assert rules(s.validate_data(fields, {"total": 1}, existing={}, ctx=ctx, allow_read_only=True)) == {
        "total": "read_only"
    }


@pytest.mark.parametrize(
    "evil",
    [
        {"$ne": None},
        {"$where": "sleep(1000)"},
        {"$gt": ""},
        {"a.b": 1},
        [{"$regex": ".*"}],
        {"province": {"$in": ["广东省"]}},
    ],
)
def test_operator_injection_is_refused(fields: Any, ctx: Any, evil: Any) -> None:
    result = s.validate_data(fields, {"name": evil, "mobile": evil}, existing=None, ctx=ctx)
    assert rules(result) == {"name": "operator", "mobile": "operator"}
    assert "name" not in result.values and "mobile" not in result.values


def test_non_dict_data(fields: Any, ctx: Any) -> None:
    result = s.validate_data(fields, ["x"], existing=None, ctx=ctx)  # type: ignore[arg-type]
    assert [e.rule for e in result.errors] == ["type"]


def test_bad_default_is_reported(f: Any, ctx: Any) -> None:
    result = s.validate_data([f("m", "mobile", default="123")], {}, existing=None, ctx=ctx)
    assert rules(result) == {"m": "format"}


def test_sub_table_rows(f: Any, ctx: Any) -> None:
    items = f(
        "items",
        "sub_table",
        "明细",
        "Items",
        fields=[
            f("product", "text", "产品", "Product", required=True),
            f("qty", "integer", "数量", "Qty", min=1),
            f("price", "money", "单价", "Price"),
            f("line", "formula", "小计", "Line", expression="qty * price", result_type="money"),
        ],
    )
    good = s.validate_data([items], {"items": [{"product": "A", "qty": "2", "price": "9.99"}]}, existing=None, ctx=ctx)
    assert good.ok
    assert good.values == {"items": [{"product": "A", "qty": 2, "price": 999, "line": 1998}]}
    bad = s.validate_data(
        [items],
        {"items": [{"product": "A", "qty": 1}, {"product": "B"}, {"qty": 0, "extra": 1}, "row"]},
        existing=None,
        ctx=ctx,
    )
    assert rules(bad) == {
        "items[2].qty": "min",
        "items[2].extra": "unknown_field",
        "items[2].product": "required",
        "items[3]": "format",
    }
    assert rules(s.validate_data([items], {"items": "x"}, existing=None, ctx=ctx)) == {"items": "type"}


def test_error_messages_name_the_field_in_the_users_language(fields: Any, ctx: Any, en_ctx: Any) -> None:
    zh = s.validate_data(fields, {"name": "x", "mobile": "123"}, existing=None, ctx=ctx)
    en = s.validate_data(fields, {"name": "x", "mobile": "123"}, existing=None, ctx=en_ctx)
    assert zh.errors[0].message == "「手机号」不是有效的中国大陆手机号"
    assert en.errors[0].message == "Mobile is not a valid mainland China mobile number"
    assert zh.errors[0].params == {"kind": "mobile"}
