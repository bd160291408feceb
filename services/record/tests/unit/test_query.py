"""Unit tests of the query planner (domain/query.py) with plain fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_runtime.errors import ValidationFailed
from record_service.domain.forms import FormSchema
from record_service.domain.query import (
    KEYWORD_PARTITIONS,
    Leaf,
    Range,
    decode_cursor,
    encode_cursor,
    keyword_partition,
    parse_filter,
    parse_sort,
    relative_range,
)
from record_service.store.planner import plan_query, select_page, select_partitioned_page, select_window_page

TZ = ZoneInfo("Asia/Shanghai")
# Wednesday 2024-05-15 01:30 in Shanghai (= Tuesday 17:30 UTC)
NOW = datetime(2024, 5, 14, 17, 30, tzinfo=UTC)

FORM = FormSchema(
    id="f1",
    key="customer",
    tenant_id="t1",
    version=1,
    title_field="name",
    fields=(
        {"key": "name", "type": "text", "unique": True},
        {"key": "level", "type": "select"},
        {"key": "city", "type": "text", "filterable": True},
        {"key": "amount", "type": "money", "filterable": True},
        {"key": "remark", "type": "long_text"},
        {"key": "signed_on", "type": "date"},
        {"key": "tags", "type": "multi_select"},
        {"key": "region", "type": "region", "filterable": True},
        {"key": "total", "type": "rollup"},
    ),
)


@dataclass
class Ctx:
    locale: str = "en"
    tz: Any = TZ
    now: datetime = NOW


def identity(field: dict[str, Any], op: str, value: Any) -> Any:
    """Fake coercion: operands are already stored values."""
    return value


def bigrams(text: str) -> list[str]:
    """Fake tokenizer: CJK bigrams."""
    return [text[i : i + 2] for i in range(len(text) - 1)] or [text]


@dataclass
class Acl:
    """Fake AccessFilter: records whose acl meets `tokens`, plus an optional exact-only rule on `level`."""

    tokens: tuple[str, ...] | None
    level: str | None = None

    @property
    def pushdown(self) -> tuple[str, ...] | None:
        return self.tokens

    @property
    def exact(self) -> bool:
        return self.level is None

    def matches(self, doc: dict[str, Any]) -> bool:
        in_acl = self.tokens is None or bool(set(doc.get("acl") or ()) & set(self.tokens))
        return in_acl and (self.level is None or (doc.get("data") or {}).get("level") == self.level)

    def paths(self) -> set[str]:
        return {"acl", "data.level"}


def plan(**kw: Any) -> Any:
    args: dict[str, Any] = {"ctx": Ctx(), "coerce": identity, "tokenize": bigrams}
    args.update(kw)
    return plan_query(FORM, "t1", **args)


def doc(_id: str = "a", **data: Any) -> dict[str, Any]:
    return {
        "_id": _id,
        "tenant_id": "t1",
        "form_id": "f1",
        "deleted": False,
        "owner_id": "u1",
        "department_id": "d1",
        "created_at": NOW,
        "data": data,
    }


# ------------------------------------------------------------------ planner output


def test_no_filter_pushes_only_the_base_and_lets_the_store_sort_and_limit() -> None:
    p = plan()
    assert p.pushed == {"tenant_id": "t1", "form_id": "f1", "deleted": False}
    assert p.pushed_kind == "none" and p.residual == [] and p.windowed
    assert p.sort.mongo() == [("seq", -1), ("_id", -1)]  # the creation order, given at create


def test_selective_eq_beats_other_indexed_eq_and_the_rest_is_residual() -> None:
    tree = {
        "and": [
            {"field": "city", "op": "eq", "value": "北京"},
            {"field": "level", "op": "eq", "value": "B"},
            {"field": "remark", "op": "contains", "value": "x"},
        ]
    }
    p = plan(tree=tree)
    assert p.pushed["data.level"] == "B" and "data.city" not in p.pushed
    assert p.pushed_kind == "field:data.level"
    assert len(p.residual) == 2 and not p.push_limit


def test_unindexed_fields_and_or_trees_are_never_pushed() -> None:
    p = plan(tree={"or": [{"field": "level", "op": "eq", "value": "A"}, {"field": "level", "op": "eq", "value": "B"}]})
    assert p.pushed_kind == "none" and len(p.residual) == 1
    p = plan(tree={"field": "remark", "op": "eq", "value": "x"})
    assert p.pushed_kind == "none"


def test_keyword_pushes_one_token_then_scope_then_sort_range() -> None:
    p = plan(keyword="华信恒通")
    assert p.pushed["kw"] == "华信" and p.pushed_kind == "keyword"
    kinds = {type(c).__name__ for c in p.residual}
    assert kinds == {"KeywordTokens", "KeywordText"}
    sales = Acl(("u:u1",))
    p = plan(access=sales, tree={"field": "created_at", "op": "gte", "value": "2024-01-01"})
    assert p.pushed_kind == "access" and p.pushed["acl"] == "u:u1"
    assert sales not in p.residual  # the tokens are the whole rule
    p = plan(tree={"field": "created_at", "op": "gte", "value": "2024-01-01T00:00:00Z"})
    assert p.pushed_kind == "field:created_at"
    assert p.pushed["created_at"] == {"$gte": datetime(2024, 1, 1, tzinfo=UTC)}


def test_keyword_beats_access_and_access_goes_residual() -> None:
    manager = Acl(("d:d1", "d:d2", "u:m"))
    p = plan(keyword="华信", access=manager)
    assert p.pushed_kind == "keyword" and manager in p.residual
    p = plan(access=manager)
    assert p.pushed["acl"] == {"$in": ["d:d1", "d:d2", "u:m"]} and p.push_limit


def test_access_with_a_condition_is_pushed_and_checked_exactly_on_rows() -> None:
    conditional = Acl(("u:u1",), level="A")
    p = plan(access=conditional)
    assert p.pushed_kind == "access" and conditional in p.residual and not p.push_limit
    rows = [
        {"_id": "1", "acl": ["u:u1"], "data": {"level": "A"}},
        {"_id": "2", "acl": ["u:u1"], "data": {"level": "B"}},
        {"_id": "3", "acl": ["u:u2"], "data": {"level": "A"}},
    ]
    assert [r["_id"] for r in rows if p.matches(r)] == ["1"]
    assert {"acl", "data.level"} <= set(p.residual_projection())
    # an `all` scope with a condition has no pushdown: nothing on acl, the rule stays residual
    anywhere = Acl(None, level="A")
    p = plan(access=anywhere)
    assert "acl" not in p.pushed and anywhere in p.residual


def test_hidden_fields_cannot_be_filtered_or_sorted_like_unknown_ones() -> None:
    hidden = frozenset({"amount"})
    with pytest.raises(ValidationFailed) as exc:
        plan(tree={"field": "amount", "op": "gt", "value": 1}, hidden=hidden)
    assert exc.value.errors[0].rule == "unknown_field"
    with pytest.raises(ValidationFailed) as unknown:
        plan(tree={"field": "nope", "op": "gt", "value": 1})
    mine, theirs = exc.value.errors[0], unknown.value.errors[0]
    assert (mine.field, mine.rule) == (theirs.field, theirs.rule)
    assert mine.message == theirs.message.replace("nope", "amount")
    with pytest.raises(ValidationFailed) as exc:
        plan(sort=[{"field": "amount", "direction": "asc"}], hidden=hidden)
    assert exc.value.errors[0].rule == "not_sortable"
    assert plan(sort=[{"field": "amount", "direction": "asc"}]).sort.path == "data.amount"


def test_filters_past_their_bounds_are_refused_before_parsing() -> None:
    leaf = {"field": "level", "op": "eq", "value": "A"}
    deep: dict[str, Any] = leaf
    for _ in range(500):
        deep = {"and": [deep]}
    with pytest.raises(ValidationFailed) as exc:
        plan(tree=deep)
    assert (exc.value.errors[0].field, exc.value.errors[0].rule) == ("filter", "filter_too_deep")
    with pytest.raises(ValidationFailed) as exc:
        plan(tree={"or": [leaf] * 10_000})
    assert exc.value.errors[0].rule == "filter_too_wide"
    plan(tree={"or": [leaf] * 100})  # within bounds: parsed as usual


def test_keyword_text_can_be_recomputed_from_visible_fields() -> None:
    p = plan(keyword="秘密", keyword_text=lambda d: str((d.get("data") or {}).get("name") or ""))
    text = next(c for c in p.residual if type(c).__name__ == "KeywordText")
    assert text.paths() == {"data"}
    assert text.matches({"data": {"name": "秘密公司"}, "search": ""})
    assert not text.matches({"data": {"name": "公开"}, "search": "秘密"})


def test_large_in_lists_stay_residual() -> None:
    p = plan(tree={"field": "level", "op": "in", "value": [str(i) for i in range(201)]})
    assert p.pushed_kind == "none" and len(p.residual) == 1
    p = plan(tree={"field": "level", "op": "in", "value": ["A", "B"]})
    assert p.pushed["data.level"] == {"$in": ["A", "B"]}


def test_unknown_field_operator_and_computed_fields_are_422() -> None:
    for tree in (
        {"field": "nope", "op": "eq", "value": 1},
        {"field": "level", "op": "$where", "value": 1},
        {"field": "total", "op": "eq", "value": 1},
        {"field": "owner_id", "op": "gt", "value": "x"},
        {"field": "level", "op": "today"},
        {"nope": []},
        ["not", "an", "object"],
    ):
        with pytest.raises(ValidationFailed):
            plan(tree=tree)


def test_coercion_errors_name_the_leaf() -> None:
    def strict(field: dict[str, Any], op: str, value: Any) -> Any:
        raise ValidationFailed([])

    def bad(field: dict[str, Any], op: str, value: Any) -> Any:
        raise ValueError("not a number")

    with pytest.raises(ValidationFailed) as exc:
        plan(coerce=bad, tree={"and": [{"field": "amount", "op": "gt", "value": "x"}]})
    assert exc.value.errors[0].field == "filter.and[0].value"


def test_region_filters_compare_the_province_and_are_not_pushed() -> None:
    p = plan(tree={"field": "region", "op": "eq", "value": "北京市"}, subpath=lambda f: ".province")
    assert p.pushed_kind == "none"
    assert p.matches(doc(region={"province": "北京市", "city": "北京市"}))
    assert not p.matches(doc(region={"province": "上海市"}))


# ------------------------------------------------------------------ residual semantics


def leaf(op: str, value: Any = None, field: str = "city") -> Any:
    node = parse_filter({"field": field, "op": op, "value": value}, FORM, Ctx(), identity)
    assert node is not None
    return node


@pytest.mark.parametrize(
    ("op", "value", "stored", "expected"),
    [
        ("eq", "北京", "北京", True),
        ("eq", "北京", "上海", False),
        ("eq", 1, True, False),  # bool is not a number, as in BSON
        ("ne", "北京", "上海", True),
        ("ne", "北京", None, True),
        ("in", ["北京", "上海"], "上海", True),
        ("in", ["北京"], "广州", False),
        ("nin", ["北京"], "广州", True),
        ("nin", ["北京"], "北京", False),
        ("gt", 10, 11, True),
        ("gt", 10, 10, False),
        ("gte", 10, 10, True),
        ("lt", 10, 9.5, True),
        ("lte", 10, 10, True),
        ("lte", 10, "9", False),  # another type never compares
        ("gt", 10, None, False),
        ("between", [1, 3], 3, True),
        ("between", [1, 3], 4, False),
        ("contains", "华信", "北京华信恒通", True),
        ("contains", "abc", "xABCx", True),
        ("contains", "zz", "北京", False),
        ("starts_with", "北京", "北京华信", True),
        ("starts_with", "华信", "北京华信", False),
        ("is_empty", None, None, True),
        ("is_empty", None, "", True),
        ("is_empty", None, [], True),
        ("is_empty", None, "x", False),
        ("not_empty", None, "x", True),
        ("not_empty", None, None, False),
    ],
)
def test_operator_semantics(op: str, value: Any, stored: Any, expected: bool) -> None:
    assert leaf(op, value).matches(doc(city=stored)) is expected


def test_multi_valued_fields_match_any_element() -> None:
    assert leaf("in", ["a"], "tags").matches(doc(tags=["b", "a"]))
    assert not leaf("nin", ["a"], "tags").matches(doc(tags=["b", "a"]))
    assert leaf("contains", "hi", "tags").matches(doc(tags=["high"]))
    assert Leaf("x", "data.tags", "eq", "a").matches(doc(tags=["a", "b"]))


def test_missing_field_is_empty_and_and_or_combine() -> None:
    tree = {
        "or": [
            {"field": "city", "op": "is_empty"},
            {"and": [{"field": "level", "op": "eq", "value": "A"}, {"field": "amount", "op": "gte", "value": 100}]},
        ]
    }
    node = parse_filter(tree, FORM, Ctx(), identity)
    assert node is not None
    assert node.matches(doc())
    assert node.matches(doc(city="x", level="A", amount=100))
    assert not node.matches(doc(city="x", level="A", amount=99))


def test_system_fields_filter_and_time_operands_are_parsed_in_the_tenant_zone() -> None:
    node = parse_filter({"field": "owner_id", "op": "in", "value": ["u1", "u2"]}, FORM, Ctx(), identity)
    assert node is not None and node.matches(doc())
    node = parse_filter({"field": "created_at", "op": "lt", "value": "2024-05-15"}, FORM, Ctx(), identity)
    assert isinstance(node, Leaf)
    # a date-only bound is local midnight: 2024-05-15 00:00 Shanghai = 05-14 16:00 UTC
    assert node.value.hi == datetime(2024, 5, 14, 16, 0, tzinfo=UTC)
    assert not node.matches(doc())  # NOW is 17:30 UTC, after the bound


# ------------------------------------------------------------------ relative dates


def test_relative_dates_use_the_tenant_time_zone() -> None:
    today = relative_range("today", None, "date", Ctx())
    assert (today.lo, today.hi, today.hi_incl) == ("2024-05-15", "2024-05-16", False)
    week = relative_range("this_week", None, "date", Ctx())
    assert (week.lo, week.hi) == ("2024-05-13", "2024-05-20")
    month = relative_range("this_month", None, "date", Ctx())
    assert (month.lo, month.hi) == ("2024-05-01", "2024-06-01")
    last = relative_range("last_n_days", 7, "date", Ctx())
    assert (last.lo, last.hi) == ("2024-05-09", "2024-05-16")
    moment = relative_range("today", None, "datetime", Ctx())
    assert moment.lo == datetime(2024, 5, 14, 16, 0, tzinfo=UTC)
    assert moment.hi == datetime(2024, 5, 15, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        relative_range("last_n_days", 0, "date", Ctx())


def test_relative_operators_on_fields() -> None:
    node = parse_filter({"field": "signed_on", "op": "this_month"}, FORM, Ctx(), identity)
    assert node is not None
    assert node.matches(doc(signed_on="2024-05-31"))
    assert not node.matches(doc(signed_on="2024-06-01"))
    node = parse_filter({"field": "created_at", "op": "today"}, FORM, Ctx(), identity)
    assert node is not None and node.matches(doc())
    p = plan(tree={"field": "created_at", "op": "last_n_days", "value": 3})
    assert p.pushed_kind == "field:created_at" and set(p.pushed["created_at"]) == {"$gte", "$lt"}


# ------------------------------------------------------------------ sort and cursor


def test_sort_parsing() -> None:
    assert parse_sort([{"field": "amount", "direction": "asc"}], FORM).path == "data.amount"
    assert parse_sort("-updated_at", FORM).mongo() == [("updated_at", -1), ("_id", -1)]
    for bad in ([{"field": "remark"}], [{"field": "tags"}], [{"field": "level", "direction": "up"}]):
        with pytest.raises(ValidationFailed):
            parse_sort(bad, FORM)


def test_cursor_round_trip_and_rejection() -> None:
    spec = parse_sort("updated_at", FORM)
    row = {**doc("r9"), "updated_at": NOW}
    text = encode_cursor(spec, row)
    assert "=" not in text and decode_cursor(text, spec) == (NOW, "r9")
    default = parse_sort(None, FORM)
    assert decode_cursor(encode_cursor(default, {**row, "seq": 7}), default) == (7, "r9")
    for bad in (text[: len(text) // 2], "bm9wZQ", encode_cursor(default, row)):
        with pytest.raises(ValidationFailed):
            decode_cursor(bad, spec)
    amount = parse_sort("-amount", FORM)
    with pytest.raises(ValidationFailed):  # past int64: would reach the store as an overflow
        plan(sort="-amount", cursor=encode_cursor(amount, {**row, "data": {"amount": 10**30}}))
    for forged in ("x", 10**30, -1, 1.5):  # a creation-order cursor must hold a number the store can compare
        with pytest.raises(ValidationFailed):
            plan(cursor=encode_cursor(default, {**row, "seq": forged}))


def test_next_page_by_updated_at_pushes_a_range_on_the_sort_field_and_skips_ties() -> None:
    first = plan(sort="-updated_at")
    rows = [{**doc(f"{i:02d}"), "updated_at": NOW} for i in range(5)]  # same time: only _id orders them
    rows.sort(key=lambda d: first.sort.key(d), reverse=True)
    page, more = select_page(first, rows[:3])
    cursor = encode_cursor(first.sort, page[1])
    nxt = plan(sort="-updated_at", cursor=cursor)
    assert nxt.find_filter()["updated_at"] == {"$lte": NOW}
    assert not nxt.push_limit
    page2, _ = select_page(nxt, rows)
    assert [d["_id"] for d in page2] == ["02", "01", "00"]


class SeqStore:
    """Records numbered 1..n (some deleted), answering seq windows as the store would."""

    def __init__(self, n: int, gone: set[int] = frozenset(), level: Any = None) -> None:
        self.rows = [
            {**doc(f"r{i:05d}", level=level(i) if level else "A"), "seq": i} for i in range(1, n + 1) if i not in gone
        ]
        self.reads: list[tuple[int | None, int | None]] = []
        self.read_rows = 0

    def fetch(self, lo: int | None, hi: int | None) -> list[dict[str, Any]]:
        self.reads.append((lo, hi))
        out = [r for r in self.rows if (lo is None or r["seq"] >= lo) and (hi is None or r["seq"] < hi)]
        self.read_rows += len(out)
        return list(reversed(out))  # any order


@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_creation_order_pages_read_windows_that_cost_about_a_page(direction: str) -> None:
    store = SeqStore(5000, gone=set(range(4000, 4200)))
    sort = None if direction == "desc" else [{"field": "created_at", "direction": "asc"}]
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        p = plan(sort=sort, cursor=cursor, page_size=50)
        assert p.windowed
        before = store.read_rows
        page, more, reads = select_window_page(p, store.fetch, last=5000)
        assert store.read_rows - before <= 50 * 6 and reads <= 6  # a page, not the form (a gap of 200 included)
        seen += [d["_id"] for d in page]
        pages += 1
        if not more:
            break
        cursor = encode_cursor(p.sort, page[-1])
    expected = [r["_id"] for r in store.rows]
    assert seen == (list(reversed(expected)) if direction == "desc" else expected)
    assert pages == 96


def test_a_record_numbered_after_the_counter_was_read_is_not_missed() -> None:
    store = SeqStore(120)
    page, more, _ = select_window_page(plan(page_size=10), store.fetch, last=100)  # counter read before 101..120
    assert [d["seq"] for d in page] == list(range(120, 110, -1)) and more
    assert store.reads[0][1] is None  # the first window is open at the top


def test_a_common_filter_reads_windows_and_a_rare_one_widens_them() -> None:
    tree = {"field": "level", "op": "eq", "value": "B"}
    common = SeqStore(20_000, level=lambda i: "B" if i % 4 == 0 else "A")
    p = plan(tree=tree, page_size=50)
    assert p.pushed_kind == "field:data.level" and not p.windowed
    ordered = p.in_order()
    assert ordered.windowed and ordered.pushed == ordered.base and len(ordered.residual) == len(p.residual) + 1
    page, more, reads = select_window_page(ordered, common.fetch, last=20_000, density=0.25)
    assert [d["seq"] for d in page] == list(range(20_000, 20_000 - 200, -4)) and more
    assert reads <= 2 and common.read_rows <= 400
    rare = SeqStore(20_000, level=lambda i: "B" if i in (7, 19_000) else "A")
    page, more, reads = select_window_page(ordered, rare.fetch, last=20_000, density=0.25)
    assert [d["seq"] for d in page] == [19_000, 7] and not more
    assert reads <= 8  # windows grow four-fold while they come back empty


def test_cursor_is_residual_when_another_index_is_pushed() -> None:
    first = plan(tree={"field": "level", "op": "eq", "value": "A"})
    cursor = encode_cursor(first.sort, {**doc("m"), "seq": 50})
    nxt = plan(tree={"field": "level", "op": "eq", "value": "A"}, cursor=cursor)
    assert "seq" not in nxt.find_filter()
    assert nxt.is_after_cursor({**doc("a"), "seq": 49}) and not nxt.is_after_cursor({**doc("z"), "seq": 51})


def test_select_page_reports_more_and_filters() -> None:
    p = plan(tree={"field": "remark", "op": "eq", "value": "y"}, page_size=2)
    rows = [doc(str(i), remark="y" if i % 2 else "n") for i in range(9, 0, -1)]
    page, more = select_page(p, rows)
    assert [d["_id"] for d in page] == ["9", "7"] and more
    page, more = select_page(p, rows[-3:])
    assert [d["_id"] for d in page] == ["3", "1"] and not more


def test_page_size_bounds_and_projection() -> None:
    with pytest.raises(ValidationFailed):
        plan(page_size=201)
    p = plan(tree={"field": "remark", "op": "eq", "value": "y"}, keyword="华信")
    assert set(p.residual_projection()) == {"data.remark", "search"}


def test_range_contains_handles_open_and_exclusive_bounds() -> None:
    r = Range(1, False, 5, False)
    assert not r.contains(1) and r.contains(2) and not r.contains(5) and not r.contains(None)


def keyword_rows(n: int, every: int) -> list[dict[str, Any]]:
    """n records spread over the partitions; every `every`-th one mentions 华信."""
    rows = []
    for i in range(n):
        r = doc(f"r{i:05d}")
        r["kp"] = keyword_partition(r["_id"])
        r["search"] = "北京华信科技" if i % every == 0 else "无关"
        r["kw"] = ["华信"] if i % every == 0 else []
        rows.append(r)
    return rows


class PartitionFetch:
    """Fake store read: the pushed token's rows with lo <= kp < hi, in any order; records the ranges."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.ranges: list[tuple[int, int]] = []

    def __call__(self, lo: int, hi: int) -> list[dict[str, Any]]:
        self.ranges.append((lo, hi))
        return [r for r in reversed(self.rows) if lo <= r["kp"] < hi and "华信" in r["kw"]]


