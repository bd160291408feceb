"""Keyword search: the text of a record, its index tokens, and the tokens a keyword needs.

CJK text has no spaces, so it is indexed as bigrams plus the last character
of each run; a keyword then needs all of its bigrams ("华信" finds
"北京华信恒通科技有限公司"), and a single character is a *prefix token*: some
token must start with it (a bigram it begins, or the end of a run). Latin
letters and digits are indexed as lower-case words (up to MAX_PREFIX
characters) and their prefixes of 2 to SHORT_PREFIX characters; a longer
query word is a prefix token ("1380013" finds 13800138000 through the range of
words beginning with it).

Every token is an index entry of the record, written with it: fewer tokens
make creates and imports cheaper (a record of a 16-field form had ~100, now
about half), at the price of a range read for the rare one-character CJK query.
A prefix token is the word followed by PREFIX_MARK.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from crm_schema import values as v
from crm_schema.registry import FIELD_TYPES, SEARCHABLE_TYPES, SEARCHED_BY_DEFAULT

MAX_TOKENS = 200
MAX_PREFIX = 20
SHORT_PREFIX = 4
PREFIX_MARK = "*"  # never part of a token: _RUNS only matches letters, digits and CJK
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_RUNS = re.compile(f"([{_CJK}]+)|([a-z0-9]+)")


def is_searched(field: dict[str, Any]) -> bool:
    """True when the field's values are part of the record's keyword-search text."""
    ftype = field.get("type")
    if ftype not in SEARCHABLE_TYPES or ftype not in FIELD_TYPES:
        return False
    flag = field.get("searchable")
    return bool(flag) if isinstance(flag, bool) else ftype in SEARCHED_BY_DEFAULT


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
        if not isinstance(field, dict) or not is_searched(field):
            continue
        parts.extend(p for p in _plain(field, data.get(str(field.get("key")))) if p)
    return "\n".join(parts)


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def search_tokens(text: str) -> list[str]:
    """Index tokens of `text`: CJK bigrams and each run's last character; latin/digit words and their prefixes
    of 2..SHORT_PREFIX characters.

    De-duplicated in first-seen order and capped at MAX_TOKENS.
    """
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(_normal(text or "")):
        if len(tokens) >= MAX_TOKENS:
            break
        if cjk:
            for i in range(len(cjk) - 1):
                tokens.setdefault(cjk[i : i + 2])
            tokens.setdefault(cjk[-1])
        else:
            for end in range(2, min(len(word), SHORT_PREFIX) + 1):
                tokens.setdefault(word[:end])
            tokens.setdefault(word[:MAX_PREFIX])
    return list(tokens)[:MAX_TOKENS]


def query_tokens(keyword: str) -> list[str]:
    """The tokens a record must all have to match `keyword` (empty when the keyword has no letters).

    A token ending in PREFIX_MARK is a prefix: the record needs a token starting with it.
    """
    tokens: dict[str, None] = {}
    for cjk, word in _RUNS.findall(_normal(keyword or "")):
        if cjk:
            if len(cjk) == 1:
                tokens.setdefault(cjk + PREFIX_MARK)
            for i in range(len(cjk) - 1):
                tokens.setdefault(cjk[i : i + 2])
        elif len(word) == 1 or len(word) <= SHORT_PREFIX:
            tokens.setdefault(word)
        else:
            tokens.setdefault(word[:MAX_PREFIX] + PREFIX_MARK)
    return list(tokens)[:32]


def is_prefix(token: str) -> bool:
    """True for a prefix token of query_tokens."""
    return token.endswith(PREFIX_MARK)


def token_matches(token: str, have: set[str]) -> bool:
    """A query token against a record's tokens: present, or (a prefix token) the start of one of them."""
    if not is_prefix(token):
        return token in have
    stem = token[: -len(PREFIX_MARK)]
    return any(t.startswith(stem) for t in have)
