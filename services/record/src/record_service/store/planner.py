"""The query planner: a parsed query -> what the store runs + what Python checks, and reading the page.

SecantusDB uses an index only when ONE index covers every field of the
predicate, reads a whole index range before it applies a limit, and sorts in
memory. So a list query is split in two:

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
read in bounded windows and filtered until a page is full:

* the creation order (`seq`) in windows of `seq` (select_window_page);
* a date/number sort in windows of the field's values (select_value_page),
  sized from the bounds writes report (`StoreQueries.written`);
* a keyword without a sort in the keyword order (kp, _id): the keyword index
  is (tenant_id, form_id, deleted, kw, kp) and the partitions of a token are
  read in widening ranges (select_partitioned_page), so a page costs about the
  matches of a few partitions, not of the whole token.

Counts are capped at COUNT_CAP: a sample of partitions tells "over the cap"
without reading every match (StoreQueries.count). The count of a whole form
(no filter, a caller who sees every record), and of an eq/in filter on a
select, stage or boolean field, is not read at all: the
repository keeps it as records are written (`tally`: count shards moved in
the same transactions as the records), because SecantusDB counts by reading
every matching document (~20 µs each: 200 ms for 10,000).

`StoreQueries` is the domain's RecordQueries port (domain/repository.py) over
the RecordRepository's find/count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import crm_schema
from record_service.domain.context import RecordContext
from record_service.domain.errors import invalid
from record_service.domain.forms import FormSchema
from record_service.domain.query import (
    COUNT_CAP,
    COUNT_CAPPED,
    COUNT_NONE,
    DEFAULT_PAGE_SIZE,
    FACET_TYPES,
    KEYWORD_PARTITIONS,
    MAX_IN_VALUES,
    MAX_PAGE_SIZE,
    ORDER_PATH,
    STREAM_BATCH,
    AccessFilter,
    Condition,
    Doc,
    Group,
    KeywordText,
    KeywordTokens,
    Leaf,
    Node,
    QueryContext,
    SortSpec,
    bson_key,
    decode_cursor,
    facet,
    keyword_parts,
    parse_filter,
    parse_sort,
)
from record_service.domain.repository import RecordRepository

KEYWORD_PROBES = 6  # tokens of a long keyword sampled to pick the rarest
KEYWORD_PROBE_LIMIT = 200
MAX_SORTED_ROWS = 50_000
"""Records the store may sort in memory for one page (a sort that cannot be read in windows: a text, select or
stage field). SecantusDB reads the whole range into memory first (1,048,576 records took it past 23 GB and the
OOM killer); MongoDB refuses an in-memory sort over 100 MB. Above it the list is a 422 asking for a filter."""
Coerce = Callable[[dict[str, Any], str, Any], Any]


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
    locale: str = "zh-CN"  # of the caller, for an error found while reading (a sort too large)
    # the per-value counts (query.facet) whose sum is the count, when the pushed condition is eq/in on a select,
    # stage or boolean field and nothing else is checked
    facets: tuple[str, ...] = ()

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
    plan.facets = _facets(form, plan.lifted)
    plan.locale = loc
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


MAX_FACETS = 5  # values of an `in` counted from their kept counts (each is 32 shards to read)


def _facets(form: FormSchema, leaf: Leaf | None) -> tuple[str, ...]:
    """The kept per-value counts adding up to the matches of a pushed eq/in on a select, stage or boolean field."""
    if leaf is None or leaf.op not in ("eq", "in") or leaf.path != f"data.{leaf.field}":
        return ()
    if (form.field(leaf.field) or {}).get("type") not in FACET_TYPES:
        return ()
    values = list(dict.fromkeys(leaf.value)) if leaf.op == "in" else [leaf.value]
    if not 0 < len(values) <= MAX_FACETS or not all(isinstance(v, str | bool) for v in values):
        return ()
    return tuple(facet(leaf.field, v) for v in values)


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


# ---------------------------------------------------------------- reading pages and counts


class StoreQueries:
    """The RecordQueries port: plans a ListRecords query, reads its page and its count through the repository.

    Keeps, per process, the (low, high) values a form's windowable fields are
    known to hold in the store (read-window sizing only; writes report theirs
    through `written`).
    """

    def __init__(self, repo: RecordRepository) -> None:
        self.repo = repo
        # (tenant, form, key) -> (low, high) this process knows the store holds
        self._bounds: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def plan(
        self,
        form: FormSchema,
        tenant_id: str,
        *,
        ctx: RecordContext,
        access: AccessFilter | None,
        hidden: frozenset[str],
        keyword_text: Callable[[Doc], str] | None,
        tree: Any,
        sort: Any,
        keyword: str,
        cursor: str,
        page_size: int,
        deleted: bool,
    ) -> QueryPlan:
        """See plan_query; operands coerced and keywords tokenised by crm_schema, the keyword token sampled."""
        return plan_query(
            form,
            tenant_id,
            ctx=ctx,
            coerce=lambda definition, op, value: crm_schema.filter_value(definition, op, value, ctx=ctx),
            tokenize=crm_schema.query_tokens,
            subpath=crm_schema.filter_path,
            access=access,
            hidden=hidden,
            keyword_text=keyword_text,
            tree=tree,
            sort=sort,
            keyword=keyword,
            cursor=cursor,
            page_size=page_size,
            deleted=deleted,
            choose_token=self._rarest_token,
        )

    def page(self, form: FormSchema, plan: QueryPlan) -> tuple[list[dict[str, Any]], bool]:
        """The stored records of one page and whether more follow, read the cheapest way the plan allows."""
        tenant_id = str(plan.base["tenant_id"])
        axis = axis_of(form, plan.sort)
        last = self.repo.last_order(tenant_id, form.id) if plan.sort.in_order or axis else 0
        density = 1.0
        # a filter matching many records is cheaper checked on the rows read in sort order
        # (about page / selectivity rows) than pushed (every match, sorted in memory)
        common = plan.pushed_kind in ("none", "access")
        if (plan.sort.in_order or axis) and plan.pushed_kind.startswith("field:data."):
            matches = self._estimate(plan)
            common = matches * matches > (plan.page_size + 1) * max(last, 1)
            density = max(matches / max(last, 1), 1 / 256)
        if plan.sort.in_order and common:
            plan = plan.in_order()
        valued = self._value_page(plan.by_value(axis), max(1, int(last * density))) if axis and common else None
        if valued is not None:
            return valued
        if plan.windowed:
            windowed = plan
            selected, more, _ = select_window_page(
                plan, lambda lo, hi: self.repo.find(_window(windowed, lo, hi)), last, density
            )
            return [dict(d) for d in selected], more
        if plan.partitioned:
            partitioned = plan
            selected, more, _ = select_partitioned_page(
                plan, lambda lo, hi: self.repo.find({**partitioned.pushed, "kp": {"$gte": lo, "$lt": hi}})
            )
            return [dict(d) for d in selected], more
        self._refuse_a_large_sort(form, plan, axis)
        sort_spec = plan.sort.mongo()
        if plan.push_limit:
            rows = list(self.repo.find(plan.find_filter(), sort=sort_spec, limit=plan.page_size + 1))
            return rows[: plan.page_size], len(rows) > plan.page_size
        stream = self.repo.find(plan.find_filter(), sort=sort_spec, batch_size=STREAM_BATCH)
        try:
            selected, more = select_page(plan, stream)
            return [dict(d) for d in selected], more
        finally:
            _close(stream)

    def count(self, plan: QueryPlan, mode: str) -> tuple[int, bool]:
        """(total, capped) of the plan's matches as `mode` asks: -1 for none, at most COUNT_CAP for capped."""
        if mode == COUNT_NONE:
            return -1, False
        limit = COUNT_CAP + 1 if mode == COUNT_CAPPED else 0
        whole = plan.pushed_kind == "none" and set(plan.pushed) == set(plan.base)
        if not plan.residual and (whole or plan.facets):
            # every record of the form, or those holding some values of a select or boolean field, for a
            # caller who sees them all: kept as written
            where = (str(plan.base["tenant_id"]), str(plan.base["form_id"]), bool(plan.base["deleted"]))
            kept = self.repo.tally(*where, () if whole else plan.facets)
            if kept is not None:
                return (COUNT_CAP, True) if limit and kept > COUNT_CAP else (kept, False)
        if limit and self._over_cap(plan):
            return COUNT_CAP, True
        if not plan.residual:
            total = self.repo.count(plan.pushed, limit)
        else:
            total = 0
            stream = self.repo.find(plan.pushed, projection=plan.residual_projection(), batch_size=2000)
            try:
                for doc in stream:
                    if plan.matches(doc):
                        total += 1
                        if limit and total >= limit:
                            break
            finally:
                _close(stream)
        if limit and total > COUNT_CAP:
            return COUNT_CAP, True
        return total, False

    def written(self, tenant_id: str, form: FormSchema, datas: Sequence[Mapping[str, Any]]) -> None:
        """Report the values written to the form's windowable fields whose bounds they pass (rarely a write)."""
        for key in form.indexed_keys:
            axis = AXIS_OF_TYPE.get(str((form.field(key) or {}).get("type")), "")
            values = [d[key] for d in datas if to_axis(axis, d.get(key)) is not None] if axis else []
            if not values:
                continue
            low, high = min(values), max(values)
            known = self._bounds.get((tenant_id, form.id, key))
            try:
                if known is not None and known[0] <= low and high <= known[1]:
                    continue
            except TypeError:  # bounds of another type (the field's type changed): widen anew
                pass
            self._bounds[(tenant_id, form.id, key)] = self.repo.widen_bounds(tenant_id, form.id, key, low, high)

    def _rarest_token(self, base: dict[str, Any], tokens: Sequence[str]) -> str:
        """The keyword token with the fewest matches in one sample partition (kp 0).

        "华信恒通" has the tokens 华信, 信恒, 恒通; asking the store for the rarest
        one means reading its few matches rather than every record with a common
        bigram. Ties keep pick_token's preference (longer, then earlier).
        """
        whole = [t for t in tokens if not crm_schema.is_prefix(t)]
        if not whole:  # prefix tokens only: each probe would read its whole range
            return pick_token(tokens)
        preferred = sorted(whole, key=lambda t: -len(t))[:KEYWORD_PROBES]
        counts = {t: self.repo.count({**base, "kw": t, "kp": 0}, KEYWORD_PROBE_LIMIT) for t in preferred}
        return min(preferred, key=lambda t: (counts[t], preferred.index(t)))

    def _value_page(self, plan: QueryPlan, rows: int) -> tuple[list[dict[str, Any]], bool] | None:
        """A page sorted by a date/number field, in windows of its values; None when its bounds are unknown.

        `rows`: how many records are expected to pass the plan (sizes the first window)."""
        key = plan.sort.field
        bounds = self.repo.value_bounds(str(plan.base["tenant_id"]), str(plan.base["form_id"]), key)
        low = to_axis(plan.axis, bounds[0]) if bounds else None
        high = to_axis(plan.axis, bounds[1]) if bounds else None
        if low is None or high is None:
            return None
        path = plan.sort.path
        floor = from_axis(plan.axis, float("-inf"))

        def fetch(lo: Any, hi: Any, hi_inclusive: bool) -> Iterator[dict[str, Any]]:
            cond: dict[str, Any] = {"$gte": floor if lo is None else lo}
            if hi is not None:
                cond["$lte" if hi_inclusive else "$lt"] = hi
            return self.repo.find({**plan.pushed, path: cond})

        selected, more, _ = select_value_page(
            plan, fetch, lambda: self.repo.find({**plan.pushed, path: None}), (low, high), rows
        )
        return [dict(d) for d in selected], more

    def _refuse_a_large_sort(self, form: FormSchema, plan: QueryPlan, axis: str) -> None:
        """Raise `sort_too_large` when the store would sort more than MAX_SORTED_ROWS records in memory.

        Only a sort on a field without a value axis gets here unbounded; the matches of the pushed condition
        are estimated (the form's size when nothing is pushed). A scoped user's own records (`access`) are
        not estimated: the acl index has no partition to sample."""
        if plan.sort.in_order or plan.sort.natural or axis or plan.pushed_kind == "access":
            return
        if plan.pushed_kind == "none":
            estimate = self.repo.last_order(str(plan.base["tenant_id"]), form.id)
        else:
            estimate = self._estimate(plan)
        if estimate > MAX_SORTED_ROWS:
            raise invalid(
                "sort[0].field",
                "sort_too_large",
                plan.locale,
                field=plan.sort.field,
                estimate=f"{estimate:,}",
                max=f"{MAX_SORTED_ROWS:,}",
            )

    def _estimate(self, plan: QueryPlan) -> int:
        """Matches of the pushed field condition, from one partition of its (field, kp) index (x 256)."""
        return self.repo.count({**plan.pushed, "kp": 0}) * KEYWORD_PARTITIONS

    def _sampled(self, plan: QueryPlan, partitions: int) -> int:
        """Rows passing the plan among the records of partitions [0, partitions)."""
        predicate = {**plan.pushed, "kp": {"$lt": partitions}}
        if not plan.residual:
            return self.repo.count(predicate)
        stream = self.repo.find(predicate, projection=plan.residual_projection(), batch_size=2000)
        try:
            return sum(1 for doc in stream if plan.matches(doc))
        finally:
            _close(stream)

    def _over_cap(self, plan: QueryPlan) -> bool | None:
        """Whether more than COUNT_CAP records pass, from a sample of partitions; None when a sample cannot tell.

        `kp` is a uniform hash of the id, so the passing records of k of the 256
        partitions are a binomial sample: c - 4 sqrt(c) of them scaled by 256/k
        is a lower bound of the total (wrong about once in 30,000). The samples
        grow until the bound clears the cap or the upper bound falls below it.
        """
        if not (plan.pushed_kind in ("none", "keyword") or plan.pushed_kind.startswith("field:data.")):
            return None  # the acl and time indexes have no partition key
        for k in (1, 4, 16):
            c = self._sampled(plan, k)
            scale = KEYWORD_PARTITIONS / k
            if (c - 4 * c**0.5) * scale > COUNT_CAP:
                return True
            if (c + 4 * c**0.5 + 4) * scale <= COUNT_CAP:
                return False
        return None


def _window(plan: QueryPlan, lo: int | None, hi: int | None) -> dict[str, Any]:
    """The pushed predicate of a plan with lo <= seq < hi (None: unbounded)."""
    bound: dict[str, Any] = {}
    if lo is not None:
        bound["$gte"] = lo
    if hi is not None:
        bound["$lt"] = hi
    return {**plan.pushed, ORDER_PATH: bound} if bound else dict(plan.pushed)


def _close(stream: Iterator[Any]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()