def all_pages(rows: list[dict[str, Any]], page_size: int) -> tuple[list[str], list[int]]:
    """Walk every keyword page through the cursor; (ids in order, reads per page)."""
    seen: list[str] = []
    reads: list[int] = []
    cursor = ""
    while True:
        p = plan(keyword="华信", page_size=page_size, cursor=cursor)
        fetch = PartitionFetch(rows)
        page, more, n = select_partitioned_page(p, fetch)
        assert n == len(fetch.ranges)
        reads.append(n)
        seen += [d["_id"] for d in page]
        if not more:
            return seen, reads
        cursor = encode_cursor(p.sort, page[-1])


def test_keyword_without_sort_reads_partitions_in_the_keyword_order() -> None:
    first = plan(keyword="华信", page_size=2)
    assert first.sort.natural and first.partitioned and first.pushed["kw"] == "华信"
    assert first.sort.mongo() == [("kp", 1), ("_id", 1)]
    # an explicit sort keeps the sorted order
    assert not plan(keyword="华信", sort="-created_at").partitioned
    # a more selective pushed condition reads in sort order instead
    assert not plan(keyword="华信", tree={"field": "name", "op": "eq", "value": "x"}).partitioned
    assert 0 <= keyword_partition("abc") < KEYWORD_PARTITIONS == 256
    assert keyword_partition("abc") == keyword_partition("abc")


