"""Value rules per field type: turn one input value into its stored form, or raise Invalid.

Each `coerce_*` takes (field, value, ctx) with a non-empty value and returns the
stored representation (see README). Bounds, lengths, patterns and options that a
definition adds are checked by `check_constraints` on the stored value, so that
filter operands can be coerced without them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import nh3

from crm_schema import china
from crm_schema._text import collapse_spaces, localised, strip_controls
from crm_schema.context import Invalid, ValidationContext

Coercer = Callable[[dict[str, Any], Any, ValidationContext], Any]

TEXT_MAX = {"text": 500, "long_text": 20000, "rich_text": 200000, "encrypted_text": 2000}
APPROVAL_STATUSES = ("draft", "pending", "approved", "rejected", "withdrawn")
_ID = re.compile(r"[A-Za-z0-9_\-:.]{1,64}")
_EXCEL_EPOCH = date(1899, 12, 30)
# Every number-like value (number, integer, percent, money in yuan, rollup) has at most
# 15 digits before the decimal point: the integers below 10**15 are exact in the IEEE
# doubles that JSON clients read numbers into (2**53 > 10**15), and money in fen stays far
# inside the signed 64-bit integer MongoDB stores (10**17 < 2**63).
NUMBER_LIMIT = Decimal(10) ** 15
NUMBER_RANGE = {"min": "-999999999999999", "max": "999999999999999"}
MONEY_RANGE = {"min": "-999999999999999.99", "max": "999999999999999.99"}
# Datetimes are stored as BSON dates in UTC; Python (and most clients) know years 1..9999.
DATETIME_RANGE = {"min": "0001-01-01T00:00:00Z", "max": "9999-12-31T23:59:59Z"}
DATE_RANGE = {"min": "0001-01-01", "max": "9999-12-31"}


def _number_range_error(kind: str) -> Invalid:
    return Invalid("number_range", **(MONEY_RANGE if kind == "money" else NUMBER_RANGE))


def is_empty(value: Any) -> bool:
    """None, blank text, an empty list or an empty object: "no value"."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return len(value) == 0
    return False


def _type_error(field: dict[str, Any]) -> Invalid:
    return Invalid("type", field_type=field.get("type"))


def _plain_str(value: Any, field: dict[str, Any]) -> str:
    """Text input; numbers (as Excel gives them) become their shortest text."""
    if isinstance(value, bool):
        raise _type_error(field)
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise _type_error(field)


# ---------------------------------------------------------------- text-like


