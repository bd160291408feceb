"""How merged values are chosen, how relations are re-pointed, and which field choices are refused."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.errors import ValidationFailed
from record_service.domain.forms import FormSchema
from record_service.domain.merge import check_choices, is_empty, merge_values, repointed_value


def form() -> FormSchema:
    fields: list[dict[str, Any]] = [
        {"key": "name", "type": "text", "label": {"zh-CN": "名称", "en": "Name"}, "required": True},
        {"key": "mobile", "type": "mobile"},
        {"key": "level", "type": "select", "options": [{"value": "A"}, {"value": "B"}]},
        {"key": "tags", "type": "tags"},
        {"key": "code", "type": "auto_number", "pattern": "KH-{0000}"},
        {"key": "parent", "type": "relation", "relation": {"form_id": "customer", "many": False}},
        {"key": "peers", "type": "relation", "relation": {"form_id": "f-cust", "many": True}},
        {"key": "owner_contact", "type": "relation", "relation": {"form_id": "contact", "many": False}},
    ]
    return FormSchema("f-cust", "customer", "t1", 3, "name", tuple(fields))


def test_winner_keeps_its_values_and_fills_gaps_from_the_loser() -> None:
    winner = {"name": "甲", "level": "A", "tags": [], "code": "KH-0001", "retired_field": 7}
    loser = {"name": "乙", "mobile": "13800138000", "level": "B", "tags": ["vip"], "code": "KH-0002"}
    merged = merge_values(form(), winner, loser, {}, {"w", "l"})
    assert merged == {
        "name": "甲",
        "mobile": "13800138000",
        "level": "A",
        "tags": ["vip"],
        "code": "KH-0001",  # computed fields are never taken from the loser
        "retired_field": 7,  # a field the form dropped keeps the winner's stored value
    }


def test_choices_take_the_named_side_even_when_empty() -> None:
    winner = {"name": "甲", "level": "A", "mobile": "13900139000"}
    loser = {"name": "乙", "level": "B"}
    merged = merge_values(form(), winner, loser, {"level": "loser", "mobile": "loser", "name": "winner"}, set())
    assert merged == {"name": "甲", "level": "B"}


def test_relations_to_the_same_form_never_point_at_the_merged_pair() -> None:
    winner = {"name": "甲", "peers": ["l", "x"], "owner_contact": "l"}
    loser = {"name": "乙", "parent": "w"}
    merged = merge_values(form(), winner, loser, {}, {"w", "l"})
    assert merged["peers"] == ["x"] and "parent" not in merged
    assert merged["owner_contact"] == "l"  # another form's record that happens to share the id is kept


def test_repointed_value() -> None:
    assert repointed_value("l", "l", "w") == "w"
    assert repointed_value("x", "l", "w") == "x"
    assert repointed_value(["a", "l", "w", "b"], "l", "w") == ["a", "w", "b"]
    assert repointed_value(None, "l", "w") is None


def test_check_choices() -> None:
    assert check_choices(form(), None, "en") == {}
    assert check_choices(form(), {"level": "loser"}, "en") == {"level": "loser"}
    with pytest.raises(ValidationFailed) as exc:
        check_choices(form(), {"nope": "winner", "level": "both", "code": "loser"}, "zh-CN")
    rules = {e.field: e.rule for e in exc.value.errors}
    assert rules == {
        "field_choices.nope": "unknown_field",
        "field_choices.level": "invalid_choice",
        "field_choices.code": "not_mergeable",
    }
    assert exc.value.errors[1].message == "取值应为 winner 或 loser"
    with pytest.raises(ValidationFailed):
        check_choices(form(), ["level"], "en")


def test_is_empty() -> None:
    assert all(is_empty(v) for v in (None, "", [], {}))
    assert not any(is_empty(v) for v in (0, False, "0", [None]))
