"""Keyword search: the text of a record, its index tokens, and the tokens a keyword needs.

CJK text has no spaces, so it is indexed as single characters and bigrams; a
keyword then needs all of its bigrams ("华信" finds "北京华信恒通科技有限公司").
Latin letters and digits are indexed as lower-case words and their prefixes.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from crm_schema import values as v
from crm_schema.registry import FIELD_TYPES

MAX_TOKENS = 200
MAX_PREFIX = 20
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_RUNS = re.compile(f"([{_CJK}]+)|([a-z0-9]+)")
_SEARCHED = frozenset({"text", "long_text", "mobile", "phone", "email", "tags", "auto_number", "id_card", "uscc",
                       "select", "multi_select", "stage", "region", "address", "url"})  # fmt: skip


def _plain(field: dict[str, Any], value: Any) -> list[str]:
    ftype = field.get("type")
    if value is None:
        return []
    if ftype in ("select", "stage"):
        return [v.option_label(field, str(value), "zh-CN"), v.option_label(field, str(value), "en")]
    if ftype == "multi_select" and isinstance(value, list):
        return [v.option_label(field, str(item), "zh-CN") for item in value]
    if isinstance(value, list):
        return [str(item) for item in value if isinstance(item, str)]
    if isinstance(value, dict):
        return [str(item) for item in value.values() if isinstance(item, str)]
    if isinstance(value, str):
        return [value]
    return []


def search_text(fields: list[dict[str, Any]], data: dict[str, Any]) -> str:
    """The searchable text of a record: text-like values and option labels (never encrypted or rich text)."""
    parts: list[str] = []
    for field in fields:
        if not isinstance(field, dict) or field.get("type") not in _SEARCHED or field.get("type") not in FIELD_TYPES:
            continue
        parts.extend(p for p in _plain(field, data.get(str(field.get("key")))) if p)
    return "\n".join(parts)


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def search_tokens(text: str) -> list[str]:
    """Index tokens of `text`: CJK single characters and bigrams, latin/digit words and their prefixes (>= 2).

    De-duplicated in first-seen order and capped at MAX_TOKENS.
    """
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(_normal(text or "")):
        if len(tokens) >= MAX_TOKENS:
            break
        if cjk:
            for i, ch in enumerate(cjk):
                tokens.setdefault(ch)
                if i + 1 < len(cjk):
                    tokens.setdefault(cjk[i : i + 2])
        else:
            for end in range(2, min(len(word), MAX_PREFIX) + 1):
                tokens.setdefault(word[:end])
            if len(word) == 1:
                tokens.setdefault(word)
    return list(tokens)[:MAX_TOKENS]


def query_tokens(keyword: str) -> list[str]:
    """The tokens a record must all have to match `keyword` (empty when the keyword has no letters)."""
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(_normal(keyword or "")):
        if cjk:
            if len(cjk) == 1:
                tokens.setdefault(cjk)
            for i in range(len(cjk) - 1):
                tokens.setdefault(cjk[i : i + 2])
        else:
            tokens.setdefault(word[:MAX_PREFIX])
    return list(tokens)[:32]
