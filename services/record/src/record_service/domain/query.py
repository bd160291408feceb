"""ListRecords' query language, store-independent: filter trees, sorts, cursors and keyword parts.

What a caller may ask for and how it is read from a stored record, without
saying how the store is asked for it (store/planner.py decides which condition
the store runs and which ones Python checks, and reads the page):

* a filter tree `{"and"|"or": [node, ...]}` or a leaf `{"field", "op",
  "value"}` is parsed into `Leaf`/`Group` conditions; operands of form fields
  are coerced by crm_schema.filter_value (to the stored representation, so no
  operator can be injected); unknown fields or operators are a 422;
* a sort is one `SortSpec` (a field plus _id as the tie-break); the default is
  the creation order (`seq`), a keyword without a sort the keyword order (kp, _id);
* a cursor is the last row's (sort value, _id), opaque to the caller;
* a keyword is matched by its tokens (`KeywordTokens` on the stored `kw`) and
  its whitespace-separated parts (`KeywordText` on the stored `search` text);
* every record carries `kp`, a fixed partition of its id (0..255), so that
  keyword pages and counts can read a few partitions at a time.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
STREAM_BATCH = 500  # rows per batch when a query is streamed from the store
COUNT_CAP = 10_000  # a capped count stops here and says "10,000+"
COUNT_CAPPED, COUNT_EXACT, COUNT_NONE = "capped", "exact", "none"

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


FACET_TYPES = frozenset({"select", "stage", "boolean"})  # one value a record: its count is kept per value


def facet(key: str, value: Any) -> str:
    """The name of the count of records whose field `key` holds `value` (a select's option, true/false)."""
    return f"{key}={json.dumps(value, ensure_ascii=False)}"


def facets_of(fields: Sequence[Mapping[str, Any]], data: Mapping[str, Any]) -> list[str]:
    """The per-value counts a record is in: one for each select, stage or boolean field holding a value."""
    out: list[str] = []
    for f in fields:
        if f.get("type") in FACET_TYPES:
            value = data.get(str(f.get("key")))
            if isinstance(value, str | bool) and value != "":
                out.append(facet(str(f["key"]), value))
    return out


def normalise_text(text: str) -> str:
    """NFKC + casefold: how the stored `search` text and keyword parts are compared."""
    return unicodedata.normalize("NFKC", text).casefold()


def keyword_parts(keyword: str) -> tuple[str, ...]:
    """The whitespace-separated, normalised parts of a keyword."""
    return tuple(p for p in normalise_text(keyword).split() if p)
