"""Filter-tree bounds: depth, width, leaves and listed values."""

from __future__ import annotations

from typing import Any

from crm_schema import filter_shape_problem, message
from crm_schema.limits import MAX_CHILDREN, MAX_DEPTH, MAX_IN_VALUES, MAX_LEAVES


def leaf(i: int = 0) -> dict[str, Any]:
    return {"field": "level", "op": "eq", "value": f"v{i}"}


def nested(depth: int) -> dict[str, Any]:
    tree: dict[str, Any] = leaf()
    for _ in range(depth - 1):
        tree = {"and": [tree]}
    return tree


def test_accepted_shapes() -> None:
    assert filter_shape_problem(None) is None
    assert filter_shape_problem(nested(MAX_DEPTH)) is None
    assert filter_shape_problem({"or": [leaf(i) for i in range(MAX_CHILDREN)]}) is None
    assert filter_shape_problem({"field": "x", "op": "in", "value": list(range(MAX_IN_VALUES))}) is None


def test_each_limit_is_named() -> None:
    assert filter_shape_problem(nested(MAX_DEPTH + 1)) == ("filter_too_deep", {"max": MAX_DEPTH})
    assert filter_shape_problem(nested(100_000)) == ("filter_too_deep", {"max": MAX_DEPTH})  # no recursion
    assert filter_shape_problem({"or": [leaf(i) for i in range(MAX_CHILDREN + 1)]})[0] == "filter_too_wide"  # type: ignore[index]
    many = {"and": [{"or": [leaf(i) for i in range(80)]} for _ in range(3)]}
    assert filter_shape_problem(many) == ("filter_too_large", {"max": MAX_LEAVES})
    big_in = {"field": "x", "op": "in", "value": list(range(MAX_IN_VALUES + 1))}
    assert filter_shape_problem(big_in) == ("filter_too_many_values", {"max": MAX_IN_VALUES})


def test_messages_in_both_languages() -> None:
    assert "8" in message("filter_too_deep", "zh-CN", max=8) and "层" in message("filter_too_deep", "zh-CN", max=8)
    assert message("filter_too_large", "en", max=200) == "A filter may hold at most 200 conditions in all"
