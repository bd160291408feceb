"""Hostile and out-of-range input: refused with a named rule (never an exception), or cleaned."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import crm_schema as s
from crm_runtime.errors import ValidationFailed


def errors(field: dict[str, Any], value: Any, ctx: Any) -> list[Any]:
    return s.validate_data([field], {field["key"]: value}, existing=None, ctx=ctx).errors


def stored(field: dict[str, Any], value: Any, ctx: Any) -> Any:
    result = s.validate_data([field], {field["key"]: value}, existing=None, ctx=ctx)
    assert result.errors == []
    return result.values[field["key"]]


def filter_error(field: dict[str, Any], op: str, value: Any, ctx: Any) -> Any:
    with pytest.raises(ValidationFailed) as info:
        s.filter_value(field, op, value, ctx=ctx)
    (error,) = info.value.errors
    return error


HUGE_NUMBERS = [
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**15,
    1e20,
    -1e20,
    123456789012345678901234567890,
    "123456789012345678901234567890",
    "1e20",
    "1,000,000,000,000,000",
]


@pytest.mark.parametrize("ftype", ["integer", "number", "percent", "money"])
@pytest.mark.parametrize("value", HUGE_NUMBERS)
def test_numbers_past_15_integer_digits_are_refused_on_write(ftype: str, value: Any, f: Any, en_ctx: Any) -> None:
    (error,) = errors(f("amount", ftype, label={"zh-CN": "数量", "en": "Amount"}), value, en_ctx)
    assert error.field == "amount"
    assert error.rule == "number_range"
    bound = "999999999999999.99" if ftype == "money" else "999999999999999"
    assert error.params == {"min": "-" + bound, "max": bound}
    assert error.message.startswith("Amount is out of range")


@pytest.mark.parametrize("ftype", ["integer", "number", "money"])
@pytest.mark.parametrize("op", ["eq", "gt", "in", "between"])
def test_numbers_past_15_integer_digits_are_refused_in_filters(ftype: str, op: str, f: Any, ctx: Any) -> None:
    value: Any = 2**70 if op in ("eq", "gt") else [1, 1e20]
    error = filter_error(f("amount", ftype, label={"zh-CN": "数量", "en": "Amount"}), op, value, ctx)
    assert (error.field, error.rule) == ("amount", "number_range")
    assert error.message.startswith("「数量」超出允许范围")


def test_the_largest_allowed_numbers_are_kept_exactly(f: Any, ctx: Any) -> None:
    assert stored(f("i", "integer"), 999_999_999_999_999, ctx) == 999_999_999_999_999
    assert stored(f("i", "integer"), "-999999999999999", ctx) == -999_999_999_999_999
    assert stored(f("m", "money"), "999999999999999.99", ctx) == 99_999_999_999_999_999
    assert stored(f("n", "number", scale=2), "-999999999999999.994", ctx) == pytest.approx(-999_999_999_999_999.99)
    assert s.filter_value(f("i", "integer"), "lt", 999_999_999_999_999, ctx=ctx) == 999_999_999_999_999


def test_the_ranges_are_in_the_catalogue() -> None:
    by_name = {t["name"]: t for t in s.field_types_catalogue()}
    for name in ("integer", "number", "percent", "rollup"):
        assert by_name[name]["value_range"] == {"min": "-999999999999999", "max": "999999999999999"}, name
    assert by_name["money"]["value_range"] == {"min": "-999999999999999.99", "max": "999999999999999.99"}
    assert by_name["datetime"]["value_range"] == {"min": "0001-01-01T00:00:00Z", "max": "9999-12-31T23:59:59Z"}
    assert by_name["date"]["value_range"] == {"min": "0001-01-01", "max": "9999-12-31"}
    assert "value_range" not in by_name["text"]


@pytest.mark.parametrize("value", ["0001-01-01 00:00", "0001-01-01T07:59:59", "0001-01-01"])
def test_a_datetime_before_year_1_in_utc_is_refused(value: str, f: Any, en_ctx: Any) -> None:
    # Asia/Shanghai is UTC+8: local midnight of 0001-01-01 is in year 0 in UTC.
    (error,) = errors(f("at", "datetime", label={"zh-CN": "时间", "en": "When"}), value, en_ctx)
    assert (error.field, error.rule) == ("at", "date_range")
    assert "When is outside the supported dates" in error.message
    error = filter_error(f("at", "datetime"), "gte", value, en_ctx)
    assert (error.field, error.rule) == ("at", "date_range")


def test_datetime_and_date_at_the_edges(f: Any, ctx: Any) -> None:
    assert stored(f("at", "datetime"), "0001-01-01T00:00:00Z", ctx) == datetime(1, 1, 1, tzinfo=UTC)
    assert s.to_output(f("at", "datetime"), datetime(1, 1, 1, tzinfo=UTC), ctx=ctx) == "0001-01-01T00:00:00Z"
    assert stored(f("at", "datetime"), "9999-12-31T23:59:59Z", ctx) == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    (error,) = errors(f("at", "datetime"), "9999-12-31T23:00:00-05:00", ctx)
    assert error.rule == "date_range"
    assert stored(f("d", "date"), "0001-01-01", ctx) == "0001-01-01"
    (error,) = errors(f("d", "date"), "9999-12-31T23:00:00-05:00", ctx)
    assert error.rule == "date_range"
    assert filter_error(f("d", "date"), "lt", "9999-12-31T23:00:00-05:00", ctx).rule == "date_range"


BIDI_AND_CONTROLS = "a\x00b\x07c\x1bd\x7fe\x85f\x9fg\u202ah\u202bi\u202cj\u202dk\u202el\u2066m\u2067n\u2068o\u2069p"


def test_single_line_text_drops_controls_and_bidi_overrides(f: Any, ctx: Any) -> None:
    assert stored(f("t", "text"), BIDI_AND_CONTROLS, ctx) == "abcdefghijklmnop"
    assert stored(f("t", "text"), " x\ty\r\nz\u2028w ", ctx) == "x y  z w"
    blank = s.validate_data([f("t", "text")], {"t": "  "}, existing=None, ctx=ctx).values
    assert s.validate_data([f("t", "text")], {"t": "\x00\u202e "}, existing=None, ctx=ctx).values == blank
    (error,) = errors(f("t", "text", required=True), "\x00\u202e", ctx)
    assert error.rule == "required"
    assert stored(f("e", "encrypted_text"), "secret\x00\u202e", ctx).startswith("enc:")
    assert stored(f("g", "tags"), ["vip\x00", "\u202eevil"], ctx) == ["vip", "evil"]


def test_long_text_keeps_tabs_and_newlines_only(f: Any, ctx: Any) -> None:
    assert stored(f("l", "long_text"), "line 1\r\n\tline\x00 2\u202e\rend\x0b", ctx) == "line 1\n\tline 2\nend"
    assert "\u202e" not in stored(f("r", "rich_text"), "<p>a\u202eb\x00c</p>", ctx)


def test_a_text_filter_operand_is_cleaned_like_the_stored_value(f: Any, ctx: Any) -> None:
    assert s.filter_value(f("t", "text"), "contains", "ab\u202ec\x00", ctx=ctx) == "abc"
    assert s.filter_value(f("t", "text"), "eq", "ab\u202ec", ctx=ctx) == "abc"
