"""Formula fields: a small, safe expression language over other fields, evaluated by simpleeval.

Allowed: numbers, strings, field keys, + - * / // % **, comparisons, and/or/not,
`a if cond else b`, and calls of the whitelisted functions below. Anything else
(attribute access, subscripts, lambdas, comprehensions, f-strings, dunder names,
keyword arguments) is refused before evaluation. Arithmetic runs in Decimal so
money stays exact.
"""

from __future__ import annotations

import ast
import functools
import operator as op
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from typing import Any

from simpleeval import SimpleEval

_MAX_EXPRESSION = 2000
_MAX_TEXT = 10000


class FormulaError(Exception):
    """The expression is not allowed, or evaluating it failed."""


def _num(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, bool):
        return int(value)
    return value


def _arith(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        a, b = _num(a), _num(b)
        if isinstance(a, int) and isinstance(b, int) and fn is op.truediv:
            a = Decimal(a)
        return fn(a, b)

    return apply


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        if not (isinstance(a, str) and isinstance(b, str)):
            raise FormulaError("text and number cannot be added; use concat()")
        if len(a) + len(b) > _MAX_TEXT:
            raise FormulaError("text too long")
        return a + b
    return _num(a) + _num(b)


def _mult(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        raise FormulaError("text cannot be multiplied")
    return _num(a) * _num(b)


def _pow(a: Any, b: Any) -> Any:
    a, b = _num(a), _num(b)
    if abs(b) > 100 or abs(a) > 10**15:
        raise FormulaError("power too large")
    return a**b


_OPERATORS: dict[type, Any] = {
    ast.Add: _add,
    ast.Sub: _arith(op.sub),
    ast.Mult: _mult,
    ast.Div: _arith(op.truediv),
    ast.FloorDiv: _arith(op.floordiv),
    ast.Mod: _arith(op.mod),
    ast.Pow: _pow,
    ast.Eq: op.eq,
    ast.NotEq: op.ne,
    ast.Gt: op.gt,
    ast.Lt: op.lt,
    ast.GtE: op.ge,
    ast.LtE: op.le,
    ast.Not: op.not_,
    ast.USub: lambda a: -_num(a),
    ast.UAdd: lambda a: +_num(a),
}

_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.Load,
    ast.And,
    ast.Or,
    *tuple(_OPERATORS),
)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    raise FormulaError("not a date")


def _round(value: Any, digits: Any = 0) -> Any:
    number = _num(value)
    places = int(digits)
    if not isinstance(number, Decimal):
        number = Decimal(number)
    return number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _concat(*parts: Any) -> str:
    text = "".join("" if p is None else _text(p) for p in parts)
    if len(text) > _MAX_TEXT:
        raise FormulaError("text too long")
    return text


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _coalesce(*parts: Any) -> Any:
    return next((p for p in parts if p is not None and p != ""), None)


def _functions(today: date) -> dict[str, Callable[..., Any]]:
    return {
        "round": _round,
        "abs": lambda x: abs(_num(x)),
        "min": lambda *xs: min(_num(x) for x in xs),
        "max": lambda *xs: max(_num(x) for x in xs),
        "sum": lambda *xs: sum((_num(x) for x in xs if x is not None), Decimal(0)),
        "concat": _concat,
        "text": lambda x: "" if x is None else _text(x),
        "if_": lambda cond, a, b: a if cond else b,
        "coalesce": _coalesce,
        "len": lambda x: len(x) if isinstance(x, str | list) else 0,
        "days_between": lambda a, b: (_as_date(b) - _as_date(a)).days,
        "today": lambda: today,
        "year": lambda d: _as_date(d).year,
        "month": lambda d: _as_date(d).month,
    }


FUNCTION_NAMES = frozenset(_functions(date.today()))


@functools.lru_cache(maxsize=512)
def _parse(expression: str) -> ast.Expression:
    """The checked syntax tree (cached: bulk imports evaluate the same formulas per row; trees are not mutated)."""
    if not isinstance(expression, str) or not expression.strip():
        raise FormulaError("empty expression")
    if len(expression) > _MAX_EXPRESSION:
        raise FormulaError("expression too long")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"syntax error: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise FormulaError(f"{type(node).__name__} is not allowed")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise FormulaError(f"the name {node.id} is not allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTION_NAMES:
                name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
                raise FormulaError(f"the function {name} is not allowed")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise FormulaError("keyword and star arguments are not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str | bool | type(None)):
            raise FormulaError("this constant is not allowed")
    return tree


def formula_references(expression: str) -> set[str]:
    """The field keys an expression reads (raises FormulaError when it is not allowed)."""
    tree = _parse(expression)
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


class _Evaluator(SimpleEval):
    """simpleeval with float literals read as Decimal and only the whitelisted node kinds."""

    def __init__(self, names: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> None:
        super().__init__(operators=dict(_OPERATORS), functions=functions, names=names)
        for node in (ast.Attribute, ast.Subscript, ast.Slice, ast.JoinedStr, ast.FormattedValue, ast.Assign):
            self.nodes.pop(node, None)
        self.nodes[ast.Constant] = self._eval_decimal_constant

    @staticmethod
    def _eval_decimal_constant(node: ast.Constant) -> Any:
        if isinstance(node.value, float):
            return Decimal(repr(node.value))
        if isinstance(node.value, str) and len(node.value) > _MAX_TEXT:
            raise FormulaError("text too long")
        return node.value


def evaluate_formula(expression: str, values: dict[str, Any], *, today: date | None = None) -> Any:
    """Evaluate `expression` with `values` (field key -> formula value: Decimal/int/str/date/...).

    Raises FormulaError for a forbidden expression, an unknown name or a failed evaluation
    (e.g. division by zero or arithmetic on an empty value).
    """
    tree = _parse(expression)
    names = {key: values.get(key) for key in formula_references(expression)}
    evaluator = _Evaluator(names, _functions(today or date.today()))
    try:
        return evaluator.eval(expression.strip(), previously_parsed=tree.body)
    except FormulaError:
        raise
    except (ArithmeticError, TypeError, ValueError, InvalidOperation, DivisionByZero) as exc:
        raise FormulaError(f"evaluation failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - simpleeval's own errors (unknown name, feature) all mean "refused"
        raise FormulaError(str(exc)) from None
