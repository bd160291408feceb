"""Bounds on the shape of a filter tree, checked before any work is done on it.

A filter is `{"and"|"or": [node, ...]}` or a leaf `{"field", "op", "value"}`.
Unbounded trees are a resource-consumption attack (a 500-level nesting, or
10,000 `or` leaves evaluated against every row), so every entry point (the
gateway on a request, the record service on every call) refuses a tree past
these limits with a 422 naming the limit. The walk is iterative: depth alone
cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 8
MAX_CHILDREN = 100
MAX_LEAVES = 200
MAX_IN_VALUES = 1_000


def filter_shape_problem(tree: Any) -> tuple[str, dict[str, int]] | None:
    """(rule, params) for the first limit the tree breaks, else None; malformed nodes are left to the parser."""
    if not isinstance(tree, Mapping):
        return None
    stack: list[tuple[Any, int]] = [(tree, 1)]
    leaves = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return "filter_too_deep", {"max": MAX_DEPTH}
        if not isinstance(node, Mapping):
            continue
        children = node.get("and", node.get("or"))
        if isinstance(children, list) and ("and" in node or "or" in node):
            if len(children) > MAX_CHILDREN:
                return "filter_too_wide", {"max": MAX_CHILDREN}
            stack.extend((child, depth + 1) for child in children)
            continue
        leaves += 1
        if leaves > MAX_LEAVES:
            return "filter_too_large", {"max": MAX_LEAVES}
        value = node.get("value")
        if isinstance(value, list) and len(value) > MAX_IN_VALUES:
            return "filter_too_many_values", {"max": MAX_IN_VALUES}
    return None
