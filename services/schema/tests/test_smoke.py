"""End-to-end use of the public API the record and form services call."""

from __future__ import annotations

from typing import Any

import crm_schema as s


def test_create_customer_like_record(ctx: Any, f: Any) -> None:
    fields = [
        f("name", "text", "客户名称", "Customer name", required=True, dedupe=True),
        f("mobile", "mobile", "手机号", "Mobile"),
        f("amount", "money", "金额", "Amount"),
        f("tax", "formula", "税额", "Tax", expression="amount * 0.13", result_type="money"),
    ]
    assert s.validate_form_fields(fields) == []
    result = s.validate_data(
        fields,
        {"name": " 北京华信恒通科技有限公司 ", "mobile": 1.38001380e10, "amount": "¥1,234.5"},
        existing=None,
        ctx=ctx,
    )
    assert result.errors == []
    assert result.values == {
        "name": "北京华信恒通科技有限公司",
        "mobile": "13800138000",
        "amount": 123450,
        "tax": 16049,
    }
    assert s.to_output(fields[2], result.values["amount"], ctx=ctx) == "1234.50"
    assert s.dedupe_keys(fields, result.values) == ["name:北京华信恒通科技", "mobile:13800138000"]
    assert set(s.query_tokens("华信")) <= set(s.search_tokens(s.search_text(fields, result.values)))
