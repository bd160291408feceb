"""The query planner: a filter tree, sort, keyword and cursor -> what the store runs + what Python checks.

SecantusDB uses an index only when ONE index covers every field of the
predicate, and sorts in memory. So a list query is split in two:

* the *pushed* predicate: `{tenant_id, form_id, deleted}` plus at most one
  top-level-AND condition whose field has an index `(tenant_id, form_id,
  deleted, <field>)`, so one index covers it exactly;
* the *residual*: every other condition (other leaves, or-trees, the
  caller's exact access rule, extra keyword tokens, the keyword substring
  check), evaluated in Python on the streamed rows.

Which condition is pushed, best first: eq/in on a unique/relation/select/stage
field; eq/in on another indexed field (or owner/department); one keyword token
on `kw`; the caller's access as `acl $in [tokens]` (crm_runtime.access
Visibility.pushdown; the exact rule, with role conditions, stays residual
unless the tokens are the whole rule); a range on the sort field; a range on another indexed
field. With an empty residual the store applies sort+limit; otherwise rows are
streamed in sort order and filtered until a page is full.

Keyword searches without an explicit sort come back in the *keyword order*
(kp, _id): every record carries `kp`, a fixed partition of its id (0..255), and
the keyword index is (tenant_id, form_id, deleted, kw, kp). The service reads
the partitions of a token in widening ranges until a page is full, so a page
costs about the matches of a few partitions, not of the whole token: SecantusDB
materialises every index entry of a range before it applies a limit, and a
common token can match tens of thousands of records.

Filter tree: `{"and"|"or": [node, ...]}` or a leaf `{"field", "op", "value"}`.
Operands of form fields are coerced by crm_schema.filter_value (to the stored
representation, so no operator can be injected); unknown fields or operators
are a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol

import crm_schema
from crm_runtime.errors import FieldError, ValidationFailed
from record_service.domain.errors import invalid
from record_service.domain.forms import SELECTIVE_TYPES, SORTABLE_TYPES, FormSchema

OPERATORS = frozenset(
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
        "today",
        "this_week",
        "this_month",
        "last_n_days",
    }
)
RELATIVE_OPS = frozenset({"today", "this_week", "this_month", "last_n_days"})
RANGE_OPS = frozenset({"gt", "gte", "lt", "lte", "between"}) | RELATIVE_OPS
# System fields of every record: filterable and (the times) sortable.
SYSTEM_ID_FIELDS = frozenset({"owner_id", "department_id", "created_by", "updated_by"})
SYSTEM_TIME_FIELDS = frozenset({"created_at", "updated_at", "last_activity_at"})
# System paths a filter can push: the times through (tenant_id, form_id, deleted, <path>), the owner and
# department through the acl index (the acl tokens u:<owner> and d:<department> hold exactly these ids).
INDEXED_SYSTEM_PATHS = frozenset({"created_at", "updated_at", "owner_id", "department_id"})
ACL_TOKEN_OF = {"owner_id": "u:", "department_id": "d:"}
ORDER_PATH = "seq"  # the creation order: a per-form number given at create (see select_window_page)
# Fields that cannot be filtered: computed on read, or stored encrypted.
UNFILTERABLE_TYPES = frozenset({"lookup", "rollup", "encrypted_text", "sub_table", "attachment", "image"})
DATE_TYPES = frozenset({"date", "datetime"})

KEYWORD_PARTITIONS = 256  # `kp` values; see keyword_partition()
MAX_IN_VALUES = 200  # `$in` over more values is slow on SecantusDB; longer lists stay residual
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 200
STREAM_BATCH = 500

Doc = Mapping[str, Any]
Coerce = Callable[[dict[str, Any], str, Any], Any]
"""(field definition, operator, raw operand) -> the operand in stored form; raises ValidationFailed/ValueError."""


class QueryContext(Protocol):
    """What the planner needs of the caller's context."""

    @property
    def locale(self) -> str:
        """zh-CN or en."""
        ...

    @property
    def tz(self) -> tzinfo:
        """The tenant time zone."""
        ...

    @property
    def now(self) -> datetime:
        """Aware UTC now."""
        ...


# ---------------------------------------------------------------- values and ordering


