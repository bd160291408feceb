"""Keyword tokens, unique normalisation and duplicate keys."""

from __future__ import annotations

from typing import Any

import crm_schema as s


def matches(keyword: str, text: str) -> bool:
    wanted = s.query_tokens(keyword)
    have = set(s.search_tokens(text))
    return bool(wanted) and all(s.token_matches(t, have) for t in wanted)


def test_cjk_tokens() -> None:
    tokens = s.search_tokens("华信科技")
    assert tokens == ["华信", "信科", "科技", "技"]  # bigrams and the run's last character
    assert s.query_tokens("华信") == ["华信"]
    assert s.query_tokens("华") == ["华*"]  # a prefix: a bigram it starts, or a run it ends
    assert s.search_tokens("13800138000 robotics") == [
        "13",
        "138",
        "1380",
        "13800138000",
        "ro",
        "rob",
        "robo",
        "robotics",
    ]
    assert s.query_tokens("1380013 rob robotic") == ["1380013*", "rob", "robotic*"]
    assert s.query_tokens("恒通科技") == ["恒通", "通科", "科技"]


def test_keyword_matching() -> None:
    name = "北京华信恒通科技有限公司"
    assert matches("华信", name)
    assert matches("恒通科技", name)
    assert matches("京", name)
    assert matches("司", name) and matches("北", name)  # the last and the first character
    assert not matches("美", name)
    assert not matches("华通", name)
    assert matches("Acme", "ACME Robotics 13800138000")
    assert matches("rob", "ACME Robotics")
    assert matches("1380013", "ACME Robotics 13800138000")
    assert not matches("obotics", "ACME Robotics")
    assert matches("ＡＣＭＥ", "acme")  # full-width keyword
    assert s.query_tokens("  ,,  ") == []


def test_token_cap_and_dedupe() -> None:
    tokens = s.search_tokens("的" * 50 + " " + " ".join(f"word{i}" for i in range(200)))
    assert len(tokens) <= s.search.MAX_TOKENS
    assert len(tokens) == len(set(tokens))


def test_search_text(f: Any) -> None:
    fields = [
        f("name", "text"),
        f("level", "select", options=[{"value": "A", "label": {"zh-CN": "重要", "en": "Key"}}], searchable=True),
        f("secret", "encrypted_text", searchable=True),
        f("amount", "money"),
        f("region", "region", searchable=True),
        f("remark", "long_text"),
    ]
    text = s.search_text(
        fields,
        {
            "name": "华信",
            "level": "A",
            "secret": "enc:xyz",
            "amount": 100,
            "region": {"province": "广东省", "city": "深圳"},
            "remark": "备注里的话",
        },
    )
    assert "华信" in text and "重要" in text and "广东省" in text
    assert "enc" not in text and "100" not in text
    assert "备注" not in text  # long text is searched only when the field says so


def test_normalise_unique(f: Any) -> None:
    text = f("name", "text")
    assert s.normalise_unique(text, "  北京（华信）  Tech   Co ") == "北京(华信) tech co"
    assert s.normalise_unique(text, "ＡＢＣ　１２３") == "abc 123"
    assert s.normalise_unique(text, "") is None
    assert s.normalise_unique(text, None) is None
    assert s.normalise_unique(f("m", "mobile"), "+86 138 0013 8000") == "13800138000"
    assert s.normalise_unique(f("e", "email"), "Zhang@Example.com") == "zhang@example.com"


def test_dedupe_keys(f: Any) -> None:
    fields = [f("name", "text", dedupe=True), f("mobile", "mobile"), f("email", "email"), f("note", "text")]
    a = s.dedupe_keys(fields, {"name": "北京华信恒通科技有限公司", "mobile": "13800138000", "note": "x"})
    b = s.dedupe_keys(fields, {"name": "北京华信恒通科技（有限公司）", "email": "A@X.com"})
    assert a == ["name:北京华信恒通科技", "mobile:13800138000"]
    assert b == ["name:北京华信恒通科技", "email:a@x.com"]
    for variant in (
        "北京华信恒通科技股份有限公司",
        "北京 华信恒通科技 集团",
        "北京华信恒通科技(中国)有限公司",
        "北京华信恒通科技有限责任公司",
    ):
        assert s.dedupe_keys(fields, {"name": variant}) == ["name:北京华信恒通科技"], variant
    assert s.company_key("Acme Co., Ltd.") == "acme"
    assert s.company_key("公司") == "公司"  # nothing but a suffix: kept
    assert s.dedupe_keys(fields, {}) == []
