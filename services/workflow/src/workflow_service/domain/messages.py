"""The zh-CN/en texts of the rules an automation's condition is checked against (domain/conditions.py).

Each message names the field by its label in the caller's language, so that a
form designer can see which condition to fix; `{label}` is filled in by the
caller, `{expected}` with one of the EXPECTED descriptions.
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import FieldError
from crm_runtime.i18n import DEFAULT_LOCALE, Catalog

MESSAGES: dict[str, dict[str, str]] = {
    "invalid_condition": {
        "zh-CN": '条件格式错误：应为 {{"and"|"or": [条件, ...]}} 或 {{"field", "op", "value"}}',
        "en": 'Malformed condition: expected {{"and"|"or": [condition, ...]}} or {{"field", "op", "value"}}',
    },
    "empty_group": {
        "zh-CN": "条件组“{group}”中至少要有一个条件",
        "en": "The condition group “{group}” must hold at least one condition",
    },
    "too_deep": {
        "zh-CN": "条件嵌套过深（最多 {max} 层）",
        "en": "The condition is nested too deeply (at most {max} levels)",
    },
    "too_many_conditions": {
        "zh-CN": "条件过多（最多 {max} 个）",
        "en": "The condition holds too many comparisons (at most {max})",
    },
    "field_required": {
        "zh-CN": "条件中缺少字段",
        "en": "The condition names no field",
    },
    "unknown_field": {
        "zh-CN": "条件中的字段“{field}”不是该表单的字段",
        "en": "The field “{field}” in the condition is not a field of this form",
    },
    "unknown_operator": {
        "zh-CN": "条件中的运算符 {op} 不存在",
        "en": "The condition uses an unknown operator {op}",
    },
    "operator_not_allowed": {
        "zh-CN": "条件中的字段“{label}”不支持运算符 {op}",
        "en": "The field “{label}” in the condition does not support the operator {op}",
    },
    "value_required": {
        "zh-CN": "条件中的字段“{label}”缺少比较值",
        "en": "The field “{label}” in the condition needs a value to compare with",
    },
    "value_type": {
        "zh-CN": "条件中的字段“{label}”的比较值类型不正确，应为{expected}",
        "en": "The value compared with “{label}” in the condition must be {expected}",
    },
    "value_format": {
        "zh-CN": "条件中的字段“{label}”的比较值“{value}”格式不正确，应为{expected}",
        "en": "The value “{value}” compared with “{label}” in the condition is not {expected}",
    },
    "value_too_long": {
        "zh-CN": "条件中的字段“{label}”的比较值过长（最多 {max} 个字符）",
        "en": "The value compared with “{label}” in the condition is too long (at most {max} characters)",
    },
    "option": {
        "zh-CN": "条件中的字段“{label}”没有可选项“{value}”",
        "en": "“{value}” is not an option of the field “{label}” in the condition",
    },
    "between_values": {
        "zh-CN": "条件中的字段“{label}”使用 between 时需要恰好 2 个值（下限和上限）",
        "en": "The field “{label}” in the condition needs exactly 2 values (low and high) for between",
    },
    "too_many_values": {
        "zh-CN": "条件中的字段“{label}”最多可列出 {max} 个值",
        "en": "The field “{label}” in the condition may list at most {max} values",
    },
}

EXPECTED: dict[str, dict[str, str]] = {
    "text": {"zh-CN": "文本", "en": "text"},
    "email": {"zh-CN": "邮箱地址", "en": "an email address"},
    "mobile": {"zh-CN": "中国大陆手机号", "en": "a mainland China mobile number"},
    "phone": {"zh-CN": "电话号码", "en": "a phone number"},
    "url": {"zh-CN": "网址", "en": "a web address"},
    "choice": {"zh-CN": "选项的值或名称", "en": "an option's value or label"},
    "number": {"zh-CN": "数字", "en": "a number"},
    "money": {"zh-CN": "金额（如 1200.50）", "en": "an amount such as 1200.50"},
    "date": {"zh-CN": "日期（如 2026-05-01）", "en": "a date such as 2026-05-01"},
    "datetime": {
        "zh-CN": "带时区的日期时间（如 2026-05-01T09:30:00Z）",
        "en": "a date and time with a zone, such as 2026-05-01T09:30:00Z",
    },
    "boolean": {"zh-CN": "是或否", "en": "yes or no"},
    "ref": {"zh-CN": "编号", "en": "an id"},
    "region": {"zh-CN": "省份（如 广东）", "en": "a province such as 广东"},
    "list": {"zh-CN": "数组", "en": "a list"},
}

CATALOG = Catalog(MESSAGES)


def expected(kind: str, locale: str) -> str:
    """What an operand of `kind` must look like, in `locale`."""
    texts = EXPECTED.get(kind, EXPECTED["text"])
    return texts.get(locale) or texts[DEFAULT_LOCALE]


def condition_error(where: str, rule: str, locale: str, **params: Any) -> FieldError:
    """A FieldError on the condition path `where` (e.g. "condition.and[1].value") in `locale`."""
    return CATALOG.field_error(where, rule, locale, **params)