def test_keyword_pages_cover_every_match_once_in_kp_id_order() -> None:
    rows = keyword_rows(3000, 7)
    expected = sorted((r for r in rows if r["kw"]), key=lambda r: (r["kp"], r["_id"]))
    seen, reads = all_pages(rows, 50)
    assert seen == [r["_id"] for r in expected]
    assert len(seen) == len(set(seen)) == 429
    # ~1.7 matches per partition: widening ranges keep each page of 50 to a few reads
    assert max(reads) <= 6 and len(reads) == 9


def test_a_common_token_reads_one_or_two_partitions_a_rare_one_about_log2() -> None:
    common = keyword_rows(50_000, 1)  # ~195 matches per partition
    p = plan(keyword="华信", page_size=50)
    fetch = PartitionFetch(common)
    page, more, _ = select_partitioned_page(p, fetch)
    assert len(page) == 50 and more and fetch.ranges == [(0, 1)]
    rare = keyword_rows(5000, 2500)  # two matches
    fetch = PartitionFetch(rare)
    page, more, _ = select_partitioned_page(p, fetch)
    assert {d["_id"] for d in page} == {"r00000", "r02500"} and not more
    assert fetch.ranges[0] == (0, 1) and fetch.ranges[-1][1] == KEYWORD_PARTITIONS
    assert len(fetch.ranges) == 9  # widths 1, 2, 4, ... 128


