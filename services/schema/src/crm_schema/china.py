"""Mainland China formats: provinces, mobile and landline numbers, ID card and USCC checksums."""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date
from typing import Any

# The 34 provincial-level divisions (GB/T 2260), full name -> short names accepted on input.
PROVINCES: dict[str, tuple[str, ...]] = {
    "北京市": ("北京", "京"),
    "天津市": ("天津", "津"),
    "河北省": ("河北", "冀"),
    "山西省": ("山西", "晋"),
    "内蒙古自治区": ("内蒙古", "内蒙"),
    "辽宁省": ("辽宁", "辽"),
    "吉林省": ("吉林", "吉"),
    "黑龙江省": ("黑龙江", "黑"),
    "上海市": ("上海", "沪"),
    "江苏省": ("江苏", "苏"),
    "浙江省": ("浙江", "浙"),
    "安徽省": ("安徽", "皖"),
    "福建省": ("福建", "闽"),
    "江西省": ("江西", "赣"),
    "山东省": ("山东", "鲁"),
    "河南省": ("河南", "豫"),
    "湖北省": ("湖北", "鄂"),
    "湖南省": ("湖南", "湘"),
    "广东省": ("广东", "粤"),
    "广西壮族自治区": ("广西", "广西自治区", "桂"),
    "海南省": ("海南", "琼"),
    "重庆市": ("重庆", "渝"),
    "四川省": ("四川", "川", "蜀"),
    "贵州省": ("贵州", "黔", "贵"),
    "云南省": ("云南", "滇", "云"),
    "西藏自治区": ("西藏", "藏"),
    "陕西省": ("陕西", "陕", "秦"),
    "甘肃省": ("甘肃", "甘", "陇"),
    "青海省": ("青海", "青"),
    "宁夏回族自治区": ("宁夏", "宁"),
    "新疆维吾尔自治区": ("新疆", "新"),
    "台湾省": ("台湾", "台"),
    "香港特别行政区": ("香港", "港"),
    "澳门特别行政区": ("澳门", "澳"),
}

_PROVINCE_LOOKUP: dict[str, str] = {}
for _full, _shorts in PROVINCES.items():
    _PROVINCE_LOOKUP[_full] = _full
    for _short in _shorts:
        _PROVINCE_LOOKUP.setdefault(_short, _full)
# Longest names first, so "内蒙古自治区呼和浩特市" matches the whole province name.
_PROVINCE_PREFIXES = sorted((k for k in _PROVINCE_LOOKUP if len(k) >= 2), key=len, reverse=True)


def province_name(text: str) -> str | None:
    """The full name of a province given its full or short name ("广东" -> "广东省"), else None."""
    return _PROVINCE_LOOKUP.get(text.strip())


def split_province(text: str) -> tuple[str | None, str]:
    """("广东省", "深圳市") from "广东省深圳市" / "广东 深圳"; (None, text) when no province leads."""
    text = text.strip()
    for prefix in _PROVINCE_PREFIXES:
        if text.startswith(prefix):
            return _PROVINCE_LOOKUP[prefix], text[len(prefix) :].strip(" /,，-、")
    return None, text


# ---------------------------------------------------------------- mobile numbers

_MOBILE = re.compile(r"1[3-9]\d{9}")
_FLOATISH = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?")


