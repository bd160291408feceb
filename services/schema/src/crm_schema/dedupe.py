"""Unique and duplicate keys: the comparison form of a value, and the keys that find likely duplicates."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from crm_schema import china
from crm_schema._text import fold, to_half_width

# Company-name noise, stripped from the end of a folded name (longest first, repeatedly).
_COMPANY_SUFFIXES = (
    "股份有限公司", "有限责任公司", "有限公司", "集团公司", "集团", "分公司", "公司", "co.,ltd", "co.ltd",
    "coltd", "co.,ltd.", "limited", "ltd", "inc", "corp", "corporation", "company", "co", "group",
)  # fmt: skip
_COMPANY_NOISE = re.compile(r"\((中国|china)\)")
_PUNCTUATION = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_unique(field: dict[str, Any], value: Any) -> str | None:
    """The comparison form of a value for unique checks (None for no value).

    Text: trimmed, full-width -> half-width, spaces collapsed, case-folded.
    Mobile/email/phone: their normalised form.
    """
    if value is None:
        return None
    ftype = field.get("type")
    if ftype == "mobile":
        mobile = china.normalise_mobile(value)
        if mobile:
            return mobile
    if ftype == "phone":
        phone = china.normalise_phone(value)
        if phone:
            return phone
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        parts = sorted(p for p in (normalise_unique(field, item) for item in value) if p)
        return "|".join(parts) or None
    if isinstance(value, dict):
        parts = [p for p in (normalise_unique(field, value[k]) for k in sorted(value)) if p]
        return "|".join(parts) or None
    if not isinstance(value, str):
        return None
    text = fold(value)
    return text or None


def company_key(value: str) -> str:
    """A company name without punctuation, spaces, "(中国)" and legal-form suffixes."""
    text = to_half_width(value).casefold()
    text = _COMPANY_NOISE.sub("", text.replace(" ", ""))
    text = _PUNCTUATION.sub("", text)
    stripped = True
    while stripped:
        stripped = False
        for suffix in _COMPANY_SUFFIXES:
            plain = _PUNCTUATION.sub("", suffix)
            if plain and text.endswith(plain) and len(text) > len(plain):
                text = text[: -len(plain)]
                stripped = True
                break
    return text


def dedupe_keys(fields: list[dict[str, Any]], data: dict[str, Any]) -> list[str]:
    """Duplicate-detection keys "<key>:<normalised>" for dedupe fields and every mobile/email field.

    A text dedupe field is treated as a name: company suffixes and punctuation are stripped,
    so "北京华信恒通科技有限公司" and "北京华信恒通科技（有限公司）" give the same key.
    """
    keys: list[str] = []
    for field in fields:
        if not isinstance(field, dict) or not isinstance(field.get("key"), str):
            continue
        ftype = field.get("type")
        if not (field.get("dedupe") is True or ftype in ("mobile", "email")):
            continue
        value = data.get(field["key"])
        if ftype in ("text", "long_text") and isinstance(value, str):
            normal = company_key(value) or None
        else:
            normal = normalise_unique(field, value)
        if normal:
            key = f"{field['key']}:{normal}"
            if key not in keys:
                keys.append(key)
    return keys