def test_keyword_cursor_must_name_a_partition() -> None:
    first = plan(keyword="华信")
    good = encode_cursor(first.sort, {"_id": "r1", "kp": 3})
    assert plan(keyword="华信", cursor=good).after == (3, "r1")
    for bad_kp in (-1, KEYWORD_PARTITIONS, "3", None):
        with pytest.raises(ValidationFailed):
            plan(keyword="华信", cursor=encode_cursor(first.sort, {"_id": "r1", "kp": bad_kp}))


def test_the_token_chooser_picks_what_the_store_is_asked_for() -> None:
    asked: list[tuple[dict[str, Any], tuple[str, ...]]] = []

    def rarest(base: dict[str, Any], tokens: Any) -> str:
        asked.append((base, tuple(tokens)))
        return "信恒"

    p = plan(keyword="华信恒通", choose_token=rarest)
    assert p.pushed["kw"] == "信恒" and p.partitioned
    assert asked == [({"tenant_id": "t1", "form_id": "f1", "deleted": False}, ("华信", "信恒", "恒通"))]
    rows = keyword_rows(10, 1)
    for r in rows:
        r["kw"], r["search"] = ["华信", "信恒", "恒通"], "华信恒通"
    rows[0]["kw"], rows[0]["search"] = ["信恒"], "信恒"  # the pushed token alone does not match
    assert [d["_id"] for d in select_page(p, rows)[0]] == [r["_id"] for r in rows[1:]]
    # one token, or a better pushed condition: the store is not sampled
    asked.clear()
    assert plan(keyword="华信", choose_token=rarest).pushed["kw"] == "华信"
    assert plan(keyword="华信恒通", choose_token=rarest, tree={"field": "name", "op": "eq", "value": "x"})
    assert asked == []
