"""Formulas: the safe expression language and its result types."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

import crm_schema as s


def test_arithmetic_is_exact_decimal() -> None:
    assert s.evaluate_formula("a + b", {"a": Decimal("0.1"), "b": Decimal("0.2")}) == Decimal("0.3")
    assert s.evaluate_formula("amount * 0.13", {"amount": Decimal("100")}) == Decimal("13.00")
    assert s.evaluate_formula("7 / 2", {}) == Decimal("3.5")
    assert s.evaluate_formula("2 ** 10", {}) == 1024


def test_functions() -> None:
    assert s.evaluate_formula("round(a, 1)", {"a": Decimal("2.25")}) == Decimal("2.3")
    assert s.evaluate_formula("abs(-3) + min(1, 2) + max(3, 4)", {}) == 8
    assert s.evaluate_formula("concat(name, '-', 12)", {"name": "华信"}) == "华信-12"
    assert s.evaluate_formula("if_(a > 10, 'big', 'small')", {"a": 11}) == "big"
    assert s.evaluate_formula("'big' if a > 10 else 'small'", {"a": 1}) == "small"
    assert s.evaluate_formula("len(name)", {"name": "abcd"}) == 4
    assert s.evaluate_formula("days_between(a, b)", {"a": date(2024, 1, 1), "b": date(2024, 3, 1)}) == 60
    assert s.evaluate_formula("days_between(today(), due)", {"due": date(2024, 5, 25)}, today=date(2024, 5, 20)) == 5
    assert s.evaluate_formula("a >= 1 and not b", {"a": 1, "b": False}) is True
    assert s.evaluate_formula("coalesce(a, 0) + 1", {"a": None}) == 1


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "().__class__.__bases__",
        "name.upper()",
        "a.real",
        "(lambda: 1)()",
        "[x for x in range(3)]",
        "eval('1')",
        "exec('x=1')",
        "open('/etc/passwd')",
        "a[0]",
        "f'{a}'",
        "round(a, ndigits=2)",
        "_secret",
        "getattr(a, 'x')",
        "import os",
        "",
        "1 +",
    ],
)
def test_refused_expressions(expression: str) -> None:
    with pytest.raises(s.FormulaError):
        s.evaluate_formula(expression, {"a": 1, "name": "x", "_secret": 1})


def test_runtime_failures_are_formula_errors() -> None:
    with pytest.raises(s.FormulaError):
        s.evaluate_formula("a / 0", {"a": 1})
    with pytest.raises(s.FormulaError):
        s.evaluate_formula("a + 1", {"a": None})
    with pytest.raises(s.FormulaError):
        s.evaluate_formula("'x' * 100000000", {})
    with pytest.raises(s.FormulaError):
        s.evaluate_formula("10 ** 1000", {})


def test_references() -> None:
    assert s.formula_references("round(amount * rate, 2) + if_(flag, x, 0)") == {"amount", "rate", "flag", "x"}


@pytest.mark.parametrize(
    ("result_type", "expression", "stored"),
    [
        ("number", "amount / 7", 0.475714),
        ("money", "amount * 0.13", 43),
        ("text", "concat(name, amount)", "华信3.33"),
        ("date", "signed", "2024-05-01"),
        ("boolean", "amount > 3", True),
    ],
)
def test_result_types_decide_the_stored_form(f: Any, ctx: Any, result_type: str, expression: str, stored: Any) -> None:
    fields = [
        f("amount", "money"),
        f("name", "text"),
        f("signed", "date"),
        f("calc", "formula", expression=expression, result_type=result_type),
    ]
    result = s.validate_data(fields, {"amount": "3.33", "name": "华信", "signed": "2024/5/1"}, existing=None, ctx=ctx)
    assert result.ok, result.errors
    assert result.values["calc"] == stored
    if result_type == "money":
        assert type(result.values["calc"]) is int
        assert s.to_output(fields[3], stored, ctx=ctx) == "0.43"


def test_formula_reading_a_formula_and_failing_to_none(f: Any, ctx: Any) -> None:
    fields = [
        f("total", "formula", expression="net * 2", result_type="number"),
        f("a", "number"),
        f("b", "number"),
        f("net", "formula", expression="a / b", result_type="number"),
    ]
    assert s.validate_data(fields, {"a": 6, "b": 3}, existing=None, ctx=ctx).values == {
        "a": 6,
        "b": 3,
        "net": 2,
        "total": 4,
    }
    result = s.validate_data(fields, {"a": 6, "b": 0}, existing=None, ctx=ctx)
    assert result.ok and "net" not in result.values and "total" not in result.values


def test_auto_number() -> None:
    from datetime import datetime

    now = datetime(2024, 3, 7, 10, 0)
    assert s.render_auto_number("HT-{YYYY}{MM}-{0000}", 12, now) == "HT-202403-0012"
    assert s.render_auto_number("{YY}{MM}{DD}-{000}", 5, now) == "240307-005"
    assert s.render_auto_number("NO{00}", 123, now) == "NO123"
    assert s.sequence_scope("HT-{YYYY}{MM}-{0000}", now) == "HT-202403-{0000}"
