"""Every input type: its happy path and the rules it fails with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import crm_schema as s
from crm_schema.registry import INPUT_TYPES


def one(field: dict[str, Any], value: Any, ctx: Any) -> tuple[Any, list[str]]:
    """Validate one value of one field on create: (stored value or None, [rules])."""
    result = s.validate_data([field], {field["key"]: value}, existing=None, ctx=ctx)
    return result.values.get(field["key"]), [e.rule for e in result.errors]


def ok(field: dict[str, Any], value: Any, ctx: Any) -> Any:
    stored, rules = one(field, value, ctx)
    assert rules == [], rules
    return stored


def rule(field: dict[str, Any], value: Any, ctx: Any) -> str:
    _, rules = one(field, value, ctx)
    assert len(rules) == 1, rules
    return rules[0]


def test_catalogue_has_at_least_35_types() -> None:
    assert len(s.FIELD_TYPES) >= 35
    catalogue = s.field_types_catalogue()
    assert {t["name"] for t in catalogue} == set(s.FIELD_TYPES)
    assert all(t["label"]["zh-CN"] and t["label"]["en"] for t in catalogue)
    assert s.FIELD_TYPES["created_at"].system and not s.FIELD_TYPES["created_at"].stored
    assert s.FIELD_TYPES["formula"].computed


# ---------------------------------------------------------------- text-like


def test_text(ctx: Any, f: Any) -> None:
    field = f("t", "text", max_length=5, min_length=2, regex=r"[A-Z]+")
    assert ok(field, "  ABC ", ctx) == "ABC"
    assert rule(field, "ABCDEF", ctx) == "max_length"
    assert rule(field, "A", ctx) == "min_length"
    assert rule(field, "abc", ctx) == "regex"
    assert rule(field, {"a": 1}, ctx) == "type"
    assert rule(field, True, ctx) == "type"
    assert ok(f("n", "text"), 12345.0, ctx) == "12345"
    assert rule(f("n", "text"), "x" * 501, ctx) == "max_length"


def test_long_text_and_rich_text(ctx: Any, f: Any) -> None:
    assert ok(f("l", "long_text"), "a\r\nb\r\n", ctx) == "a\nb"
    html = ok(f("r", "rich_text"), '<p onclick="x()">hi<script>alert(1)</script><a href="javascript:x">l</a></p>', ctx)
    assert "script" not in html and "onclick" not in html and "javascript" not in html
    assert html.startswith("<p>hi")
    assert rule(f("r", "rich_text"), 5, ctx) == "type"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (123, 123),
        (1.5, 1.5),
        ("1,234.5", 1234.5),
        ("  42 ", 42),
        ("1e3", 1000),
        (3.0, 3),
    ],
)
def test_number(ctx: Any, f: Any, raw: Any, expected: Any) -> None:
    assert ok(f("n", "number"), raw, ctx) == expected


def test_number_rules(ctx: Any, f: Any) -> None:
    field = f("n", "number", min=0, max=10)
    assert rule(field, -1, ctx) == "min"
    assert rule(field, 11, ctx) == "max"
    assert rule(field, "abc", ctx) == "format"
    assert rule(field, float("nan"), ctx) == "format"
    assert rule(field, True, ctx) == "type"
    assert ok(f("n", "number", scale=2), "3.14159", ctx) == 3.14
    assert ok(f("n", "number", scale=0), 2.5, ctx) == 3


def test_integer(ctx: Any, f: Any) -> None:
    assert ok(f("i", "integer"), "12", ctx) == 12
    assert ok(f("i", "integer"), 7.0, ctx) == 7
    assert rule(f("i", "integer"), 7.5, ctx) == "format"


@pytest.mark.parametrize(
    ("raw", "fen"),
    [
        (1234.5, 123450),
        ("1,234.50", 123450),
        ("¥1234.5", 123450),
        ("￥1234.5", 123450),
        ("1234.5元", 123450),
        ("RMB 88", 8800),
        (0.1, 10),
        ("0.005", 1),
        (-12.3, -1230),
        (100, 10000),
        ("1.005", 101),
    ],
)
def test_money_is_integer_fen(ctx: Any, f: Any, raw: Any, fen: int) -> None:
    stored = ok(f("m", "money"), raw, ctx)
    assert stored == fen
    assert type(stored) is int


def test_money_rules_and_output(ctx: Any, f: Any) -> None:
    field = f("m", "money", min=0, max=1000)
    assert rule(field, "-1", ctx) == "min"
    assert rule(field, "1000.01", ctx) == "max"
    assert rule(field, "12.3.4", ctx) == "format"
    assert rule(field, "abc", ctx) == "format"
    assert s.to_output(field, 123450, ctx=ctx) == "1234.50"
    assert s.to_output(field, -5, ctx=ctx) == "-0.05"
    assert s.to_output(field, 0, ctx=ctx) == "0.00"
    # 0.1 + 0.2 as floats is 0.30000000000000004; fen arithmetic is exact.
    assert ok(field, 0.1, ctx) + ok(field, 0.2, ctx) == ok(field, 0.3, ctx)


def test_percent_and_rating(ctx: Any, f: Any) -> None:
    assert ok(f("p", "percent"), "12.5%", ctx) == 12.5
    assert rule(f("p", "percent", max=100), 101, ctx) == "max"
    assert ok(f("r", "rating"), "4", ctx) == 4
    assert rule(f("r", "rating"), 6, ctx) == "format"
    assert rule(f("r", "rating"), 0, ctx) == "format"
    assert rule(f("r", "rating"), 2.5, ctx) == "format"
    assert ok(f("r", "rating", max_rating=10), 10, ctx) == 10


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), (False, False), ("是", True), ("否", False), ("yes", True), ("NO", False), (1, True), (0, False)],
)
def test_boolean(ctx: Any, f: Any, raw: Any, expected: bool) -> None:
    assert ok(f("b", "boolean"), raw, ctx) is expected


def test_boolean_rejects(ctx: Any, f: Any) -> None:
    assert rule(f("b", "boolean"), "maybe", ctx) == "format"
    assert rule(f("b", "boolean"), 2, ctx) == "format"


# ---------------------------------------------------------------- dates and times


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01", "2024-05-01"),
        ("2024/5/1", "2024-05-01"),
        ("2024年5月1日", "2024-05-01"),
        ("20240501", "2024-05-01"),
        (45413, "2024-05-01"),
        ("2024-04-30T20:00:00Z", "2024-05-01"),
        ("today", "2024-05-20"),
    ],
)
def test_date(ctx: Any, f: Any, raw: Any, expected: str) -> None:
    assert ok(f("d", "date"), raw, ctx) == expected


def test_date_rules(ctx: Any, f: Any) -> None:
    field = f("d", "date", min="2024-01-01", max="2024-12-31")
    assert rule(field, "2023-12-31", ctx) == "min"
    assert rule(field, "2025-01-01", ctx) == "max"
    assert rule(field, "2024-02-30", ctx) == "format"
    assert rule(field, "yesterday", ctx) == "format"
    assert rule(field, True, ctx) == "type"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-01T09:30:00", datetime(2024, 5, 1, 1, 30, tzinfo=UTC)),
        ("2024-05-01 09:30", datetime(2024, 5, 1, 1, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00Z", datetime(2024, 5, 1, 9, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00+09:00", datetime(2024, 5, 1, 0, 30, tzinfo=UTC)),
        ("2024-05-01T09:30:00.123456+0800", datetime(2024, 5, 1, 1, 30, 0, 123000, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 4, 30, 16, 0, tzinfo=UTC)),
        ("now", datetime(2024, 5, 20, 2, 0, tzinfo=UTC)),
    ],
)
def test_datetime_is_aware_utc(ctx: Any, f: Any, raw: str, expected: datetime) -> None:
    stored = ok(f("t", "datetime"), raw, ctx)
    assert stored == expected
    assert stored.utcoffset().total_seconds() == 0


def test_datetime_rules_and_output(ctx: Any, f: Any) -> None:
    field = f("t", "datetime", min="2024-01-01T00:00:00Z")
    assert rule(field, "2023-12-31T23:59:59Z", ctx) == "min"
    assert rule(field, "2024-13-01 10:00", ctx) == "format"
    assert rule(field, "2024-05-01T10:00:00+25:00", ctx) == "format"
    assert rule(field, 12345, ctx) == "type"
    assert s.to_output(field, datetime(2024, 5, 1, 1, 30, tzinfo=UTC), ctx=ctx) == "2024-05-01T01:30:00Z"
    assert s.to_output(field, datetime(2024, 5, 1, 1, 30, 0, 5000, tzinfo=UTC), ctx=ctx) == "2024-05-01T01:30:00.005Z"


def test_time(ctx: Any, f: Any) -> None:
    assert ok(f("t", "time"), "9:30", ctx) == "09:30:00"
    assert ok(f("t", "time"), "23:59:59", ctx) == "23:59:59"
    assert rule(f("t", "time"), "24:00", ctx) == "format"
    assert rule(f("t", "time"), 930, ctx) == "type"


def test_color(ctx: Any, f: Any) -> None:
    assert ok(f("c", "color"), "#1677FF", ctx) == "#1677ff"
    assert ok(f("c", "color"), "#abc", ctx) == "#aabbcc"
    assert rule(f("c", "color"), "blue", ctx) == "format"


# ---------------------------------------------------------------- choices

OPTS = [
    {"value": "A", "label": {"zh-CN": "重要", "en": "Key"}},
    {"value": "B", "label": {"zh-CN": "普通", "en": "Normal"}},
]


def test_select(ctx: Any, f: Any) -> None:
    field = f("s", "select", options=OPTS)
    assert ok(field, "A", ctx) == "A"
    assert ok(field, "普通", ctx) == "B"
    assert ok(field, "key", ctx) == "A"
    assert rule(field, "Z", ctx) == "option"


def test_multi_select(ctx: Any, f: Any) -> None:
    field = f("m", "multi_select", options=OPTS, max_length=2)
    assert ok(field, ["A", "B", "A"], ctx) == ["A", "B"]
    assert ok(field, "A、普通", ctx) == ["A", "B"]
    assert rule(field, ["A", "Z"], ctx) == "option"
    assert rule(field, 5, ctx) == "type"


def test_tags_are_free(ctx: Any, f: Any) -> None:
    field = f("t", "tags", options=["高意向"])
    assert ok(field, ["高意向", " 新 标签 ", "高意向", ""], ctx) == ["高意向", "新 标签"]
    assert ok(field, "a,b", ctx) == ["a", "b"]
    assert rule(field, ["x" * 51], ctx) == "max_length"


def test_stage(ctx: Any, f: Any) -> None:
    field = f("st", "stage", options=[{"value": "new", "probability": 10}, {"value": "won", "probability": 100}])
    assert ok(field, "won", ctx) == "won"
    assert rule(field, "lost", ctx) == "option"


# ---------------------------------------------------------------- contact


@pytest.mark.parametrize(
    "raw",
    [
        "13800138000",
        "+86-138-0013-8000",
        "138 0013 8000",
        "86 13800138000",
        "+86 13800138000",
        "008613800138000",
        13800138000,
        13800138000.0,
        1.38001380e10,
        "1.38001380e10",
        "13800138000.0",
        "１３８００１３８０００",
    ],
)
def test_mobile_normalised(ctx: Any, f: Any, raw: Any) -> None:
    assert ok(f("m", "mobile"), raw, ctx) == "13800138000"


@pytest.mark.parametrize(
    "raw",
    ["12800138000", "1380013800", "138001380001", "+1 13800138000", "abc", 1.3800138e9, 13800138000.5, "010-12345678"],
)
def test_mobile_rejects(ctx: Any, f: Any, raw: Any) -> None:
    assert rule(f("m", "mobile"), raw, ctx) == "format"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("010-12345678", "010-12345678"),
        ("(010)12345678", "010-12345678"),
        ("0755 8765 4321", "0755-87654321"),
        ("0571-8765432", "0571-8765432"),
        ("+86 10 12345678", "010-12345678"),
        ("400-800-8888", "400-800-8888"),
        ("4008008888", "400-800-8888"),
        ("800-820-8820", "800-820-8820"),
        ("010-12345678 转 8001", "010-12345678-8001"),
        ("010-12345678-8001", "010-12345678-8001"),
        ("021-51234567 ext. 12", "021-51234567-12"),
        ("13800138000", "13800138000"),
    ],
)
def test_phone(ctx: Any, f: Any, raw: str, expected: str) -> None:
    assert ok(f("p", "phone"), raw, ctx) == expected


@pytest.mark.parametrize("raw", ["12345678", "010-123", "hello", "999-1234-5678", "0755-01234567"])
def test_phone_rejects(ctx: Any, f: Any, raw: str) -> None:
    assert rule(f("p", "phone"), raw, ctx) == "format"


def test_email(ctx: Any, f: Any) -> None:
    assert ok(f("e", "email"), " Zhang.San@Example.COM ", ctx) == "Zhang.San@example.com"
    for bad in ("no-at", "a@b", "a@@b.com", "a b@c.com", ".a@b.com"):
        assert rule(f("e", "email"), bad, ctx) == "format"


def test_url(ctx: Any, f: Any) -> None:
    assert ok(f("u", "url"), "https://example.com/a?b=1", ctx) == "https://example.com/a?b=1"
    assert ok(f("u", "url"), "www.example.com", ctx) == "https://www.example.com"
    for bad in ("javascript:alert(1)", "ftp://x.com", "http://", "not a url", "http://nodot"):
        assert rule(f("u", "url"), bad, ctx) == "format"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"province": "广东", "city": "深圳"}, {"province": "广东省", "city": "深圳"}),
        ({"province": "北京"}, {"province": "北京市", "city": None}),
        ("广东 深圳市", {"province": "广东省", "city": "深圳市"}),
        ("广东省深圳市", {"province": "广东省", "city": "深圳市"}),
        ("内蒙古呼和浩特", {"province": "内蒙古自治区", "city": "呼和浩特"}),
        (["上海", "浦东"], {"province": "上海市", "city": "浦东"}),
        ("香港", {"province": "香港特别行政区", "city": None}),
    ],
)
def test_region(ctx: Any, f: Any, raw: Any, expected: dict[str, Any]) -> None:
    assert ok(f("r", "region"), raw, ctx) == expected


def test_region_rejects(ctx: Any, f: Any) -> None:
    field = f("r", "region")
    assert rule(field, {"province": "加州"}, ctx) == "format"
    assert rule(field, {"province": "广东", "city": ""}, ctx) == "format"
    assert rule(field, {"province": "广东", "city": 3}, ctx) == "format"
    assert rule(field, {"city": "深圳"}, ctx) == "format"
    assert rule(field, {"province": "广东", "zip": "1"}, ctx) == "format"


def test_address(ctx: Any, f: Any) -> None:
    field = f("a", "address")
    assert ok(field, {"province": "浙江", "city": "杭州市", "district": "西湖区", "detail": "文三路 1 号"}, ctx) == {
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "detail": "文三路 1 号",
    }
    assert ok(field, "上海市浦东新区世纪大道 100 号", ctx)["province"] == "上海市"
    assert rule(field, {"province": "Atlantis"}, ctx) == "format"
    assert rule(field, {"street": "x"}, ctx) == "format"


def test_geo_point(ctx: Any, f: Any) -> None:
    field = f("g", "geo_point")
    assert ok(field, {"lng": 116.397, "lat": 39.909}, ctx) == {"lng": 116.397, "lat": 39.909}
    assert ok(field, [121.5, "31.2"], ctx) == {"lng": 121.5, "lat": 31.2}
    assert ok(field, "113.9,22.5", ctx) == {"lng": 113.9, "lat": 22.5}
    assert rule(field, {"lng": 200, "lat": 0}, ctx) == "format"
    assert rule(field, {"lng": 0, "lat": -91}, ctx) == "format"
    assert rule(field, {"x": 1}, ctx) == "format"


# ---------------------------------------------------------------- identity numbers


def _id_with_check(first17: str) -> str:
    from crm_schema.china import id_card_check_char

    return first17 + id_card_check_char(first17)


def test_id_card(ctx: Any, f: Any) -> None:
    field = f("i", "id_card")
    assert ok(field, "11010519491231002X", ctx) == "11010519491231002X"  # the GB 11643 example
    assert ok(field, "11010519491231002x", ctx) == "11010519491231002X"
    valid = _id_with_check("44030419900307123")
    assert ok(field, valid, ctx) == valid
    wrong = valid[:17] + ("0" if valid[17] != "0" else "1")
    assert rule(field, wrong, ctx) == "checksum"
    assert rule(field, _id_with_check("44030419900230123"), ctx) == "checksum"  # 30 February
    assert rule(field, _id_with_check("44030430000101123"), ctx) == "checksum"  # born in the future
    assert rule(field, "4403041990030712", ctx) == "format"
    assert rule(field, _id_with_check("99030419900307123"), ctx) == "format"  # no such region


def test_uscc(ctx: Any, f: Any) -> None:
    from crm_schema.china import uscc_check_char

    field = f("u", "uscc")
    assert ok(field, "91350100M000100Y43", ctx) == "91350100M000100Y43"
    assert ok(field, " 91350100m000100y43 ", ctx) == "91350100M000100Y43"
    other = "91110108" + "MA01ABCD" + "E"
    valid = other + uscc_check_char(other)
    assert ok(field, valid, ctx) == valid
    assert rule(field, "91350100M000100Y44", ctx) == "checksum"
    assert rule(field, "91350100M000100Y4", ctx) == "format"
    assert rule(field, "91350100I000100Y43", ctx) == "format"  # I is not in the charset


# ---------------------------------------------------------------- references and files


def test_user_and_department(ctx: Any, f: Any) -> None:
    assert ok(f("u", "user"), "u1", ctx) == "u1"
    assert ok(f("u", "user"), {"id": "u1"}, ctx) == "u1"
    assert ok(f("u", "user", many=True), ["u1", "u2", "u1"], ctx) == ["u1", "u2"]
    assert rule(f("u", "user"), ["u1", "u2"], ctx) == "type"
    assert rule(f("d", "department"), "bad id!", ctx) == "format"


def test_relation(ctx: Any, f: Any) -> None:
    one_field = f("c", "relation", relation={"form_id": "customer", "many": False})
    many_field = f("cs", "relation", relation={"form_id": "customer", "many": True})
    assert ok(one_field, "c1", ctx) == "c1"
    assert ok(many_field, ["c1", "c2"], ctx) == ["c1", "c2"]
    assert ctx.relation_calls[-1] == ("customer", ["c1", "c2"])
    stored, rules = one(many_field, ["c1", "nope"], ctx)
    assert rules == ["relation_not_found"]
    result = s.validate_data([many_field], {"cs": ["c1", "nope"]}, existing=None, ctx=ctx)
    assert result.errors[0].params["ids"] == ["nope"]


def test_attachment(ctx: Any, f: Any) -> None:
    field = f("files", "attachment", max_size=10_000_000, accept=["application/pdf", "image/*"], max_files=2)
    assert ok(field, ["f1", {"id": "f2"}], ctx) == [
        {"id": "f1", "name": "合同.pdf", "size": 1000, "content_type": "application/pdf"},
        {"id": "f2", "name": "logo.png", "size": 5000, "content_type": "image/png"},
    ]
    assert rule(field, ["missing"], ctx) == "attachment_not_found"
    assert rule(field, ["f1", "f2", "big"], ctx) == "too_many_files"
    assert rule(f("x", "attachment", max_size=100), ["f1"], ctx) == "file_too_large"
    assert rule(f("x", "attachment", accept=[".docx"]), ["f1"], ctx) == "file_type"
    assert ok(f("x", "attachment", accept=[".pdf"]), ["f1"], ctx)[0]["id"] == "f1"


def test_image_accepts_only_images(ctx: Any, f: Any) -> None:
    assert ok(f("img", "image"), ["f2"], ctx)[0]["content_type"] == "image/png"
    assert rule(f("img", "image"), ["f1"], ctx) == "file_type"


def test_encrypted_text_is_stored_encrypted_and_masked(make_ctx: Any, f: Any) -> None:
    field = f("secret", "encrypted_text", "银行卡号", "Bank card", readable_roles=["admin"])
    sales, admin = make_ctx(role="sales"), make_ctx(role="admin")
    stored = ok(field, " 13800138000 ", sales)
    assert stored == "enc:00083100831"
    assert s.to_output(field, stored, ctx=admin) == "13800138000"
    assert s.to_output(field, stored, ctx=sales) == "138****8000"
    assert s.to_output(field, sales.encrypt("abc"), ctx=sales) == "******"
    assert s.to_output(field, "garbage", ctx=admin) == "******"


def test_every_input_type_accepts_something(ctx: Any, f: Any) -> None:
    """A guard that each writable type above is exercised and has a value rule."""
    samples = {
        "text": "x", "long_text": "x", "rich_text": "<b>x</b>", "number": 1, "integer": 1, "money": 1,
        "percent": 1, "rating": 1, "boolean": True, "date": "2024-01-01", "datetime": "2024-01-01T00:00:00Z",
        "time": "10:00", "color": "#000000", "select": "A", "multi_select": ["A"], "tags": ["x"], "stage": "A",
        "mobile": "13800138000", "phone": "010-12345678", "email": "a@b.cn", "url": "https://a.cn",
        "region": "北京", "address": "北京市海淀区", "geo_point": [1, 2], "id_card": "11010519491231002X",
        "uscc": "91350100M000100Y43", "user": "u1", "department": "d1", "relation": "c1",
        "sub_table": [{"q": 1}], "attachment": ["f1"], "image": ["f2"], "encrypted_text": "s",
    }  # fmt: skip
    assert set(samples) == set(INPUT_TYPES)
    for type_name, sample in samples.items():
        field = f("k", type_name, options=OPTS, relation={"form_id": "customer"}, fields=[f("q", "number")])
        assert ok(field, sample, ctx) is not None, type_name
