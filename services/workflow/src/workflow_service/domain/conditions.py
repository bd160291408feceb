"""An automation's condition: a filter tree over a record, checked in Python or compiled to a MongoDB filter.

The tree has the record service's list-filter format: a group
`{"and"|"or": [node, ...]}` or a leaf `{"field": key, "op": op, "value": operand}`.
`parse_condition` checks it against a published form's fields and returns a
`Condition`:

* `matches(record, changes)` evaluates it on a record as events carry it (API
  output values) and, for update events, on the event's changes;
* `to_mongo(prefix)` compiles it (when no event-only operator is used) into a
  MongoDB filter over the documents `snapshot(fields, record)` produces.

Both read the same normalised values (money in integer fen, datetimes as aware
UTC `datetime` cut to milliseconds, dates as "YYYY-MM-DD", a region as its
province, ...) and Python follows MongoDB's query semantics, so that a record
matches in Python exactly when its snapshot is found by the filter:

* a list value matches eq/in/contains/ranges when one element does, and
  ne/nin when no element equals (for a range of two bounds each bound may be
  met by a different element, as MongoDB does);
* a missing value equals null; is_empty holds for missing, null, "" and [];
* gt/gte/lt/lte compare only values of the same kind (numbers with numbers,
  text with text, dates with dates, booleans with booleans), never null;
* contains/starts_with are case-insensitive regular expressions on text.

Errors (messages in domain/messages.py, zh-CN and en)::

    crm_runtime.errors.DomainError
    └── ValidationFailed([FieldError(field=path, rule, message)])
            path: "condition", "condition.or[2].field", "condition.and[0].value[1]", ...
            rules: invalid_condition, empty_group, too_deep, too_many_conditions, field_required,
                   unknown_field, unknown_operator, operator_not_allowed, value_required,
                   value_type, value_format, value_too_long, option, between_values, too_many_values
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm_runtime.errors import FieldError, ValidationFailed
from crm_schema import china
from crm_schema import values as v
from crm_schema.context import Invalid, ValidationContext
from workflow_service.domain.messages import condition_error, expected

__all__ = ["EVENT_OPERATORS", "OPERATORS", "SYSTEM_FIELDS", "Condition", "parse_condition", "snapshot"]

MAX_DEPTH = 5  # nodes from the root down to a leaf, both counted
MAX_LEAVES = 50
MAX_LIST_VALUES = 200  # operands of in/nin
MAX_TEXT_OPERAND = 200  # characters of a contains/starts_with operand

EVENT_OPERATORS = frozenset({"changed", "changed_from", "changed_to"})
"""Operators on an update event's changes: no store filter can express them."""
OPERATORS = (
    frozenset(
        {
            "eq",
            "ne",
            "in",
            "nin",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "contains",
            "starts_with",
            "is_empty",
            "not_empty",
        }
    )
    | EVENT_OPERATORS
)

SYSTEM_FIELDS: dict[str, dict[str, Any]] = {
    "owner_id": {"key": "owner_id", "type": "user", "label": {"zh-CN": "负责人", "en": "Owner"}},
    "department_id": {"key": "department_id", "type": "department", "label": {"zh-CN": "所属部门", "en": "Department"}},
    "created_by": {"key": "created_by", "type": "user", "label": {"zh-CN": "创建人", "en": "Created by"}},
    "created_at": {"key": "created_at", "type": "datetime", "label": {"zh-CN": "创建时间", "en": "Created at"}},
    "updated_at": {"key": "updated_at", "type": "datetime", "label": {"zh-CN": "修改时间", "en": "Updated at"}},
}
"""The record attributes every form has, outside `data` (top-level in a snapshot)."""

