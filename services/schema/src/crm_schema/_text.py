"""Text helpers shared by the value rules: width folding, spacing, labels."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_SPACES = re.compile(r"\s+")
# C0 and C1 control characters (tab, line feed and carriage return are handled by the callers),
# DEL, and the bidirectional embedding/override/isolate controls that can make stored text
# display differently from what it says ("Trojan Source").
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\r\n\u2028\u2029]")


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


def strip_controls(text: str, *, multiline: bool) -> str:
    """Text without control and bidi-override characters.

    multiline keeps tabs and line breaks (CR LF and CR become LF); otherwise each
    tab, line break or line/paragraph separator becomes one space.
    """
    text = _CONTROLS.sub("", text)
    if multiline:
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return _LINE_BREAKS.sub(" ", text)


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