def coerce_text(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Single-line text: trimmed, inner spacing kept; controls dropped, tabs and line breaks -> spaces."""
    return strip_controls(_plain_str(value, field), multiline=False).strip()


def coerce_long_text(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Multi-line text: line endings unified, controls except tab/LF dropped, outer blank space trimmed."""
    return strip_controls(_plain_str(value, field), multiline=True).strip()


def coerce_rich_text(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """HTML, sanitised by nh3 (no scripts, event handlers or javascript: links)."""
    if not isinstance(value, str):
        raise _type_error(field)
    return nh3.clean(strip_controls(value, multiline=True)).strip()


def coerce_encrypted_text(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Plaintext checked here; encryption happens after the constraints (see validation)."""
    return strip_controls(_plain_str(value, field), multiline=False).strip()


def coerce_email(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """local@domain.tld with the domain lower-cased."""
    if not isinstance(value, str):
        raise _type_error(field)
    text = unicodedata.normalize("NFKC", value).strip()
    text = text.removeprefix("mailto:")
    match = re.fullmatch(
        r"([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,63})", text
    )
    if not match or len(text) > 254 or ".." in match.group(1) or match.group(1).startswith("."):
        raise Invalid("format", kind="email")
    return f"{match.group(1)}@{match.group(2).lower()}"


def coerce_url(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """An http(s) address; "www.example.com" gains "https://"."""
    if not isinstance(value, str):
        raise _type_error(field)
    text = value.strip()
    if re.search(r"\s", text) or len(text) > 2048:
        raise Invalid("format", kind="url")
    if "://" not in text:
        if ":" in text.split("/")[0] and not re.match(r"^[\w.-]+:\d+", text):
            raise Invalid("format", kind="url")
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:
        raise Invalid("format", kind="url") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise Invalid("format", kind="url")
    if "." not in host and host != "localhost":
        raise Invalid("format", kind="url")
    return text


def coerce_mobile(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Mainland mobile -> "13800138000"."""
    mobile = china.normalise_mobile(value)
    if mobile is None:
        raise Invalid("format", kind="mobile")
    return mobile


def coerce_phone(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Landline with area code, 400/800 or mobile, optional extension."""
    phone = china.normalise_phone(value)
    if phone is None:
        raise Invalid("format", kind="phone")
    return phone


def coerce_id_card(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """18-digit resident ID, GB 11643 checksum and a real birth date."""
    if not isinstance(value, str):
        raise _type_error(field)
    number, problem = china.check_id_card(value, ctx.now.astimezone(ctx.tz).date())
    if number is None:
        if problem == "checksum":
            raise Invalid("checksum")
        if problem == "birth_date":
            raise Invalid("checksum", kind="birth_date")
        raise Invalid("format", kind="id_card")
    return number


def coerce_uscc(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """Unified social credit code, GB 32100-2015 checksum."""
    if not isinstance(value, str):
        raise _type_error(field)
    code, problem = china.check_uscc(value)
    if code is None:
        raise Invalid("checksum" if problem == "checksum" else "format", kind=None if problem == "checksum" else "uscc")
    return code


def coerce_color(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """ "#rrggbb" (lower case; "#abc" expands)."""
    if not isinstance(value, str):
        raise _type_error(field)
    text = value.strip().lower()
    if re.fullmatch(r"#?[0-9a-f]{3}", text):
        text = "#" + "".join(c * 2 for c in text.lstrip("#"))
    if not re.fullmatch(r"#?[0-9a-f]{6}", text):
        raise Invalid("format", kind="color")
    return "#" + text.lstrip("#")


# ---------------------------------------------------------------- numbers


def parse_decimal(value: Any, field: dict[str, Any], kind: str) -> Decimal:
    """A finite Decimal below NUMBER_LIMIT in magnitude from a number or text such as "1,234.5".

    Bools are refused ("type"), unreadable text is "format", a number with more than
    15 digits before the point is "number_range" (min/max in the params).
    """
    number = _read_decimal(value, field, kind)
    if abs(number) >= NUMBER_LIMIT:
        raise _number_range_error(kind)
    return number


def _read_decimal(value: Any, field: dict[str, Any], kind: str) -> Decimal:
    if isinstance(value, bool):
        raise _type_error(field)
    if isinstance(value, int):
        if abs(value) >= NUMBER_LIMIT:  # before Decimal(): a 4,000-digit int is slow to convert
            raise _number_range_error(kind)
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("format", kind=kind)
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise Invalid("format", kind=kind)
        return value
    if not isinstance(value, str):
        raise _type_error(field)
    text = unicodedata.normalize("NFKC", value).strip().replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?", text):
        raise Invalid("format", kind=kind)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise Invalid("format", kind=kind) from None
    if not number.is_finite():
        raise Invalid("format", kind=kind)
    return number


def number_out(number: Decimal) -> int | float:
    """The stored JSON number: int when integral, else float."""
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def coerce_number(field: dict[str, Any], value: Any, ctx: ValidationContext) -> int | float:
    """A number, rounded half-up to `scale` decimals when given."""
    number = parse_decimal(value, field, "number")
    scale = field.get("scale")
    if isinstance(scale, int) and not isinstance(scale, bool) and 0 <= scale <= 10:
        number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    return number_out(number)


def coerce_integer(field: dict[str, Any], value: Any, ctx: ValidationContext) -> int:
    """A whole number."""
    number = parse_decimal(value, field, "integer")
    if number != number.to_integral_value():
        raise Invalid("format", kind="integer")
    return int(number)


def coerce_percent(field: dict[str, Any], value: Any, ctx: ValidationContext) -> int | float:
    """A percentage as its number (12.5 means 12.5 %); "12.5%" is accepted."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFKC", value).strip().removesuffix("%").strip()
    return coerce_number(field, value, ctx)


_MONEY_NOISE = re.compile(r"(?i)^(rmb|cny|¥|￥)|(元|rmb|cny)$")


def parse_money_fen(value: Any, field: dict[str, Any]) -> int:
    """Integer fen from 1234.5, "1,234.50", "¥1234.5", "1234.5元"; half-up to the fen, never a float."""
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        text = text.replace("¥", "").replace("￥", "")
        text = _MONEY_NOISE.sub("", text).strip()
        text = _MONEY_NOISE.sub("", text).strip()
        value = text
    yuan = parse_decimal(value, field, "money")
    return int((yuan * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def coerce_money(field: dict[str, Any], value: Any, ctx: ValidationContext) -> int:
    """CNY as integer fen."""
    return parse_money_fen(value, field)


def fen_to_text(fen: int) -> str:
    """12345 -> "123.45"; -5 -> "-0.05"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole}.{cents:02d}"


def coerce_rating(field: dict[str, Any], value: Any, ctx: ValidationContext) -> int:
    """A whole number of stars from 1 to max_rating (5)."""
    top = max_rating(field)
    try:
        number = parse_decimal(value, field, "rating")
    except Invalid as exc:
        raise Invalid("format", kind="rating", max=top) from exc
    if number != number.to_integral_value() or not 1 <= number <= top:
        raise Invalid("format", kind="rating", max=top)
    return int(number)


def max_rating(field: dict[str, Any]) -> int:
    """The field's top rating (default 5, at most 10)."""
    top = field.get("max_rating")
    return top if isinstance(top, int) and not isinstance(top, bool) and 1 <= top <= 10 else 5


_TRUE = {"true", "yes", "y", "1", "是", "对", "on", "checked", "√", "✓"}
_FALSE = {"false", "no", "n", "0", "否", "不是", "错", "off", "unchecked", "×"}


def coerce_boolean(field: dict[str, Any], value: Any, ctx: ValidationContext) -> bool:
    """true/false, "是"/"否", "yes"/"no", 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise Invalid("format", kind="boolean")


# ---------------------------------------------------------------- dates and times

_DATE_TEXT = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")


def parse_date(value: Any, tz: Any, *, strict: bool = False) -> date | None:
    """A calendar date from ISO/"2024/5/1"/"2024年5月1日", an Excel serial day, a date or datetime.

    A date and time is taken as the tenant's calendar day; one whose day falls outside
    years 1..9999 is None, or Invalid("date_range") when strict.
    """
    if isinstance(value, datetime):
        return _local_day(value if value.tzinfo else value.replace(tzinfo=tz), tz, strict)
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Excel stores dates as days since 1899-12-30; only plausible ones (1900..2199).
        if math.isfinite(value) and 1 <= value < 109575 and float(value).is_integer():
            return _EXCEL_EPOCH + timedelta(days=int(value))
        return None
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    match = _DATE_TEXT.fullmatch(text)
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    if re.fullmatch(r"\d{8}", text):
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            return None
    parsed = parse_datetime(text, tz, strict=strict)
    return None if parsed is None else _local_day(parsed, tz, strict)


def _local_day(moment: datetime, tz: Any, strict: bool) -> date | None:
    """The tenant's calendar day of an aware moment; outside years 1..9999: None, or Invalid when strict."""
    try:
        return moment.astimezone(tz).date()
    except OverflowError:
        if strict:
            raise Invalid("date_range", **DATE_RANGE) from None
        return None


def coerce_date(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """A calendar date -> "YYYY-MM-DD"; "today" means the tenant's today."""
    if isinstance(value, str) and value.strip().lower() == "today":
        return ctx.now.astimezone(ctx.tz).date().isoformat()
    if isinstance(value, bool) or not isinstance(value, str | int | float | date):
        raise _type_error(field)
    day = parse_date(value, ctx.tz, strict=True)
    if day is None:
        raise Invalid("format", kind="date")
    return day.isoformat()


_DT_TEXT = re.compile(
    r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?",
    re.IGNORECASE,
)


def parse_datetime(value: Any, tz: Any, *, strict: bool = False) -> datetime | None:
    """An aware UTC datetime from ISO text (naive = tenant time), a date (local midnight) or a datetime.

    None when the value is not one; a moment outside years 1..9999 once in UTC is None too,
    or Invalid("date_range") when strict.
    """
    try:
        return _parse_datetime(value, tz)
    except OverflowError:
        if strict:
            raise Invalid("date_range", **DATETIME_RANGE) from None
        return None


def _parse_datetime(value: Any, tz: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=tz)
    elif isinstance(value, date):
        moment = datetime.combine(value, time(), tzinfo=tz)
    elif isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        match = _DT_TEXT.fullmatch(text)
        if not match:
            return None
        year, month, day, hour, minute, second, frac, zone = match.groups()
        try:
            micro = int((frac or "0")[:6].ljust(6, "0"))
            moment = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
            )
        except ValueError:
            return None
        if zone is None:
            moment = moment.replace(tzinfo=tz)
        elif zone.upper() == "Z":
            moment = moment.replace(tzinfo=UTC)
        else:
            digits = zone.replace(":", "")
            offset = timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
            if offset > timedelta(hours=14) or int(digits[3:5]) >= 60:
                return None
            from datetime import timezone

            moment = moment.replace(tzinfo=timezone(offset if digits[0] == "+" else -offset))
    else:
        return None
    # MongoDB keeps milliseconds; cut here so a stored value reads back equal.
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def coerce_datetime(field: dict[str, Any], value: Any, ctx: ValidationContext) -> datetime:
    """ISO with or without zone (naive = ctx.tz) -> aware UTC datetime; "now" is ctx.now."""
    if isinstance(value, str) and value.strip().lower() == "now":
        value = ctx.now
    if isinstance(value, bool) or not isinstance(value, str | date):
        raise _type_error(field)
    moment = parse_datetime(value, ctx.tz, strict=True)
    if moment is None:
        raise Invalid("format", kind="datetime")
    return moment


def coerce_time(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """ "9:30" / "09:30:15" -> "HH:MM:SS"."""
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None).isoformat()
    if not isinstance(value, str):
        raise _type_error(field)
    match = re.fullmatch(r"(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?", unicodedata.normalize("NFKC", value).strip())
    if not match:
        raise Invalid("format", kind="time")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise Invalid("format", kind="time")
    return f"{hour:02d}:{minute:02d}:{second:02d}"


def datetime_to_text(moment: datetime) -> str:
    """ISO UTC with a "Z": "2024-05-01T01:30:00Z" (milliseconds only when present)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    text = moment.isoformat(timespec="seconds").removesuffix("+00:00")  # "0001-..." (strftime drops zeros)
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


# ---------------------------------------------------------------- choices


def options(field: dict[str, Any]) -> list[dict[str, Any]]:
    """The field's option objects (strings become {"value": s})."""
    out = []
    for opt in field.get("options") or []:
        if isinstance(opt, dict) and isinstance(opt.get("value"), str):
            out.append(opt)
        elif isinstance(opt, str):
            out.append({"value": opt, "label": {"zh-CN": opt, "en": opt}})
    return out


def match_option(field: dict[str, Any], value: Any) -> str:
    """The option value named by `value` (its value, or its label in any language)."""
    text = _plain_str(value, field).strip()
    opts = options(field)
    for opt in opts:
        if opt["value"] == text:
            return text
    folded = text.casefold()
    for opt in opts:
        label = opt.get("label")
        names = list(label.values()) if isinstance(label, dict) else [label]
        if any(isinstance(n, str) and n.strip().casefold() == folded for n in names):
            return str(opt["value"])
        if str(opt["value"]).casefold() == folded:
            return str(opt["value"])
    raise Invalid("option", value=text)


def coerce_select(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """One option value (a label is accepted and mapped to its value)."""
    return match_option(field, value)


def _as_list(value: Any, field: dict[str, Any]) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str):
        return [part for part in re.split(r"[,，;；、\n]", value) if part.strip()]
    raise _type_error(field)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def coerce_multi_select(field: dict[str, Any], value: Any, ctx: ValidationContext) -> list[str]:
    """Option values, de-duplicated in input order; "A,B" and "A、B" are split."""
    return _dedupe([match_option(field, item) for item in _as_list(value, field)])


def coerce_tags(field: dict[str, Any], value: Any, ctx: ValidationContext) -> list[str]:
    """Free text tags (options are only suggestions), trimmed, at most 50 chars each."""
    tags = []
    for item in _as_list(value, field):
        tag = collapse_spaces(strip_controls(_plain_str(item, field), multiline=False))
        if not tag:
            continue
        if len(tag) > 50:
            raise Invalid("max_length", max_length=50)
        tags.append(tag)
    return _dedupe(tags)


def coerce_approval_status(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str:
    """One of draft/pending/approved/rejected/withdrawn (written by the approval engine)."""
    if value not in APPROVAL_STATUSES:
        raise Invalid("option", value=value)
    return str(value)


# ---------------------------------------------------------------- places


def _province(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("format", kind="province", value=value)
    full = china.province_name(value)
    if full is None:
        raise Invalid("format", kind="province", value=value)
    return full


def _city(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("format", kind="city")
    if len(value.strip()) > 50:
        raise Invalid("max_length", max_length=50)
    return value.strip()


def coerce_region(field: dict[str, Any], value: Any, ctx: ValidationContext) -> dict[str, Any]:
    """{"province": full name, "city": text or None}; "广东 深圳" and "广东省深圳市" work too."""
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        parts = [p for p in re.split(r"[\s/,，\-、]+", text) if p]
        if len(parts) >= 2:
            return {"province": _province(parts[0]), "city": _city(" ".join(parts[1:]))}
        province, rest = china.split_province(text)
        if province is None:
            raise Invalid("format", kind="province", value=text)
        return {"province": province, "city": rest or None}
    if isinstance(value, list | tuple) and 1 <= len(value) <= 2:
        value = {"province": value[0], "city": value[1] if len(value) > 1 else None}
    if not isinstance(value, dict) or set(value) - {"province", "city"} or "province" not in value:
        raise Invalid("format", kind="region")
    return {"province": _province(value["province"]), "city": _city(value.get("city"))}


_ADDRESS_KEYS = ("province", "city", "district", "detail")


def coerce_address(field: dict[str, Any], value: Any, ctx: ValidationContext) -> dict[str, Any]:
    """{"province","city","district","detail"}; a plain string is the detail (a leading province is split off)."""
    if isinstance(value, str):
        province, rest = china.split_province(unicodedata.normalize("NFKC", value))
        value = {"province": province, "detail": rest}
    if not isinstance(value, dict) or set(value) - set(_ADDRESS_KEYS):
        raise Invalid("format", kind="address")
    out: dict[str, Any] = {}
    for key in _ADDRESS_KEYS:
        part = value.get(key)
        if part is None or (isinstance(part, str) and not part.strip()):
            out[key] = None
            continue
        if not isinstance(part, str):
            raise Invalid("format", kind="address")
        limit = 500 if key == "detail" else 50
        if len(part.strip()) > limit:
            raise Invalid("max_length", max_length=limit)
        out[key] = _province(part) if key == "province" else part.strip()
    if all(v is None for v in out.values()):
        raise Invalid("format", kind="address")
    return out


def coerce_geo_point(field: dict[str, Any], value: Any, ctx: ValidationContext) -> dict[str, float]:
    """{"lng", "lat"} within range; [lng, lat] and "lng,lat" are accepted."""
    if isinstance(value, str):
        value = [p for p in re.split(r"[,，\s]+", value.strip()) if p]
    if isinstance(value, list | tuple) and len(value) == 2:
        value = {"lng": value[0], "lat": value[1]}
    if not isinstance(value, dict) or set(value) != {"lng", "lat"}:
        raise Invalid("format", kind="geo_point")
    try:
        lng = float(parse_decimal(value["lng"], field, "geo_point"))
        lat = float(parse_decimal(value["lat"], field, "geo_point"))
    except Invalid:
        raise Invalid("format", kind="geo_point") from None
    if not (-180 <= lng <= 180 and -90 <= lat <= 90):
        raise Invalid("format", kind="geo_point")
    return {"lng": lng, "lat": lat}


# ---------------------------------------------------------------- references


def _one_id(value: Any) -> str:
    if isinstance(value, dict) and "id" in value:
        value = value["id"]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ID.fullmatch(value.strip()):
        raise Invalid("format", kind="id")
    return value.strip()


def is_many(field: dict[str, Any]) -> bool:
    """Whether a relation/user/department field holds a list."""
    relation = field.get("relation")
    if isinstance(relation, dict) and relation.get("many") is True:
        return True
    return field.get("many") is True


def coerce_ids(field: dict[str, Any], value: Any) -> str | list[str]:
    """One id, or a de-duplicated list of ids for a "many" field."""
    if is_many(field):
        items = value if isinstance(value, list | tuple) else [value]
        return _dedupe([_one_id(item) for item in items])
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise _type_error(field)
        value = value[0]
    return _one_id(value)


def coerce_user(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str | list[str]:
    """A user id (or ids when many)."""
    return coerce_ids(field, value)


def coerce_relation(field: dict[str, Any], value: Any, ctx: ValidationContext) -> str | list[str]:
    """Record id(s) of relation.form_id, checked through ctx.missing_relations."""
    ids = coerce_ids(field, value)
    wanted = ids if isinstance(ids, list) else [ids]
    relation = field.get("relation") if isinstance(field.get("relation"), dict) else {}
    form_id = str((relation or {}).get("form_id", ""))
    missing = ctx.missing_relations(form_id, list(wanted))
    if missing:
        raise Invalid("relation_not_found", ids=sorted(missing))
    return ids


def _accepts(accept: list[str], content_type: str, name: str) -> bool:
    content_type = (content_type or "").lower()
    for pattern in accept:
        pattern = pattern.strip().lower()
        if pattern.startswith(".") and name.lower().endswith(pattern):
            return True
        if pattern.endswith("/*") and content_type.startswith(pattern[:-1]):
            return True
        if pattern == content_type or pattern == "*/*":
            return True
    return False


def coerce_attachment(field: dict[str, Any], value: Any, ctx: ValidationContext) -> list[dict[str, Any]]:
    """Uploaded file ids -> [{id, name, size, content_type}] checked against max_size/accept/max_files."""
    items = value if isinstance(value, list | tuple) else [value]
    ids = _dedupe([_one_id(item) for item in items])
    max_files = field.get("max_files")
    if isinstance(max_files, int) and not isinstance(max_files, bool) and len(ids) > max_files:
        raise Invalid("too_many_files", max_files=max_files)
    found = ctx.attachments(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise Invalid("attachment_not_found", ids=missing)
    accept = field.get("accept")
    if accept is None and field.get("type") == "image":
        accept = ["image/*"]
    max_size = field.get("max_size")
    out = []
    for file_id in ids:
        meta = found[file_id]
        name, size, content_type = (
            str(meta.get("name", "")),
            int(meta.get("size") or 0),
            str(meta.get("content_type", "")),
        )
        if isinstance(max_size, int) and not isinstance(max_size, bool) and size > max_size:
            raise Invalid("file_too_large", name=name, max_size=max_size, size=size)
        if isinstance(accept, list) and accept and not _accepts(accept, content_type, name):
            raise Invalid("file_type", name=name, content_type=content_type, accept=accept)
        out.append({"id": file_id, "name": name, "size": size, "content_type": content_type})
    return out


# ---------------------------------------------------------------- constraints


def _bound(field: dict[str, Any], name: str) -> Any:
    bound = field.get(name)
    return None if isinstance(bound, bool) else bound


def check_constraints(field: dict[str, Any], stored: Any, ctx: ValidationContext) -> None:
    """min/max, min_length/max_length and regex from the definition, on a stored value."""
    ftype = field.get("type")
    low, high = _bound(field, "min"), _bound(field, "max")
    if ftype == "money":
        for rule, bound, bad in (("min", low, lambda b: stored < b), ("max", high, lambda b: stored > b)):
            if isinstance(bound, int | float | str) and bound != "":
                fen = parse_money_fen(bound, field)
                if bad(fen):
                    raise Invalid(rule, **{rule: fen_to_text(fen)})
    elif ftype in ("number", "integer", "percent", "rating"):
        for rule, bound in (("min", low), ("max", high)):
            if isinstance(bound, int | float) and (
                (rule == "min" and stored < bound) or (rule == "max" and stored > bound)
            ):
                raise Invalid(rule, **{rule: bound})
    elif ftype == "date":
        for rule, bound in (("min", low), ("max", high)):
            day = parse_date(bound, ctx.tz) if isinstance(bound, str) else None
            if day and ((rule == "min" and stored < day.isoformat()) or (rule == "max" and stored > day.isoformat())):
                raise Invalid(rule, **{rule: day.isoformat()})
    elif ftype == "datetime":
        for rule, bound in (("min", low), ("max", high)):
            moment = parse_datetime(bound, ctx.tz) if isinstance(bound, str) else None
            if moment and ((rule == "min" and stored < moment) or (rule == "max" and stored > moment)):
                raise Invalid(rule, **{rule: bound})
    if isinstance(stored, str):
        length = len(stored)
        limit = field.get("max_length")
        default_max = TEXT_MAX.get(str(ftype))
        if not isinstance(limit, int) or isinstance(limit, bool):
            limit = default_max
        if limit is not None and length > limit:
            raise Invalid("max_length", max_length=limit)
        least = field.get("min_length")
        if isinstance(least, int) and not isinstance(least, bool) and length < least:
            raise Invalid("min_length", min_length=least)
        pattern = field.get("regex")
        if isinstance(pattern, str) and pattern and ftype in REGEX_TYPES:
            try:
                matched = re.fullmatch(pattern, stored) is not None
            except re.error:
                matched = True  # a bad pattern is a definition error, reported at publish
            if not matched:
                raise Invalid("regex")
    elif isinstance(stored, list) and ftype in ("multi_select", "tags", "sub_table", "relation", "user", "department"):
        least, limit = field.get("min_length"), field.get("max_length")
        if isinstance(limit, int) and not isinstance(limit, bool) and len(stored) > limit:
            raise Invalid("max_length", max_length=limit)
        if isinstance(least, int) and not isinstance(least, bool) and len(stored) < least:
            raise Invalid("min_length", min_length=least)


REGEX_TYPES = frozenset({"text", "long_text", "encrypted_text", "email", "url", "phone", "mobile"})


def option_label(field: dict[str, Any], value: str, locale: str) -> str:
    """The display label of an option value."""
    for opt in options(field):
        if opt["value"] == value:
            return localised(opt.get("label"), locale, value)
    return value