# How a field type's values are normalised and compared.
_KINDS: dict[str, str] = {
    **dict.fromkeys(("text", "long_text", "email", "mobile", "phone", "url", "auto_number"), "text"),
    **dict.fromkeys(("select", "stage"), "choice"),
    "multi_select": "choices",
    "tags": "tags",
    **dict.fromkeys(("number", "integer", "percent", "rating"), "number"),
    "money": "money",
    "date": "date",
    "datetime": "datetime",
    "boolean": "boolean",
    **dict.fromkeys(("user", "department", "relation"), "ref"),
    **dict.fromkeys(("region", "address"), "region"),
}
_PRESENCE = frozenset({"is_empty", "not_empty"})
_EQUALITY = frozenset({"eq", "ne", "in", "nin"})
_RANGE = frozenset({"gt", "gte", "lt", "lte", "between"})
_TEXT_MATCH = frozenset({"contains", "starts_with"})
_OPS_OF_KIND: dict[str, frozenset[str]] = {
    "text": _EQUALITY | _TEXT_MATCH | _PRESENCE,
    "choice": _EQUALITY | _PRESENCE,
    "choices": _EQUALITY | {"contains"} | _PRESENCE,
    "tags": _EQUALITY | _TEXT_MATCH | _PRESENCE,
    "number": _EQUALITY | _RANGE | _PRESENCE,
    "money": _EQUALITY | _RANGE | _PRESENCE,
    "date": _EQUALITY | _RANGE | _PRESENCE,
    "datetime": _EQUALITY | _RANGE | _PRESENCE,
    "boolean": frozenset({"eq", "ne"}) | _PRESENCE,
    "ref": _EQUALITY | _PRESENCE,
    "region": _EQUALITY | _PRESENCE,
    # any other type (attachments, lookups, ...): only whether it holds something
    "other": _PRESENCE,
}
_EMPTY_VALUES: tuple[Any, ...] = (None, "", [])
_ZONE = re.compile(r"(?:[zZ]|[+-]\d{2}:?\d{2})$")
_ID = re.compile(r"[A-Za-z0-9_\-:.]{1,64}")
_RANGE_MONGO = {"gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def _kind(definition: Mapping[str, Any]) -> str:
    """The comparison kind of a field definition ("other" for the types conditions only test for presence)."""
    return _KINDS.get(str(definition.get("type")), "other")


def _operators(kind: str) -> frozenset[str]:
    """The operators a field of `kind` allows: its own, `changed`, and changed_from/to when it has eq."""
    ops = _OPS_OF_KIND[kind]
    event = {"changed", "changed_from", "changed_to"} if "eq" in ops else {"changed"}
    return ops | event


# ---------------------------------------------------------------- values in comparable form


def _normalise(kind: str, value: Any) -> Any:
    """An API output value of a field of `kind` in the form conditions compare (see snapshot()).

    A value that cannot be read as its kind is kept as it is: it then compares
    like MongoDB compares mismatched types (never equal, never in a range).
    """
    if value is None:
        return None
    if kind in ("choices", "tags", "ref") and isinstance(value, list | tuple):
        return [item for item in value if item is not None and item != ""]
    if kind == "number":
        if isinstance(value, bool):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int | float):
            return value
        return _number_or_raw(value)
    if kind == "money":
        if isinstance(value, bool):
            return value
        try:
            return v.parse_money_fen(value, {"type": "money"})
        except Invalid:
            return value
    if kind == "date":
        if isinstance(value, str | date):
            day = v.parse_date(value, UTC)
            return day.isoformat() if day is not None else value
        return value
    if kind == "datetime":
        if isinstance(value, str | datetime):
            moment = v.parse_datetime(value, UTC)
            return moment if moment is not None else value
        return value
    if kind == "region":
        province = value.get("province") if isinstance(value, Mapping) else value
        if isinstance(province, str):
            return china.province_name(province) or province
        return province
    return value


def _number_or_raw(value: Any) -> Any:
    """Numeric text as its number; anything else unchanged."""
    try:
        return v.number_out(v.parse_decimal(value, {"type": "number"}, "number"))
    except Invalid:
        return value