def get_path(doc: Doc, path: str) -> Any:
    """The value at a stored path ("data.<key>" or a top-level field); None when missing."""
    if "." not in path:
        return doc.get(path)
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def bson_key(value: Any) -> tuple[Any, ...]:
    """A sort key that orders values as MongoDB does across types (null < numbers < strings < ... < dates)."""
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, Mapping):
        return (3, json.dumps(value, sort_keys=True, default=str))
    if isinstance(value, list | tuple):
        return (4, json.dumps(value, default=str))
    if isinstance(value, datetime):
        return (6, value if value.tzinfo else value.replace(tzinfo=UTC))
    return (7, str(value))


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python but not in BSON
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _comparable(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return type(a) is type(b) or (isinstance(a, datetime) and isinstance(b, datetime))


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text_of(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for v in value.values() for t in _text_of(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _text_of(v)]
    return [str(value)]


# ---------------------------------------------------------------- the filter tree


@dataclass(frozen=True)
class Range:
    """A (possibly half-open) interval of stored values."""

    lo: Any = None
    lo_incl: bool = True
    hi: Any = None
    hi_incl: bool = True

    def contains(self, value: Any) -> bool:
        """True when `value` lies in the interval (values of another type never do)."""
        if value is None:
            return False
        if self.lo is not None:
            if not _comparable(value, self.lo):
                return False
            if value < self.lo or (value == self.lo and not self.lo_incl):
                return False
        if self.hi is not None:
            if not _comparable(value, self.hi):
                return False
            if value > self.hi or (value == self.hi and not self.hi_incl):
                return False
        return True

    def to_mongo(self) -> dict[str, Any]:
        """The range as Mongo operators."""
        cond: dict[str, Any] = {}
        if self.lo is not None:
            cond["$gte" if self.lo_incl else "$gt"] = self.lo
        if self.hi is not None:
            cond["$lte" if self.hi_incl else "$lt"] = self.hi
        return cond


@dataclass(frozen=True)
class Leaf:
    """One condition on one stored path, with its operand already in stored form.

    `op` is normalised: eq, ne, in, nin, range (value: Range), contains,
    starts_with, is_empty, not_empty.
    """

    field: str
    path: str
    op: str
    value: Any = None
    selective: bool = False
    indexed: bool = False

    def matches(self, doc: Doc) -> bool:
        """Evaluate on a stored record (multi-valued fields match when any element does, as in Mongo)."""
        stored = get_path(doc, self.path)
        op = self.op
        if op == "eq":
            return self._eq(stored, self.value)
        if op == "ne":
            return not self._eq(stored, self.value)
        if op == "in":
            return any(self._eq(stored, v) for v in self.value)
        if op == "nin":
            return not any(self._eq(stored, v) for v in self.value)
        if op == "range":
            if isinstance(stored, list):
                return any(self.value.contains(v) for v in stored)
            return bool(self.value.contains(stored))
        if op == "contains":
            needle = str(self.value).lower()
            return any(needle in t.lower() for t in _text_of(stored))
        if op == "starts_with":
            prefix = str(self.value).lower()
            return any(t.lower().startswith(prefix) for t in _text_of(stored))
        if op == "is_empty":
            return _is_empty(stored)
        if op == "not_empty":
            return not _is_empty(stored)
        raise ValueError(f"unknown normalised operator {op}")

    @staticmethod
    def _eq(stored: Any, value: Any) -> bool:
        if isinstance(stored, list) and not isinstance(value, list):
            return any(_same(s, value) for s in stored)
        return _same(stored, value)

    @property
    def pushable(self) -> bool:
        """True when this leaf can be the one indexed condition of the store query."""
        if not self.indexed:
            return False
        if self.op == "eq":
            return not isinstance(self.value, list | dict) and self.value is not None
        if self.op == "in":
            return 0 < len(self.value) <= MAX_IN_VALUES and all(
                v is not None and not isinstance(v, list | dict) for v in self.value
            )
        return self.op == "range" and self.path not in ACL_TOKEN_OF

    def to_mongo(self) -> dict[str, Any]:
        """The Mongo predicate of a pushable leaf (owner and department as their exact acl tokens)."""
        token = ACL_TOKEN_OF.get(self.path)
        if token is not None and self.op == "eq":
            return {"acl": token + str(self.value)}
        if token is not None and self.op == "in":
            return {"acl": {"$in": [token + str(v) for v in self.value]}}
        if self.op == "eq":
            return {self.path: self.value}
        if self.op == "in":
            return {self.path: {"$in": list(self.value)}}
        if self.op == "range":
            return {self.path: self.value.to_mongo()}
        raise ValueError(f"operator {self.op} is not pushed to the store")

    def paths(self) -> set[str]:
        """Stored paths this condition reads."""
        return {self.path}


@dataclass(frozen=True)
class Group:
    """and/or over child nodes."""

    kind: str
    nodes: tuple[Node, ...]

    def matches(self, doc: Doc) -> bool:
        """Evaluate on a stored record."""
        if self.kind == "and":
            return all(n.matches(doc) for n in self.nodes)
        return any(n.matches(doc) for n in self.nodes)

    def paths(self) -> set[str]:
        """Stored paths the subtree reads."""
        out: set[str] = set()
        for node in self.nodes:
            out |= node.paths()
        return out


Node = Leaf | Group


class AccessFilter(Protocol):
    """The caller's record-level access as the planner sees it (domain/access.py's FormAccess).

    `pushdown`: acl tokens a record must share one of (a superset of the rule,
    one multikey index), None when no acl predicate can be pushed; `exact`: the
    pushdown alone is the rule, so no row check is needed once it is pushed.
    """

    @property
    def pushdown(self) -> tuple[str, ...] | None:
        """Superset acl tokens, or None."""
        ...

    @property
    def exact(self) -> bool:
        """True when `acl $in pushdown` is the whole rule."""
        ...

    def matches(self, doc: Doc) -> bool:
        """The exact rule on a stored record."""
        ...

    def paths(self) -> set[str]:
        """Stored paths the exact rule reads."""
        ...


@dataclass(frozen=True)
class KeywordTokens:
    """Every token of the keyword must be among the record's search tokens (`kw`)."""

    tokens: tuple[str, ...]

    def matches(self, doc: Doc) -> bool:
        """True when the record has all tokens (a prefix token: one of its tokens starts with it)."""
        have = set(doc.get("kw") or ())
        return all(crm_schema.token_matches(t, have) for t in self.tokens)

    def paths(self) -> set[str]:
        """Stored paths read."""
        return {"kw"}


@dataclass(frozen=True)
class KeywordText:
    """Each whitespace-separated part of the keyword is a substring of the record's search text.

    `text_of` recomputes the searched text from the record (the caller's
    visible fields only, when some searched field is hidden from them); by
    default the stored `search` text is used.
    """

    parts: tuple[str, ...]
    text_of: Callable[[Doc], str] | None = None

    def matches(self, doc: Doc) -> bool:
        """Case-insensitive substring check."""
        text = self.text_of(doc) if self.text_of is not None else str(doc.get("search") or "")
        return all(p in text for p in self.parts)

    def paths(self) -> set[str]:
        """Stored paths read."""
        return {"data"} if self.text_of is not None else {"search"}


class Condition(Protocol):
    """Anything evaluated in Python on a stored record."""

    def matches(self, doc: Doc) -> bool:
        """True when the record passes."""
        ...

    def paths(self) -> set[str]:
        """Stored paths read (for projections)."""
        ...


def _fail(where: str, rule: str, locale: str, **params: Any) -> ValidationFailed:
    return invalid(where, rule, locale, **params)


def _parse_dt(value: Any, tz: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected an ISO date-time")
    text = value.strip().replace("Z", "+00:00")
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime.combine(d, time(0), tz).astimezone(UTC)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def relative_range(op: str, value: Any, kind: str, ctx: QueryContext) -> Range:
    """today/this_week/this_month/last_n_days in the tenant time zone, as a half-open range.

    `kind` "date" gives "YYYY-MM-DD" bounds (how dates are stored), anything
    else aware UTC datetimes.
    """
    today = ctx.now.astimezone(ctx.tz).date()
    if op == "today":
        start, end = today, today + timedelta(days=1)
    elif op == "this_week":
        start = today - timedelta(days=today.weekday())
        end = start + timedelta(days=7)
    elif op == "this_month":
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif op == "last_n_days":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("last_n_days needs a whole number of days")
        n = int(value)
        if not 1 <= n <= 3660:
            raise ValueError("last_n_days must be between 1 and 3660")
        start, end = today - timedelta(days=n - 1), today + timedelta(days=1)
    else:
        raise ValueError(f"not a relative date operator: {op}")
    if kind == "date":
        return Range(start.isoformat(), True, end.isoformat(), False)
    lo = datetime.combine(start, time(0), ctx.tz).astimezone(UTC)
    hi = datetime.combine(end, time(0), ctx.tz).astimezone(UTC)
    return Range(lo, True, hi, False)


@dataclass
class _Parser:
    form: FormSchema
    ctx: QueryContext
    coerce: Coerce
    subpath: Callable[[dict[str, Any]], str]
    hidden: frozenset[str] = frozenset()

    def node(self, raw: Any, where: str) -> Node:
        loc = self.ctx.locale
        if not isinstance(raw, Mapping):
            raise _fail(where, "invalid_filter", loc)
        groups = [k for k in ("and", "or") if k in raw]
        if groups:
            if len(raw) != 1 or not isinstance(raw[groups[0]], list):
                raise _fail(where, "invalid_filter", loc)
            kind = groups[0]
            children = tuple(self.node(c, f"{where}.{kind}[{i}]") for i, c in enumerate(raw[kind]))
            return Group(kind, children)
        return self.leaf(raw, where)

    def leaf(self, raw: Mapping[str, Any], where: str) -> Leaf:
        loc = self.ctx.locale
        name = raw.get("field")
        op = raw.get("op")
        if not isinstance(name, str) or not name:
            raise _fail(where, "invalid_filter", loc)
        if not isinstance(op, str) or op not in OPERATORS:
            raise _fail(f"{where}.op", "unknown_operator", loc, op=str(op))
        value = raw.get("value")
        try:
            if name in SYSTEM_ID_FIELDS or name in SYSTEM_TIME_FIELDS:
                return self._system_leaf(name, op, value)
            return self._data_leaf(name, op, value, where)
        except ValidationFailed as exc:
            errors = [FieldError(f"{where}.value", e.rule, e.message, e.params) for e in exc.errors]
            raise ValidationFailed(errors) from None
        except (ValueError, TypeError) as exc:
            raise _fail(f"{where}.value", "invalid_value", loc, error=str(exc)) from None

    def _system_leaf(self, name: str, op: str, value: Any) -> Leaf:
        indexed = name in INDEXED_SYSTEM_PATHS
        if name in SYSTEM_TIME_FIELDS:
            if op in RELATIVE_OPS:
                return Leaf(name, name, "range", relative_range(op, value, "datetime", self.ctx), indexed=indexed)
            if op in ("contains", "starts_with"):
                raise _fail(name, "unknown_operator", self.ctx.locale, op=op)
            return self._shaped(name, name, op, value, lambda v: _parse_dt(v, self.ctx.tz), indexed, False)
        if op in RANGE_OPS:
            raise _fail(name, "unknown_operator", self.ctx.locale, op=op)
        return self._shaped(name, name, op, value, _id_text, indexed, True)

    def _data_leaf(self, key: str, op: str, value: Any, where: str) -> Leaf:
        loc = self.ctx.locale
        definition = self.form.field(key) if key not in self.hidden else None
        if definition is None or definition.get("type") in UNFILTERABLE_TYPES:
            raise _fail(f"{where}.field", "unknown_field", loc, field=key)
        ftype = str(definition.get("type"))
        suffix = self.subpath(definition)
        path = f"data.{key}{suffix}"
        # an index on data.<key> does not cover a sub-path (region/address compare the province)
        indexed = key in self.form.indexed_keys and not suffix
        selective = indexed and (ftype in SELECTIVE_TYPES or bool(definition.get("unique")))
        if op in RELATIVE_OPS:
            kind = ftype if ftype in DATE_TYPES else str(definition.get("result_type") or "")
            if kind not in DATE_TYPES:
                raise _fail(f"{where}.op", "unknown_operator", loc, op=op)
            return Leaf(key, path, "range", relative_range(op, value, kind, self.ctx), indexed=indexed)
        if op in ("is_empty", "not_empty"):
            return Leaf(key, path, op, None, indexed=indexed)
        operand = self.coerce(definition, op, value)
        if op in ("eq", "ne"):
            return Leaf(key, path, op, operand, selective, indexed)
        if op in ("in", "nin"):
            if not isinstance(operand, list | tuple) or not operand:
                raise ValueError("expected a non-empty list")
            return Leaf(key, path, op, tuple(operand), selective, indexed)
        if op == "between":
            if not isinstance(operand, list | tuple) or len(operand) != 2:
                raise ValueError("between needs [low, high]")
            return Leaf(key, path, "range", Range(operand[0], True, operand[1], True), indexed=indexed)
        if op in ("gt", "gte"):
            return Leaf(key, path, "range", Range(operand, op == "gte"), indexed=indexed)
        if op in ("lt", "lte"):
            return Leaf(key, path, "range", Range(None, True, operand, op == "lte"), indexed=indexed)
        return Leaf(key, path, op, str(operand), indexed=indexed)

    def _shaped(
        self, name: str, path: str, op: str, value: Any, convert: Callable[[Any], Any], indexed: bool, selective: bool
    ) -> Leaf:
        if op in ("is_empty", "not_empty"):
            return Leaf(name, path, op, None, indexed=indexed)
        if op in ("eq", "ne"):
            return Leaf(name, path, op, convert(value), selective, indexed)
        if op in ("in", "nin"):
            if not isinstance(value, list) or not value:
                raise ValueError("expected a non-empty list")
            return Leaf(name, path, op, tuple(convert(v) for v in value), selective, indexed)
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("between needs [low, high]")
            lo = convert(value[0]) if value[0] is not None else None
            hi = convert(value[1]) if value[1] is not None else None
            return Leaf(name, path, "range", Range(lo, True, hi, True), indexed=indexed)
        if op in ("gt", "gte", "lt", "lte"):
            bound = convert(value)
            if bound is None:
                raise ValueError("a bound is required")
            rng = Range(bound, op == "gte") if op in ("gt", "gte") else Range(None, True, bound, op == "lte")
            return Leaf(name, path, "range", rng, indexed=indexed)
        if op in ("contains", "starts_with"):
            return Leaf(name, path, op, str(value or ""), indexed=indexed)
        raise _fail(name, "unknown_operator", self.ctx.locale, op=op)


def _id_text(value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError("expected an id")
    return str(value)


def parse_filter(
    tree: Any,
    form: FormSchema,
    ctx: QueryContext,
    coerce: Coerce,
    subpath: Callable[[dict[str, Any]], str] | None = None,
    hidden: frozenset[str] = frozenset(),
) -> Node | None:
    """Parse and coerce a filter tree (None or {} means no filter); 422 on unknown fields/operators.

    `subpath(field)` names the part of a stored value a filter compares ("" or e.g. ".province").
    Fields in `hidden` (hidden from the caller) are refused exactly like unknown fields.
    """
    if tree is None or tree == {}:
        return None
    shape = crm_schema.filter_shape_problem(tree)
    if shape is not None:
        rule, params = shape
        raise ValidationFailed([FieldError("filter", rule, crm_schema.message(rule, ctx.locale, **params))])
    return _Parser(form, ctx, coerce, subpath or (lambda _f: ""), hidden).node(tree, "filter")


# ---------------------------------------------------------------- sort and cursor


@dataclass(frozen=True)
class SortSpec:
    """One sort field plus _id as the tie-break, same direction."""

    field: str = "created_at"
    path: str = ORDER_PATH
    direction: int = -1
    # keyword searches without an explicit sort come back in the keyword order
    # (kp, _id), read partition range by partition range (see the module docstring)
    natural: bool = False

    def mongo(self) -> list[tuple[str, int]]:
        """The sort as given to pymongo."""
        return [(self.path, self.direction), ("_id", self.direction)]

    @property
    def always_present(self) -> bool:
        """System times exist on every record, so a range on them never drops rows."""
        return self.path in ("created_at", "updated_at", ORDER_PATH)

    @property
    def in_order(self) -> bool:
        """True for the creation order, read in windows of `seq` (select_window_page)."""
        return self.path == ORDER_PATH

    def key(self, doc: Doc) -> tuple[Any, ...]:
        """Position of a stored record in this order (ascending key)."""
        return (bson_key(get_path(doc, self.path)), str(doc.get("_id")))


NATURAL = SortSpec("_relevance", "kp", 1, natural=True)


def keyword_partition(record_id: str) -> int:
    """The record's `kp`: a stable, evenly spread partition of its id."""
    return zlib.crc32(record_id.encode("utf-8")) % KEYWORD_PARTITIONS


def parse_sort(
    raw: Any, form: FormSchema, locale: str = "zh-CN", keyword: str = "", hidden: frozenset[str] = frozenset()
) -> SortSpec:
    """`[{"field", "direction"}]` (or one object, or "-field"); the first entry counts.

    Default created_at desc; with a keyword and no sort, the keyword order (kp, _id).
    A field in `hidden` is refused like an unknown one.
    """
    if raw is None or raw == [] or raw == "":
        return NATURAL if keyword.strip() else SortSpec()
    if isinstance(raw, str):
        raw = [{"field": raw.lstrip("-+"), "direction": "desc" if raw.startswith("-") else "asc"}]
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not isinstance(raw[0], Mapping):
        raise invalid("sort", "invalid_filter", locale)
    first = raw[0]
    name = str(first.get("field") or "")
    direction = str(first.get("direction") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise invalid("sort[0].direction", "invalid_filter", locale)
    sign = -1 if direction == "desc" else 1
    if name == "created_at":
        # creation order: `seq` is given at create, so it orders as created_at does (ties broken for good)
        return SortSpec(name, ORDER_PATH, sign)
    if name in SYSTEM_TIME_FIELDS:
        return SortSpec(name, name, sign)
    definition = form.field(name) if name not in hidden else None
    if definition is None or name not in form.indexed_keys or definition.get("type") not in SORTABLE_TYPES:
        raise invalid("sort[0].field", "not_sortable", locale, field=name)
    return SortSpec(name, f"data.{name}", sign)


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.fromisoformat(str(value["$dt"]))
    return value


def encode_cursor(sort: SortSpec, doc: Doc) -> str:
    """Opaque urlsafe base64 JSON of the last row's (sort value, _id) and the sort it belongs to."""
    payload = [sort.field, sort.direction, _tag(get_path(doc, sort.path)), str(doc.get("_id"))]
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str, sort: SortSpec, locale: str = "zh-CN") -> tuple[Any, str]:
    """(sort value, _id) of the row a page ended on; 422 when malformed or made for another sort."""
    try:
        padded = text + "=" * (-len(text) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        name, direction, value, last_id = payload
        if name != sort.field or direction != sort.direction or not isinstance(last_id, str):
            raise ValueError("cursor of another sort")
        return _untag(value), last_id
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError):
        raise invalid("cursor", "invalid_cursor", locale) from None


# ---------------------------------------------------------------- the plan


@dataclass
class QueryPlan:
    """What the store runs and what Python checks for one page (and for the count)."""

    pushed: dict[str, Any]
    pushed_kind: str
    residual: list[Condition]
    sort: SortSpec
    page_size: int
    after: tuple[Any, str] | None = None
    cursor_bound: dict[str, Any] = field(default_factory=dict)
    # what plan_query chose from: the base predicate, the condition `pushed` stands for, the access pushdown
    base: dict[str, Any] = field(default_factory=dict)
    lifted: Condition | None = None
    acl_predicate: dict[str, Any] | None = None
    access: AccessFilter | None = None

    axis: str = ""  # set by by_value(): the sort field's value axis (date, datetime, number)

    @property
    def value_windowed(self) -> bool:
        """True when the page is read in windows of the sort field's values (see select_value_page)."""
        return bool(self.axis)

    def by_value(self, axis: str) -> QueryPlan:
        """This plan read in windows of the sort field's values: only the base is pushed, the rest is residual."""
        residual = ([self.lifted] if self.lifted is not None else []) + list(self.residual)
        if self.access is not None and self.access not in residual:
            residual.append(self.access)
        plan = QueryPlan(dict(self.base), "value", residual, self.sort, self.page_size, self.after, {}, self.base)
        plan.axis = axis
        return plan

    @property
    def windowed(self) -> bool:
        """True when the page is read in windows of the creation order (only the base or the acl is pushed)."""
        return self.sort.in_order and self.pushed_kind in ("none", "access")

    def in_order(self) -> QueryPlan:
        """This plan read in windows of the creation order: the pushed field condition becomes a residual.

        For a common filter value, reading the newest records until a page is
        full costs about page / selectivity rows, where pushing the filter
        costs every match (sorted in memory by the store).
        """
        if not self.sort.in_order or self.pushed_kind in ("none", "access", "keyword"):
            return self
        residual = ([self.lifted] if self.lifted is not None else []) + list(self.residual)
        pushed, kind = dict(self.base), "none"
        if self.acl_predicate is not None and self.access is not None:
            pushed.update(self.acl_predicate)
            kind = "access"
            if self.access.exact:
                residual = [c for c in residual if c is not self.access]
        return QueryPlan(
            pushed,
            kind,
            residual,
            self.sort,
            self.page_size,
            self.after,
            {},
            self.base,
            None,
            self.acl_predicate,
            self.access,
        )

    @property
    def partitioned(self) -> bool:
        """True when the page is read partition range by partition range (a keyword, no explicit sort)."""
        return self.sort.natural and self.pushed_kind == "keyword"

    @property
    def push_limit(self) -> bool:
        """True when the store can apply sort+limit itself (nothing left to check in Python)."""
        return not self.residual and self.after is None

    def find_filter(self) -> dict[str, Any]:
        """The pushed predicate plus the cursor's range on the sort field when that stays index-covered."""
        if not self.cursor_bound:
            return dict(self.pushed)
        merged = dict(self.pushed)
        path = self.sort.path
        existing = merged.get(path)
        cond = dict(existing) if isinstance(existing, Mapping) else {}
        for op, bound in self.cursor_bound.items():
            cond[op] = _tighter(op, cond.get(op), bound)
        merged[path] = cond
        return merged

    def matches(self, doc: Doc) -> bool:
        """The residual conditions (the count uses this)."""
        return all(c.matches(doc) for c in self.residual)

    def is_after_cursor(self, doc: Doc) -> bool:
        """True for rows strictly after the cursor row in sort order."""
        if self.after is None:
            return True
        mine = self.sort.key(doc)
        theirs = (bson_key(self.after[0]), self.after[1])
        return mine > theirs if self.sort.direction > 0 else mine < theirs

    def page_filter(self, doc: Doc) -> bool:
        """A streamed row belongs on this page's candidates (after the cursor, passes the residual)."""
        return self.is_after_cursor(doc) and self.matches(doc)

    def residual_projection(self) -> dict[str, int]:
        """Fields a count needs to evaluate the residual."""
        paths: set[str] = set()
        for c in self.residual:
            paths |= c.paths()
        return {p: 1 for p in sorted(paths)} or {"_id": 1}

    def describe(self) -> dict[str, Any]:
        """For logs and tests."""
        return {
            "pushed": self.pushed,
            "pushed_kind": self.pushed_kind,
            "residual": len(self.residual),
            "sort": self.sort.mongo(),
            "cursor_bound": self.cursor_bound,
            "push_limit": self.push_limit,
        }


def _tighter(op: str, current: Any, new: Any) -> Any:
    if current is None:
        return new
    if op in ("$gte", "$gt"):
        return max(current, new)
    return min(current, new)


def _top_level(node: Node | None) -> tuple[list[Leaf], list[Node]]:
    """(top-level AND leaves that may be pushed, everything else)."""
    if node is None:
        return [], []
    if isinstance(node, Leaf):
        return [node], []
    if node.kind == "and":
        leaves = [n for n in node.nodes if isinstance(n, Leaf)]
        others: list[Node] = [n for n in node.nodes if not isinstance(n, Leaf)]
        for sub in others[:]:
            # nested ANDs flatten into the top level
            if isinstance(sub, Group) and sub.kind == "and":
                inner_leaves, inner_rest = _top_level(sub)
                leaves += inner_leaves
                others.remove(sub)
                others += inner_rest
        return leaves, others
    return [], [node]


def _leaf_rank(leaf: Leaf, sort: SortSpec) -> int | None:
    if not leaf.pushable:
        return None
    if leaf.op in ("eq", "in"):
        return 0 if leaf.selective else 1
    if leaf.path == sort.path:
        return 4
    return 5


def normalise_text(text: str) -> str:
    """NFKC + casefold: how the stored `search` text and keyword parts are compared."""
    return unicodedata.normalize("NFKC", text).casefold()


def keyword_parts(keyword: str) -> tuple[str, ...]:
    """The whitespace-separated, normalised parts of a keyword."""
    return tuple(p for p in normalise_text(keyword).split() if p)


def pick_token(tokens: Sequence[str]) -> str:
    """The token most likely to be rare and cheap: a whole token over a prefix, then the longest, then the first."""
    return min(tokens, key=lambda t: (crm_schema.is_prefix(t), -len(t), tokens.index(t)))


def token_predicate(token: str) -> dict[str, Any]:
    """The `kw` condition of a query token: equality, or for a prefix token the range of tokens it starts."""
    if not crm_schema.is_prefix(token):
        return {"kw": token}
    stem = token[:-1]
    return {"kw": {"$gte": stem, "$lt": stem + "\U0010ffff"}}


def plan_query(
    form: FormSchema,
    tenant_id: str,
    *,
    ctx: QueryContext,
    coerce: Coerce,
    tokenize: Callable[[str], list[str]],
    access: AccessFilter | None = None,
    hidden: frozenset[str] = frozenset(),
    keyword_text: Callable[[Doc], str] | None = None,
    subpath: Callable[[dict[str, Any]], str] | None = None,
    tree: Any = None,
    sort: Any = None,
    keyword: str = "",
    cursor: str = "",
    page_size: int = 0,
    deleted: bool = False,
    choose_token: Callable[[dict[str, Any], Sequence[str]], str] | None = None,
) -> QueryPlan:
    """Plan one page of ListRecords; see the module docstring.

    `choose_token(base predicate, tokens)` picks the keyword token the store is
    asked for (the service samples the store); without it, pick_token's guess.
    `access` is the caller's record-level access (None: every record of the
    tenant); `hidden` the fields they may not filter or sort on; `keyword_text`
    the record text the keyword must be part of (default: the stored `search`).
    """
    loc = ctx.locale
    size = page_size or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid("page_size", "invalid_page_size", loc, max=MAX_PAGE_SIZE)
    spec = parse_sort(sort, form, loc, keyword or "", hidden)
    root = parse_filter(tree, form, ctx, coerce, subpath, hidden)
    leaves, rest = _top_level(root)

    # candidates: (rank, order, pushed predicate, kind, the condition it replaces)
    candidates: list[tuple[int, int, dict[str, Any], str, Any]] = []
    for i, leaf in enumerate(leaves):
        rank = _leaf_rank(leaf, spec)
        if rank is not None:
            candidates.append((rank, i, leaf.to_mongo(), f"field:{leaf.path}", leaf))
    residual: list[Condition] = []
    keyword = (keyword or "").strip()
    kw_tokens: tuple[str, ...] = ()
    if keyword:
        kw_tokens = tuple(dict.fromkeys(tokenize(keyword)))
        if kw_tokens:
            candidates.append((2, 0, {}, "keyword", None))  # the token is chosen only if the keyword wins
    pushdown = access.pushdown if access is not None else None
    acl_predicate: dict[str, Any] | None = None
    if access is not None and pushdown and len(pushdown) <= MAX_IN_VALUES:
        acl_predicate = {"acl": pushdown[0] if len(pushdown) == 1 else {"$in": list(pushdown)}}
        candidates.append((3, 0, acl_predicate, "access", access))

    pushed: dict[str, Any] = {"tenant_id": tenant_id, "form_id": form.id, "deleted": bool(deleted)}
    chosen: Any = None
    kind = "none"
    if candidates:
        candidates.sort(key=lambda c: (c[0], c[1]))
        _, _, predicate, kind, chosen = candidates[0]
        if kind == "keyword":
            if choose_token is not None and len(kw_tokens) > 1:
                chosen = choose_token(dict(pushed), kw_tokens)
            else:
                chosen = pick_token(kw_tokens)
            predicate = token_predicate(chosen)
        pushed.update(predicate)

    residual += [leaf for leaf in leaves if leaf is not chosen]
    residual += rest
    if access is not None and not (chosen is access and access.exact):
        residual.append(access)
    if kw_tokens:
        remaining = tuple(t for t in kw_tokens if not (kind == "keyword" and t == chosen))
        if remaining:
            residual.append(KeywordTokens(remaining))
    if keyword:
        residual.append(KeywordText(keyword_parts(keyword), keyword_text))

    plan = QueryPlan(pushed, kind, residual, spec, size)
    plan.base = {"tenant_id": tenant_id, "form_id": form.id, "deleted": bool(deleted)}
    plan.lifted = chosen if isinstance(chosen, Leaf) else None
    plan.acl_predicate = acl_predicate
    plan.access = access
    if cursor:
        value, last_id = decode_cursor(cursor, spec, loc)
        if spec.natural and not (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value < KEYWORD_PARTITIONS
        ):
            raise invalid("cursor", "invalid_cursor", loc)
        plan.after = (value, last_id)
        # a range on the sort field keeps the query index-covered only when the pushed
        # condition is already on that field, or nothing but the base is pushed
        same_index = kind == f"field:{spec.path}" or (kind == "none" and spec.path in ("created_at", "updated_at"))
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise invalid("cursor", "invalid_cursor", loc)  # no stored value is that large: a forged cursor
        if spec.in_order and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53):
            raise invalid("cursor", "invalid_cursor", loc)  # a forged number past int64 would reach the store
        if same_index and spec.always_present and value is not None:
            plan.cursor_bound = {"$lte" if spec.direction < 0 else "$gte": value}
    return plan


def _fill(plan: QueryPlan, rows: Iterable[Doc], page: list[Doc]) -> bool:
    """Append the rows on this page to `page`; True once a row beyond a full page is seen."""
    for doc in rows:
        if not plan.page_filter(doc):
            continue
        if len(page) == plan.page_size:
            return True
        page.append(doc)
    return False


def select_page(plan: QueryPlan, rows: Iterable[Doc]) -> tuple[list[Doc], bool]:
    """Take the page from rows streamed in sort order: (rows, has_more)."""
    page: list[Doc] = []
    return page, _fill(plan, rows, page)


def select_partitioned_page(
    plan: QueryPlan, fetch: Callable[[int, int], Iterable[Doc]], partitions: int = KEYWORD_PARTITIONS
) -> tuple[list[Doc], bool, int]:
    """A keyword-order page, read range of partitions by range: (rows, has_more, store reads).

    `fetch(lo, hi)` returns the records of the pushed predicate with lo <= kp < hi,
    in any order. The first range is one partition (the cursor's); the next ones
    are sized from the density seen so far (at most twice the last), so a common
    token costs one or two small reads and a rare one about log2(partitions).
    """
    start = 0
    if plan.after is not None:
        start = int(plan.after[0])
    page: list[Doc] = []
    lo, width, reads, scanned = start, 1, 0, 0
    while lo < partitions:
        hi = min(partitions, lo + width)
        reads += 1
        if _fill(plan, sorted(fetch(lo, hi), key=plan.sort.key), page):
            return page, True, reads
        scanned += hi - lo
        lo = hi
        need = plan.page_size + 1 - len(page)
        if page:
            # partitions expected to hold `need` more rows, with a margin
            width = max(1, min(2 * width, -(-need * scanned * 5 // (4 * len(page)))))
        else:
            width *= 2
    return page, False, reads


def select_window_page(
    plan: QueryPlan, fetch: Callable[[int | None, int | None], Iterable[Doc]], last: int, density: float = 1.0
) -> tuple[list[Doc], bool, int]:
    """A page in creation order, read window of `seq` by window: (rows, has_more, store reads).

    `fetch(lo, hi)` returns the records of the pushed predicate with
    lo <= seq < hi (None: unbounded), in any order; `last` is the highest seq
    handed out (the form's counter) and `density` the expected share of a
    window's numbers that pass (deleted records, another scope and the
    residual leave gaps). The window at the open end is unbounded, so a record
    numbered after `last` was read is not missed; the next windows are sized
    from the density seen (at most four times the last), so a page costs about
    its own rows at any size of the form, and a rare filter about log(rows) reads.
    """
    need = plan.page_size + 1
    width = max(need, int(need * 1.25 / max(density, 1 / 256)) + 1)
    page: list[Doc] = []
    reads, scanned = 0, 0
    desc = plan.sort.direction < 0
    after = int(plan.after[0]) if plan.after is not None else None
    if desc:
        hi: int | None = after  # exclusive
        top = after if after is not None else last + 1
        while top > 1:
            lo = max(1, top - width)
            reads += 1
            rows = sorted(fetch(lo if lo > 1 else None, hi), key=plan.sort.key, reverse=True)
            had = len(page)
            if _fill(plan, rows, page):
                return page, True, reads
            scanned += top - lo
            top, hi = lo, lo
            width = _next_width(width, need - len(page), scanned, len(page), len(page) > had)
        return page, False, reads
    lo_seq = after + 1 if after is not None else 1
    while True:
        hi_seq = lo_seq + width
        open_end = hi_seq > last
        reads += 1
        rows = sorted(fetch(lo_seq if lo_seq > 1 else None, None if open_end else hi_seq), key=plan.sort.key)
        had = len(page)
        if _fill(plan, rows, page):
            return page, True, reads
        if open_end:
            return page, False, reads
        scanned += hi_seq - lo_seq
        lo_seq = hi_seq
        width = _next_width(width, need - len(page), scanned, len(page), len(page) > had)


def _next_width(width: int, need: int, scanned: int, found: int, grew: bool = True) -> int:
    """The next window: numbers expected to hold `need` more rows with a margin, at most four times the last;
    four times the last when the last found nothing (a gap of deleted records or a run of non-matches)."""
    if found == 0 or not grew:
        return width * 4
    return max(need, min(4 * width, -(-need * scanned * 5 // (4 * found))))


# ---------------------------------------------------------------- value windows of a sort field

AXIS_OF_TYPE = {
    "date": "date",
    "datetime": "datetime",
    "number": "number",
    "integer": "number",
    "money": "number",
    "percent": "number",
    "rating": "number",
}


def axis_of(form: FormSchema, sort: SortSpec) -> str:
    """The value axis of a sort on an indexed form field ("" when its values cannot be windowed)."""
    if not sort.path.startswith("data.") or sort.natural:
        return ""
    definition = form.field(sort.field)
    return AXIS_OF_TYPE.get(str((definition or {}).get("type")), "")


def to_axis(axis: str, value: Any) -> float | None:
    """A stored value as a number on its axis (days, seconds, the number); None when it is not of the axis."""
    try:
        if axis == "date" and isinstance(value, str):
            return float(date.fromisoformat(value[:10]).toordinal())
        if axis == "datetime" and isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if axis == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    except (ValueError, OverflowError):
        return None
    return None


def from_axis(axis: str, x: float) -> Any:
    """A number on the axis back as a stored value (for a query bound), clamped to what the type can hold."""
    if axis == "date":
        return date.fromordinal(int(min(max(x, 1), date.max.toordinal()))).isoformat()
    if axis == "datetime":
        lo, hi = datetime(1, 1, 2, tzinfo=UTC).timestamp(), datetime(9999, 12, 30, tzinfo=UTC).timestamp()
        return datetime.fromtimestamp(min(max(x, lo), hi), UTC)
    return x


def select_value_page(
    plan: QueryPlan,
    fetch: Callable[[Any, Any, bool], Iterable[Doc]],
    fetch_empty: Callable[[], Iterable[Doc]],
    bounds: tuple[float, float],
    rows: int,
) -> tuple[list[Doc], bool, int]:
    """A page sorted by a date or number field, read window of values by window: (rows, has_more, reads).

    `fetch(lo, hi, hi_inclusive)` returns the records of the base with lo <=
    value < hi (or <= hi; None: unbounded) in any order, `fetch_empty()` those
    without a value (null sorts first ascending and last descending, as in
    MongoDB); `bounds` is the field's known (min, max) on its axis, `rows` the
    form's size. The window at the open end is unbounded, so a value beyond
    the bounds is still read; the next windows are sized from the density seen.
    """
    axis = plan.axis
    need = plan.page_size + 1
    page: list[Doc] = []
    reads = 0
    desc = plan.sort.direction < 0
    lo_b, hi_b = bounds
    span = max(hi_b - lo_b, 1.0)
    unit = 1.0 if axis in ("date", "number") else 0.001
    width = max(unit, span * need * 1.25 / max(rows, 1))
    after = plan.after
    cursor_x = to_axis(axis, after[0]) if after is not None and after[0] is not None else None

    def take(found: Iterable[Doc]) -> bool:
        nonlocal reads
        reads += 1
        return _fill(plan, sorted(found, key=plan.sort.key, reverse=desc), page)

    if not desc and (after is None or after[0] is None):
        if take(fetch_empty()):
            return page, True, reads
    elif desc and after is not None and after[0] is None:
        return page, take(fetch_empty()), reads
    scanned, found = 0.0, 0
    if desc:
        hi: float | None = cursor_x
        top = cursor_x if cursor_x is not None else hi_b + unit
        while True:
            lo = top - width
            last = lo <= lo_b
            had = len(page)
            at_cursor = hi is not None and hi == cursor_x and after is not None
            # the cursor's own value is a bound as stored (its ties are on this page), the rest from the axis
            bound_hi = after[0] if at_cursor and after is not None else from_axis(axis, hi) if hi is not None else None
            if take(fetch(None if last else from_axis(axis, lo), bound_hi, at_cursor)):
                return page, True, reads
            if last:
                break
            scanned += top - lo
            found = len(page)
            top = hi = lo
            width = _next_span(width, need - len(page), scanned, found, len(page) > had)
        return page, take(fetch_empty()), reads
    lo_x: float = cursor_x if cursor_x is not None else lo_b
    first = True
    while True:
        hi_x = lo_x + width
        last = hi_x > hi_b
        had = len(page)
        if first:
            lo_bound = after[0] if cursor_x is not None and after is not None else None
        else:
            lo_bound = from_axis(axis, lo_x)
        if take(fetch(lo_bound, None if last else from_axis(axis, hi_x), False)):
            return page, True, reads
        if last:
            return page, False, reads
        first = False
        scanned += hi_x - lo_x
        lo_x = hi_x
        width = _next_span(width, need - len(page), scanned, len(page), len(page) > had)


def _next_span(width: float, need: int, scanned: float, found: int, grew: bool) -> float:
    """_next_width on a value axis."""
    if found == 0 or not grew:
        return width * 4
    return max(width / 4, min(4 * width, need * scanned * 1.25 / found))
