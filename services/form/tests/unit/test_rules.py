"""Pure rules on names, keys and drafts."""

from __future__ import annotations

import re

from form_service.domain import rules


def test_local_text_fills_missing_locale_and_accepts_plain_strings() -> None:
    assert rules.local_text(" 客户 ") == {"zh-CN": "客户", "en": "客户"}
    assert rules.local_text({"en": "Customer"}) == {"zh-CN": "Customer", "en": "Customer"}
    assert rules.local_text({"zh-CN": "客户", "en": "Customer", "fr": "Client"}) == {
        "zh-CN": "客户",
        "en": "Customer",
    }
    assert rules.local_text({"zh-CN": "  "}) == {}
    assert rules.local_text(42) == {}


def test_keys_are_validated_and_generated_in_the_documented_shape() -> None:
    assert rules.is_valid_key("customer_name")
    assert not rules.is_valid_key("Customer")
    assert not rules.is_valid_key("1abc")
    assert not rules.is_valid_key("a" * 64)
    assert re.fullmatch(r"f_[0-9a-f]{8}", rules.new_key("f"))


def test_with_field_keys_generates_missing_keys_without_touching_the_input() -> None:
    fields = [
        {"type": "text", "label": {"zh-CN": "名称"}},
        {"key": "items", "type": "sub_table", "fields": [{"type": "number"}, {"key": "qty", "type": "number"}]},
    ]
    out = rules.with_field_keys(fields)
    assert "key" not in fields[0]
    assert re.fullmatch(r"f_[0-9a-f]{8}", out[0]["key"])
    assert re.fullmatch(r"f_[0-9a-f]{8}", out[1]["fields"][0]["key"])
    assert out[1]["fields"][1]["key"] == "qty"


def test_type_changes_names_the_field_including_sub_table_children() -> None:
    fields = [
        {"key": "amount", "type": "number"},
        {"key": "items", "type": "sub_table", "fields": [{"key": "qty", "type": "text"}]},
        {"key": "new_one", "type": "date"},
    ]
    locked = {"amount": "money", "items": "sub_table", "items.qty": "number"}
    errors = rules.type_changes(fields, locked, "en")
    assert [(e.field, e.rule) for e in errors] == [("amount", "type_immutable"), ("items.qty", "type_immutable")]
    assert "amount" in errors[0].message and "money" in errors[0].message


def test_default_title_field_prefers_the_first_text_field() -> None:
    assert rules.default_title_field([{"key": "n", "type": "number"}, {"key": "t", "type": "text"}]) == "t"
    assert rules.default_title_field([{"key": "n", "type": "number"}]) == "n"
    assert rules.default_title_field([]) == ""


def test_field_shape_errors() -> None:
    assert [e.rule for e in rules.field_shape_errors({"a": 1}, "zh-CN")] == ["fields_not_list"]
    assert [e.field for e in rules.field_shape_errors([{}, "x"], "zh-CN")] == ["fields[1]"]
    assert rules.field_shape_errors([{}], "zh-CN") == []