def snapshot(fields: Mapping[str, Mapping[str, Any]], record: Mapping[str, Any]) -> dict[str, Any]:
    """The document `Condition.to_mongo()` filters: the record's values normalised, as `matches` reads them.

    `{"data": {key: value}, "owner_id", "department_id", "created_by", "created_at",
    "updated_at"}`: money as integer fen, number types as int/float, datetimes as
    aware UTC `datetime`, dates as "YYYY-MM-DD", a region or address as its
    province, lists without null or "" elements, the rest as given. Keys that
    are not fields of the form are left out; a missing value stays missing.
    """
    raw = record.get("data")
    data = raw if isinstance(raw, Mapping) else {}
    out: dict[str, Any] = {
        "data": {
            key: _normalise(_kind(fields[key]), value)
            for key, value in data.items()
            if key in fields and key not in SYSTEM_FIELDS and isinstance(fields[key], Mapping)
        }
    }
    for name, definition in SYSTEM_FIELDS.items():
        if name in record:
            out[name] = _normalise(_kind(definition), record[name])
    return out


# ---------------------------------------------------------------- MongoDB's comparison rules


def _bracket(value: Any) -> int:
    """MongoDB's type bracket: values of different brackets are never equal and never ordered by a range."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    if isinstance(value, int | float):
        return 1
    if isinstance(value, str):
        return 2
    if isinstance(value, Mapping):
        return 3
    if isinstance(value, list | tuple):
        return 4
    if isinstance(value, datetime):
        return 6
    return 7


def _same(a: Any, b: Any) -> bool:
    """BSON equality of two whole values (int 1 equals 1.0; true is no number; arrays in order)."""
    bracket = _bracket(a)
    if bracket != _bracket(b):
        return False
    if bracket == 4:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if bracket == 3:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _eq(stored: Any, operand: Any) -> bool:
    """`{path: operand}`: the value equals it, or is a list with an element that does (missing is null)."""
    if _same(stored, operand):
        return True
    return isinstance(stored, list) and any(_same(item, operand) for item in stored)


def _in(stored: Any, operands: tuple[Any, ...]) -> bool:
    """`{path: {"$in": operands}}`."""
    return any(_eq(stored, operand) for operand in operands)


def _bound_holds(value: Any, op: str, bound: Any) -> bool:
    """One range bound on one scalar: only within MongoDB's type bracket of the bound, never null."""
    if value is None or _bracket(value) != _bracket(bound):
        return False
    if op == "gt":
        return bool(value > bound)
    if op == "gte":
        return bool(value >= bound)
    if op == "lt":
        return bool(value < bound)
    return bool(value <= bound)


def _in_range(stored: Any, bounds: tuple[tuple[str, Any], ...]) -> bool:
    """Every bound is met by the value, or by some element of a list (each bound on its own, as MongoDB)."""
    candidates = stored if isinstance(stored, list) else [stored]
    return all(any(_bound_holds(c, op, bound) for c in candidates) for op, bound in bounds)


def _is_empty(stored: Any) -> bool:
    """`{path: {"$in": [null, "", []]}}`."""
    return _in(stored, _EMPTY_VALUES)


# ---------------------------------------------------------------- the tree


