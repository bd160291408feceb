"""Field-definition checks (form publish)."""

from __future__ import annotations

from typing import Any

import pytest

import crm_schema as s


def rules(errors: list[s.DefinitionError]) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in errors]


def test_valid_crm_like_form(f: Any) -> None:
    fields = [
        f("name", "text", "客户名称", "Name", required=True, unique=True, dedupe=True, max_length=100),
        f("stage", "stage", options=[{"value": "new", "label": {"zh-CN": "新线索"}, "probability": 10}]),
        f("reason", "select", options=["price"], required_when={"field": "stage", "in": ["lost"]}),
        f("amount", "money", min=0),
        f("due", "date", min="2020-01-01"),
        f("tax", "formula", expression="round(amount * 0.13, 2)", result_type="money"),
        f("code", "auto_number", pattern="HT-{YYYY}{MM}-{0000}"),
        f("customer", "relation", relation={"form_id": "customer", "many": False}),
        f("industry", "lookup", lookup={"relation_field": "customer", "field": "industry"}),
        f(
            "paid",
            "rollup",
            rollup={"form_id": "payment", "relation_field": "contract", "field": "amount", "agg": "sum"},
        ),
        f("files", "attachment", max_size=1024, accept=["application/pdf"], max_files=3),
        f("secret", "encrypted_text", readable_roles=["admin"]),
        f("rating", "rating", max_rating=5),
        f("items", "sub_table", fields=[f("qty", "integer"), f("line", "formula", expression="qty * 2")]),
        f("created_at", "created_at"),
        f("level", "select", options=["A", "B"], default="A"),
    ]
    assert s.validate_form_fields(fields) == []


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ({"key": "Bad-Key", "type": "text", "label": "x"}, "invalid_key"),
        ({"key": "owner_id", "type": "text", "label": "x"}, "reserved_key"),
        ({"key": "a", "type": "teleport", "label": "x"}, "unknown_type"),
        ({"key": "a", "type": "text"}, "invalid_label"),
        ({"key": "a", "type": "text", "label": "x", "required": "yes"}, "invalid_property"),
        ({"key": "a", "type": "select", "label": "x", "options": []}, "missing_options"),
        ({"key": "a", "type": "select", "label": "x", "options": ["A", "A"]}, "duplicate_option"),
        (
            {"key": "a", "type": "stage", "label": "x", "options": [{"value": "A", "probability": 120}]},
            "invalid_property",
        ),
        ({"key": "a", "type": "number", "label": "x", "min": 5, "max": 1}, "invalid_property"),
        ({"key": "a", "type": "text", "label": "x", "regex": "("}, "invalid_property"),
        ({"key": "a", "type": "boolean", "label": "x", "regex": "x"}, "unsupported_property"),
        ({"key": "a", "type": "boolean", "label": "x", "unique": True}, "unsupported_property"),
        ({"key": "a", "type": "mobile", "label": "x", "default": "123"}, "invalid_default"),
        ({"key": "a", "type": "relation", "label": "x"}, "invalid_property"),
        ({"key": "a", "type": "auto_number", "label": "x", "pattern": "HT-{YYYY}"}, "invalid_pattern"),
        ({"key": "a", "type": "formula", "label": "x", "expression": "b.__class__"}, "formula_syntax"),
        ({"key": "a", "type": "formula", "label": "x", "expression": "a + 1"}, "self_reference"),
        ({"key": "a", "type": "formula", "label": "x", "expression": "ghost * 2"}, "unknown_reference"),
        ({"key": "a", "type": "formula", "label": "x", "expression": "1", "result_type": "xml"}, "invalid_property"),
        (
            {"key": "a", "type": "lookup", "label": "x", "lookup": {"relation_field": "ghost", "field": "y"}},
            "unknown_reference",
        ),
        (
            {
                "key": "a",
                "type": "rollup",
                "label": "x",
                "rollup": {"form_id": "f", "relation_field": "r", "agg": "median"},
            },
            "invalid_property",
        ),
        (
            {"key": "a", "type": "text", "label": "x", "required_when": {"field": "ghost", "in": ["x"]}},
            "unknown_reference",
        ),
        ({"key": "a", "type": "attachment", "label": "x", "max_size": 0}, "invalid_property"),
        ({"key": "a", "type": "sub_table", "label": "x", "fields": []}, "invalid_property"),
        ({"key": "a", "type": "formula", "label": "x", "expression": "1", "required": True}, "unsupported_property"),
    ],
)
def test_definition_errors(field: dict[str, Any], rule: str) -> None:
    assert rule in [e.rule for e in s.validate_definition(field, [field])]


def test_duplicate_keys_and_cycles(f: Any) -> None:
    fields = [
        f("a", "text"),
        f("a", "number"),
        f("x", "formula", expression="y + 1"),
        f("y", "formula", expression="x + 1"),
    ]
    found = rules(s.validate_form_fields(fields))
    assert ("a", "duplicate_key") in found
    assert ("x", "formula_cycle") in found


def test_nested_sub_table_refused(f: Any) -> None:
    inner = f("inner", "sub_table", fields=[f("q", "number")])
    outer = f("outer", "sub_table", fields=[inner, f("bad key", "text")])
    found = rules(s.validate_form_fields([outer]))
    assert ("outer", "nested_sub_table") in found
    assert ("outer.bad key", "invalid_key") in found


def test_not_a_list() -> None:
    assert rules(s.validate_form_fields("x")) == [("fields", "invalid_fields")]  # type: ignore[arg-type]


def test_definition_messages_render_in_both_languages(f: Any) -> None:
    err = s.validate_definition(f("tax", "formula", "税额", "Tax", expression="ghost * 2"), [])[0]
    assert s.message(err.rule, "zh-CN", **err.params) == "字段「税额」引用了不存在的字段「ghost」"
    assert s.message(err.rule, "en", **err.params) == "The field Tax refers to the unknown field ghost"
