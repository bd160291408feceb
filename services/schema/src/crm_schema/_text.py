"""Text helpers shared by the value rules: width folding, spacing, labels."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_SPACES = re.compile(r"\s+")


def to_half_width(text: str) -> str:
    """Full-width ASCII (digits, letters, brackets, punctuation) and the ideographic space -> half-width."""
    out = []
    for ch in text:
        code = ord(ch)
        if code == 0x3000:
            out.append(" ")
        elif 0xFF01 <= code <= 0xFF5E:
            out.append(chr(code - 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def collapse_spaces(text: str) -> str:
    """Trim and collapse every whitespace run into one space."""
    return _SPACES.sub(" ", text).strip()


def fold(text: str) -> str:
    """The comparison form of a text: half-width, collapsed spaces, case-folded."""
    return collapse_spaces(to_half_width(unicodedata.normalize("NFC", text))).casefold()


def localised(value: Any, locale: str, fallback: str = "") -> str:
    """A {"zh-CN": ..., "en": ...} label (or a plain string) in `locale`, falling back to any language."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in (locale, "zh-CN", "en"):
            text = value.get(key)
            if isinstance(text, str) and text:
                return text
        for text in value.values():
            if isinstance(text, str) and text:
                return text
    return fallback


def field_label(field: dict[str, Any], locale: str) -> str:
    """The field's label in `locale`, or its key when it has none."""
    return localised(field.get("label"), locale, str(field.get("key", "")))