@dataclass(frozen=True)
class _Leaf:
    """One comparison, its operand already normalised (a tuple for in/nin; bounds for ranges)."""

    key: str
    system: bool
    kind: str
    op: str
    operand: Any = None
    pattern: re.Pattern[str] | None = None

    def matches(self, record: Mapping[str, Any], changes: Mapping[str, Any] | None) -> bool:
        """True when the leaf holds on the record (or, for an event operator, on the changes)."""
        if self.op in EVENT_OPERATORS:
            return self._matches_change(changes)
        return self._holds(self._value(record))

    def _value(self, record: Mapping[str, Any]) -> Any:
        """The leaf's field of the record, normalised."""
        if self.system:
            return _normalise(self.kind, record.get(self.key))
        data = record.get("data")
        return _normalise(self.kind, data.get(self.key)) if isinstance(data, Mapping) else None

    def _holds(self, stored: Any) -> bool:
        """The operator on a normalised value, with MongoDB's semantics."""
        op = self.op
        if op == "eq" or (op == "contains" and self.pattern is None):
            return _eq(stored, self.operand)
        if op == "ne":
            return not _eq(stored, self.operand)
        if op == "in":
            return _in(stored, self.operand)
        if op == "nin":
            return not _in(stored, self.operand)
        if op in _RANGE:
            return _in_range(stored, self.operand)
        if op in _TEXT_MATCH:
            assert self.pattern is not None
            texts = stored if isinstance(stored, list) else [stored]
            pattern = self.pattern
            return any(isinstance(t, str) and pattern.search(t) is not None for t in texts)
        if op == "is_empty":
            return _is_empty(stored)
        return not _is_empty(stored)

    def _matches_change(self, changes: Mapping[str, Any] | None) -> bool:
        """changed / changed_from / changed_to on an update event's changes."""
        if changes is None or self.key not in changes:
            return False
        if self.op == "changed":
            return True
        change = changes[self.key]
        side = "old" if self.op == "changed_from" else "new"
        value = _normalise(self.kind, change.get(side) if isinstance(change, Mapping) else None)
        return _is_empty(value) if self.operand is None else _eq(value, self.operand)

    def to_mongo(self, prefix: str) -> dict[str, Any]:
        """The leaf as a MongoDB predicate on the snapshot path."""
        path = self.key if self.system else prefix + self.key
        op = self.op
        if op == "eq" or (op == "contains" and self.pattern is None):
            return {path: self.operand}
        if op in ("ne", "in", "nin"):
            operand = list(self.operand) if op != "ne" else self.operand
            return {path: {"$" + op: operand}}
        if op in _RANGE:
            return {path: {_RANGE_MONGO[bound_op]: bound for bound_op, bound in self.operand}}
        if op in _TEXT_MATCH:
            assert self.pattern is not None
            return {path: {"$regex": self.pattern.pattern, "$options": "i"}}
        if op == "is_empty":
            return {path: {"$in": list(_EMPTY_VALUES)}}
        if op == "not_empty":
            return {path: {"$nin": list(_EMPTY_VALUES)}}
        raise ValueError(f"{op} is an event operator: the condition is not compilable")

    def fields(self) -> set[str]:
        """The field key read."""
        return {self.key}

    @property
    def compilable(self) -> bool:
        """False for an event operator."""
        return self.op not in EVENT_OPERATORS


@dataclass(frozen=True)
class _Group:
    """and/or over child nodes (never empty)."""

    kind: str
    nodes: tuple[_Leaf | _Group, ...]

    def matches(self, record: Mapping[str, Any], changes: Mapping[str, Any] | None) -> bool:
        """and: every child holds; or: one does."""
        results = (node.matches(record, changes) for node in self.nodes)
        return all(results) if self.kind == "and" else any(results)

    def to_mongo(self, prefix: str) -> dict[str, Any]:
        """$and/$or over the children's predicates."""
        return {"$" + self.kind: [node.to_mongo(prefix) for node in self.nodes]}

    def fields(self) -> set[str]:
        """The field keys the children read."""
        out: set[str] = set()
        for node in self.nodes:
            out |= node.fields()
        return out

    @property
    def compilable(self) -> bool:
        """True when every child compiles."""
        return all(node.compilable for node in self.nodes)


