"""The message catalogue."""

from __future__ import annotations

from crm_schema.i18n import _CATALOGUE, message


def test_every_entry_has_both_languages() -> None:
    for name, entry in _CATALOGUE.items():
        assert set(entry) == {"zh-CN", "en"}, name
        assert all(text.strip() for text in entry.values()), name


def test_messages() -> None:
    assert message("required", "zh-CN", label="客户名称") == "「客户名称」为必填项"
    assert message("required", "en", label="Customer name") == "Customer name is required"
    assert message("format", "zh-CN", label="手机号", kind="mobile") == "「手机号」不是有效的中国大陆手机号"
    assert (
        message("format", "en", label="Mobile", kind="mobile") == "Mobile is not a valid mainland China mobile number"
    )
    assert message("max", "en", label="Qty", max=5) == "Qty must be at most 5"
    assert message("type", "zh-CN", label="数量", field_type="number") == "「数量」的值类型不正确，应为数字"
    assert message("type", "en", label="Qty", field_type="number") == "Qty must be a Number value"
    assert message("relation_not_found", "en", label="Customer", ids=["a", "b"]) == (
        "Customer refers to records that do not exist: a, b"
    )


def test_fallbacks() -> None:
    # Unknown locale -> zh-CN; unknown kind -> the rule's general text; missing params render empty.
    assert message("required", "fr", label="x") == "「x」为必填项"
    assert message("format", "en", label="X", kind="nope") == "X is not in a valid format"
    assert message("min", "en", label="X") == "X must be at least "
    assert message("no_such_rule", "en", label="X") == "X failed the rule no_such_rule"
    assert message("required", "en", label={"zh-CN": "名称", "en": "Name"}) == "Name is required"
    assert message("invalid_pattern", "en", label="Code").endswith("such as {0000}")