def _digits_from_number(value: Any) -> str | None:
    """Excel gives 13800138000.0 or 1.38001380e10: an integral number -> its digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        return str(int(value))
    return None


def normalise_mobile(value: Any) -> str | None:
    """The 11-digit mainland mobile number in `value`, or None when it is not one.

    Accepts "+86-138 0013 8000", "86 13800138000", "0086…", "(138)0013-8000" and the
    numbers Excel produces (13800138000.0, 1.38001380e10, also as strings).
    """
    digits = _digits_from_number(value)
    if digits is None:
        if not isinstance(value, str):
            return None
        text = unicodedata.normalize("NFKC", value).strip()
        if _FLOATISH.fullmatch(text) and ("e" in text.lower() or "." in text):
            try:
                digits = _digits_from_number(float(text))
            except ValueError:
                digits = None
            if digits is None:
                return None
        else:
            if re.search(r"[^\d\s+\-().]", text):
                return None
            digits = re.sub(r"\D", "", text)
            if text.startswith("+") and not digits.startswith("86"):
                return None
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == 11 + len(prefix):
            digits = digits[len(prefix) :]
            break
    return digits if _MOBILE.fullmatch(digits) else None


# ---------------------------------------------------------------- landline numbers

_EXTENSION = re.compile(r"(?:转|分机|ext\.?|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)


def _landline(digits: str) -> str | None:
    if not digits.startswith("0"):
        return None
    area_len = 3 if digits[1:2] in ("1", "2") else 4
    area, local = digits[:area_len], digits[area_len:]
    if len(local) not in (7, 8) or local[0] == "0":
        return None
    return f"{area}-{local}"


def normalise_phone(value: Any) -> str | None:
    """A landline with area code ("010-12345678", "0755-1234567"), a 400/800 number
    ("400-800-8888") or a mobile, with an optional extension ("-123"), else None."""
    digits_only = _digits_from_number(value)
    if digits_only is not None:
        value = digits_only
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    ext = ""
    match = _EXTENSION.search(text)
    if match:
        ext, text = match.group(1), text[: match.start()]
    if re.search(r"[^\d\s+\-()]", text):
        return None
    international = text.startswith("+86") or text.startswith("0086")
    groups = re.findall(r"\d+", text)
    if not groups:
        return None
    if international:
        groups[0] = groups[0][4:] if groups[0].startswith("0086") else groups[0][2:]
        groups = [g for g in groups if g]
        joined = "".join(groups)
        if groups and not (groups[0].startswith(("0", "400", "800")) or normalise_mobile(joined)):
            groups[0] = "0" + groups[0]
    attempts = [("".join(groups), ext)]
    if not ext and len(groups) >= 3 and len(groups[-1]) <= 6:
        attempts.append(("".join(groups[:-1]), groups[-1]))
    for digits, extension in attempts:
        suffix = f"-{extension}" if extension else ""
        mobile = normalise_mobile(digits)
        if mobile:
            return mobile + suffix
        if digits[:3] in ("400", "800") and len(digits) == 10:
            return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}{suffix}"
        landline = _landline(digits)
        if landline:
            return landline + suffix
    return None


# ---------------------------------------------------------------- identity card (GB 11643)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_REGIONS = {
    *range(11, 16),
    *range(21, 24),
    *range(31, 38),
    *range(41, 47),
    *range(50, 55),
    *range(61, 66),
    71,
    81,
    82,
    83,
    91,
}


def id_card_check_char(first17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def check_id_card(value: str, today: date) -> tuple[str | None, str | None]:
    """(normalised, None) for a valid 18-digit resident ID; (None, rule kind) otherwise.

    The kind is "format", "birth_date" or "checksum"; a trailing 'x' becomes 'X'.
    """
    text = unicodedata.normalize("NFKC", value).strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", text) or int(text[:2]) not in _ID_REGIONS:
        return None, "format"
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return None, "birth_date"
    if born.year < 1900 or born > today:
        return None, "birth_date"
    if id_card_check_char(text[:17]) != text[17]:
        return None, "checksum"
    return text, None


# ---------------------------------------------------------------- unified social credit code (GB 32100-2015)

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(first17: str) -> str:
    """The GB 32100-2015 check character of the first 17 characters."""
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def check_uscc(value: str) -> tuple[str | None, str | None]:
    """(normalised, None) for a valid code; (None, "format"|"checksum") otherwise."""
    text = unicodedata.normalize("NFKC", value).strip().upper()
    pattern = f"[0-9A-HJ-NPQRTUWXY]{{2}}\\d{{6}}[{USCC_CHARSET}]{{10}}"
    if len(text) != 18 or not re.fullmatch(pattern, text):
        return None, "format"
    if uscc_check_char(text[:17]) != text[17]:
        return None, "checksum"
    return text, None