@dataclass(frozen=True)
class Condition:
    """A parsed, checked condition (see the module docstring for its semantics)."""

    root: _Leaf | _Group

    def matches(self, record: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
        """True when the record passes.

        `record`: `{"data": {key: API value}, "owner_id", "department_id", "created_by",
        "created_at", "updated_at", ...}`; `changes`: an update event's `{key: {"old", "new"}}`
        (API values). Without changes (a create event) changed/changed_from/changed_to never hold;
        changed_from/changed_to with a null operand mean "was empty" / "became empty".
        """
        return self.root.matches(record, changes)

    @property
    def compilable(self) -> bool:
        """False when an event-only operator (changed, changed_from, changed_to) is used."""
        return self.root.compilable

    def to_mongo(self, prefix: str = "data.") -> dict[str, Any]:
        """The MongoDB filter over snapshot() documents, `prefix` being where their `data` sits.

        System fields are read at the top level. ValueError when not `compilable`.
        """
        if not self.compilable:
            raise ValueError("the condition uses an event operator and cannot be compiled")
        return self.root.to_mongo(prefix)

    def fields(self) -> set[str]:
        """The field keys (and system field names) the condition reads."""
        return self.root.fields()


# ---------------------------------------------------------------- parsing


def parse_condition(
    tree: Any, fields: Mapping[str, Mapping[str, Any]], *, locale: str = "zh-CN", where: str = "condition"
) -> Condition | None:
    """Check a condition tree against a form's fields (key -> definition); None (or {}) means "always".

    Operands are normalised as snapshot() normalises values (a select operand may
    be its option's value or its label in either language). Raises ValidationFailed
    with one FieldError per broken leaf (or one for a tree past the size limits),
    each on its path under `where` and with its message in `locale`.
    """
    if tree is None or (isinstance(tree, Mapping) and not tree):
        return None
    problem = _shape_problem(tree, where, locale)
    if problem is not None:
        raise ValidationFailed([problem])
    parser = _Parser(fields, locale)
    root = parser.node(tree, where)
    if parser.errors or root is None:
        raise ValidationFailed(parser.errors)
    return Condition(root)


def _group_of(node: Any) -> tuple[str, Any] | None:
    """("and"|"or", children) when `node` is meant as a group, else None."""
    if isinstance(node, Mapping):
        for kind in ("and", "or"):
            if kind in node:
                return kind, node[kind]
    return None


def _shape_problem(tree: Any, where: str, locale: str) -> FieldError | None:
    """The size limits, walked without recursion before anything else is done with the tree."""
    stack: list[tuple[Any, int]] = [(tree, 1)]
    leaves = 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return condition_error(where, "too_deep", locale, max=MAX_DEPTH)
        group = _group_of(node)
        if group is not None and isinstance(group[1], list):
            stack.extend((child, depth + 1) for child in group[1])
            continue
        leaves += 1
        if leaves > MAX_LEAVES:
            return condition_error(where, "too_many_conditions", locale, max=MAX_LEAVES)
    return None


class _Parser:
    """Builds the tree, collecting one error per broken node."""

    def __init__(self, fields: Mapping[str, Mapping[str, Any]], locale: str) -> None:
        """Parse against `fields` (key -> definition), messages in `locale`."""
        self.fields = fields
        self.locale = locale
        self.errors: list[FieldError] = []

    def fail(self, where: str, rule: str, **params: Any) -> None:
        """Record one error."""
        self.errors.append(condition_error(where, rule, self.locale, **params))

    def node(self, raw: Any, where: str) -> _Leaf | _Group | None:
        """A group or a leaf at `where`; None (with its errors recorded) when broken."""
        if not isinstance(raw, Mapping):
            self.fail(where, "invalid_condition")
            return None
        group = _group_of(raw)
        if group is None:
            return self.leaf(raw, where)
        kind, children = group
        if len(raw) != 1 or not isinstance(children, list):
            self.fail(where, "invalid_condition")
            return None
        if not children:
            self.fail(f"{where}.{kind}", "empty_group", group=kind)
            return None
        nodes = [self.node(child, f"{where}.{kind}[{i}]") for i, child in enumerate(children)]
        if any(n is None for n in nodes):
            return None
        return _Group(kind, tuple(n for n in nodes if n is not None))

    def leaf(self, raw: Mapping[str, Any], where: str) -> _Leaf | None:
        """A leaf at `where`: its field, operator and operand checked; None when broken."""
        key, op = raw.get("field"), raw.get("op")
        if not isinstance(key, str) or not key:
            self.fail(f"{where}.field", "field_required")
            return None
        system = key in SYSTEM_FIELDS
        definition = SYSTEM_FIELDS[key] if system else self.fields.get(key)
        if not isinstance(definition, Mapping):
            self.fail(f"{where}.field", "unknown_field", field=key)
            return None
        if not isinstance(op, str) or op not in OPERATORS:
            self.fail(f"{where}.op", "unknown_operator", op=str(op))
            return None
        kind = _kind(definition)
        label = _label(definition, key, self.locale)
        if op not in _operators(kind):
            self.fail(f"{where}.op", "operator_not_allowed", label=label, op=op)
            return None
        try:
            operand = _Operand(definition, kind, op, label, self.locale, f"{where}.value").read(raw.get("value"))
        except _OperandError as exc:
            self.errors.append(exc.error)
            return None
        pattern = None
        if op in _TEXT_MATCH and kind != "choices":
            pattern = re.compile(("^" if op == "starts_with" else "") + re.escape(operand), re.IGNORECASE)
        return _Leaf(key, system, kind, op, operand, pattern)


def _label(definition: Mapping[str, Any], key: str, locale: str) -> str:
    """The field's label in `locale` (another language, then the key, when missing)."""
    label = definition.get("label")
    if isinstance(label, str) and label:
        return label
    if isinstance(label, Mapping):
        for name in (locale, "zh-CN", "en"):
            text = label.get(name)
            if isinstance(text, str) and text:
                return text
    return key


class _OperandError(Exception):
    """A leaf's operand broke a rule; carries its FieldError."""

    def __init__(self, error: FieldError) -> None:
        """Wrap `error`."""
        super().__init__(error.message)
        self.error = error


@dataclass
class _Operand:
    """Reads the operand of one leaf into the normalised form, or raises _OperandError."""

    definition: Mapping[str, Any]
    kind: str
    op: str
    label: str
    locale: str
    where: str

    def fail(self, where: str, rule: str, **params: Any) -> _OperandError:
        """An _OperandError at `where` naming the field's label."""
        return _OperandError(condition_error(where, rule, self.locale, label=self.label, **params))

    def read(self, value: Any) -> Any:
        """The normalised operand of the leaf's operator: a scalar, a tuple (in/nin), bounds (ranges) or None."""
        op = self.op
        if op in _PRESENCE or op == "changed":
            return None
        if op in ("changed_from", "changed_to") and value is None:
            return None
        if op in ("in", "nin", "between"):
            if not isinstance(value, list | tuple):
                raise self.fail(self.where, "value_type", expected=expected("list", self.locale))
            if op == "between":
                if len(value) != 2:
                    raise self.fail(self.where, "between_values")
                low, high = (self.one(item, f"{self.where}[{i}]") for i, item in enumerate(value))
                return (("gte", low), ("lte", high))
            if not value:
                raise self.fail(self.where, "value_required")
            if len(value) > MAX_LIST_VALUES:
                raise self.fail(self.where, "too_many_values", max=MAX_LIST_VALUES)
            return tuple(self.one(item, f"{self.where}[{i}]") for i, item in enumerate(value))
        operand = self.one(value, self.where)
        if op in _RANGE:
            return ((op, operand),)
        return operand

    def one(self, value: Any, where: str) -> Any:
        """One operand value (a list element too), normalised for the field's kind."""
        if v.is_empty(value):
            raise self.fail(where, "value_required")
        if isinstance(value, list | tuple) or (isinstance(value, Mapping) and self.kind != "region"):
            raise self.fail(where, "value_type", expected=expected(self._expected_kind(), self.locale))
        try:
            if self.op in _TEXT_MATCH and self.kind != "choices":
                return self._text_match(value)
            return self._coerce(value)
        except Invalid as exc:
            raise self._invalid(exc, value, where) from None

    def _invalid(self, exc: Invalid, value: Any, where: str) -> _OperandError:
        """The condition rule of a value rule's Invalid."""
        described = expected(self._expected_kind(), self.locale)
        if exc.rule == "type":
            return self.fail(where, "value_type", expected=described)
        if exc.rule == "option":
            return self.fail(where, "option", value=_shown(value))
        if exc.rule == "required":
            return self.fail(where, "value_required")
        if exc.rule == "max_length":
            return self.fail(where, "value_too_long", max=exc.params.get("max_length"))
        return self.fail(where, "value_format", value=_shown(value), expected=described)

    def _expected_kind(self) -> str:
        """Which EXPECTED text describes a good operand."""
        ftype = str(self.definition.get("type"))
        if self.kind == "text" and ftype in ("email", "mobile", "phone", "url") and self.op not in _TEXT_MATCH:
            return ftype
        return {"choices": "choice", "tags": "text", "other": "text"}.get(self.kind, self.kind)

    def _text_match(self, value: Any) -> str:
        """A contains/starts_with operand: trimmed text (digits and - for phone numbers), at most 200 long."""
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Invalid("type")
        text = str(value).strip()
        if self.definition.get("type") in ("mobile", "phone"):
            text = "".join(ch for ch in text if ch.isdigit() or ch == "-")
        if not text:
            raise Invalid("required")
        if len(text) > MAX_TEXT_OPERAND:
            raise Invalid("max_length", max_length=MAX_TEXT_OPERAND)
        return text

    def _coerce(self, value: Any) -> Any:
        """A scalar operand in the normalised form of its kind (raises Invalid)."""
        kind, field = self.kind, dict(self.definition)
        if kind == "text":
            return _text_operand(field, value)
        if kind in ("choice", "choices"):
            return v.match_option(field, value)
        if kind == "tags":
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise Invalid("type")
            return " ".join(str(value).split())
        if kind == "number":
            if field.get("type") == "percent" and isinstance(value, str):
                value = value.strip().removesuffix("%").removesuffix("％")
            return v.number_out(v.parse_decimal(value, field, "number"))
        if kind == "money":
            return v.parse_money_fen(value, field)
        if kind == "date":
            if not isinstance(value, str | date) or isinstance(value, datetime):
                raise Invalid("type")
            day = v.parse_date(value, UTC, strict=True)
            if day is None:
                raise Invalid("format")
            return day.isoformat()
        if kind == "datetime":
            return _datetime_operand(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                return v.coerce_boolean(field, value, _NO_CONTEXT)
            raise Invalid("type")
        if kind == "ref":
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise Invalid("type")
            if not _ID.fullmatch(value.strip()):
                raise Invalid("format")
            return value.strip()
        if kind == "region":
            province = value.get("province") if isinstance(value, Mapping) else value
            if not isinstance(province, str):
                raise Invalid("type")
            full = china.province_name(province)
            if full is None:
                raise Invalid("format")
            return full
        raise Invalid("type")  # pragma: no cover - "other" allows only operand-less operators


def _shown(value: Any) -> str:
    """An operand as quoted in a message (and its JSON params): text, at most 100 characters."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 100 else text[:99] + "…"


def _text_operand(field: dict[str, Any], value: Any) -> str:
    """An eq/in operand of a text-like field, normalised as its field type stores values."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Invalid("type")
    ftype = field.get("type")
    if ftype == "email":
        return v.coerce_email(field, value, _NO_CONTEXT)
    if ftype == "url":
        return v.coerce_url(field, value, _NO_CONTEXT)
    if ftype == "mobile":
        return v.coerce_mobile(field, value, _NO_CONTEXT)
    if ftype == "phone":
        return v.coerce_phone(field, value, _NO_CONTEXT)
    text = v.coerce_text(field, value, _NO_CONTEXT)
    if not text:
        raise Invalid("required")
    return text


def _datetime_operand(value: Any) -> datetime:
    """An aware moment, cut to milliseconds as stored; text without a zone is refused (whose midnight?)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise Invalid("format")
    elif not isinstance(value, str):
        raise Invalid("type")
    elif not _ZONE.search(value.strip()):
        raise Invalid("format")
    moment = v.parse_datetime(value, UTC, strict=True)
    if moment is None:
        raise Invalid("format")
    return moment


class _NoContext:
    """The value rules used on operands read no tenant state; this stands in for the context they take."""

    locale = "zh-CN"
    tz = ZoneInfo("UTC")
    now = datetime(2000, 1, 1, tzinfo=UTC)
    role = ""

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        """Unused by the operand rules."""
        return set()

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Unused by the operand rules."""
        return {}

    def encrypt(self, plaintext: str) -> str:
        """Unused by the operand rules."""
        raise NotImplementedError

    def decrypt(self, token: str) -> str:
        """Unused by the operand rules."""
        raise NotImplementedError


_NO_CONTEXT: ValidationContext = _NoContext()
