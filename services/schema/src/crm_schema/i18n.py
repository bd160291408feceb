"""The message catalogue: one text per rule (and per format kind) in zh-CN and en.

`message(rule, locale, **params)` fills `{name}` placeholders from params; a
param that is itself a {"zh-CN", "en"} dict (a field label) is shown in the
caller's language, and a missing param renders as an empty string so a message
never fails to build.
"""

from __future__ import annotations

import string
from typing import Any

from crm_schema._text import localised

DEFAULT_LOCALE = "zh-CN"
LOCALES = ("zh-CN", "en")

_CATALOGUE: dict[str, dict[str, str]] = {
    # value rules
    "required": {"zh-CN": "「{label}」为必填项", "en": "{label} is required"},
    "type": {"zh-CN": "「{label}」的值类型不正确，应为{type_label}", "en": "{label} must be a {type_label} value"},
    "min": {"zh-CN": "「{label}」不能小于 {min}", "en": "{label} must be at least {min}"},
    "max": {"zh-CN": "「{label}」不能大于 {max}", "en": "{label} must be at most {max}"},
    "min_length": {
        "zh-CN": "「{label}」长度不能少于 {min_length}",
        "en": "{label} must be at least {min_length} long",
    },
    "max_length": {
        "zh-CN": "「{label}」长度不能超过 {max_length}",
        "en": "{label} must be at most {max_length} long",
    },
    "number_range": {
        "zh-CN": "「{label}」超出允许范围：须在 {min} 到 {max} 之间（整数部分最多 15 位）",
        "en": "{label} is out of range: it must be between {min} and {max} (at most 15 digits before the point)",
    },
    "date_range": {
        "zh-CN": "「{label}」超出支持的日期范围（{min} 至 {max}，按 UTC 计）",
        "en": "{label} is outside the supported dates ({min} to {max}, in UTC)",
    },
    "regex": {"zh-CN": "「{label}」的格式不符合要求", "en": "{label} does not match the required pattern"},
    "option": {"zh-CN": "「{label}」的值「{value}」不是可选项", "en": "{value} is not an option of {label}"},
    "format": {"zh-CN": "「{label}」的格式不正确", "en": "{label} is not in a valid format"},
    "format.mobile": {
        "zh-CN": "「{label}」不是有效的中国大陆手机号",
        "en": "{label} is not a valid mainland China mobile number",
    },
    "format.phone": {"zh-CN": "「{label}」不是有效的电话号码", "en": "{label} is not a valid phone number"},
    "format.email": {"zh-CN": "「{label}」不是有效的邮箱地址", "en": "{label} is not a valid email address"},
    "format.url": {"zh-CN": "「{label}」不是有效的网址", "en": "{label} is not a valid web address"},
    "format.date": {
        "zh-CN": "「{label}」不是有效的日期（例如 2024-05-01）",
        "en": "{label} is not a valid date (e.g. 2024-05-01)",
    },
    "format.datetime": {
        "zh-CN": "「{label}」不是有效的日期时间（例如 2024-05-01 09:30）",
        "en": "{label} is not a valid date and time (e.g. 2024-05-01 09:30)",
    },
    "format.time": {
        "zh-CN": "「{label}」不是有效的时间（例如 09:30）",
        "en": "{label} is not a valid time (e.g. 09:30)",
    },
    "format.number": {"zh-CN": "「{label}」不是有效的数字", "en": "{label} is not a valid number"},
    "format.integer": {"zh-CN": "「{label}」必须是整数", "en": "{label} must be a whole number"},
    "format.money": {"zh-CN": "「{label}」不是有效的金额", "en": "{label} is not a valid amount of money"},
    "format.boolean": {"zh-CN": "「{label}」必须是“是”或“否”", "en": "{label} must be yes or no"},
    "format.province": {
        "zh-CN": "「{label}」的省份「{value}」不是有效的省级行政区",
        "en": "{value} in {label} is not a provincial-level division of China",
    },
    "format.city": {"zh-CN": "「{label}」的城市必须是非空文本", "en": "The city of {label} must be non-empty text"},
    "format.region": {
        "zh-CN": "「{label}」必须包含省份，可选城市",
        "en": "{label} must name a province and optionally a city",
    },
    "format.address": {"zh-CN": "「{label}」不是有效的地址", "en": "{label} is not a valid address"},
    "format.geo_point": {
        "zh-CN": "「{label}」的经纬度无效（经度 -180~180，纬度 -90~90）",
        "en": "{label} is not a valid location (longitude -180..180, latitude -90..90)",
    },
    "format.id_card": {
        "zh-CN": "「{label}」不是有效的18位居民身份证号码",
        "en": "{label} is not a valid 18-digit resident identity card number",
    },
    "format.uscc": {
        "zh-CN": "「{label}」不是有效的统一社会信用代码",
        "en": "{label} is not a valid unified social credit code",
    },
    "format.color": {
        "zh-CN": "「{label}」不是有效的颜色（例如 #1677ff）",
        "en": "{label} is not a valid colour (e.g. #1677ff)",
    },
    "format.id": {"zh-CN": "「{label}」包含无效的编号", "en": "{label} contains an invalid id"},
    "format.rating": {
        "zh-CN": "「{label}」必须是 1 到 {max} 之间的整数",
        "en": "{label} must be a whole number from 1 to {max}",
    },
    "format.row": {"zh-CN": "「{label}」的每一行必须是对象", "en": "Each row of {label} must be an object"},
    "checksum": {"zh-CN": "「{label}」的校验码不正确", "en": "{label} has a wrong check digit"},
    "checksum.birth_date": {
        "zh-CN": "「{label}」中的出生日期无效",
        "en": "{label} contains an invalid birth date",
    },
    "unknown_field": {"zh-CN": "「{label}」不是该表单的字段", "en": "{label} is not a field of this form"},
    "read_only": {"zh-CN": "「{label}」是只读字段，不能修改", "en": "{label} is read-only"},
    "system_field": {
        "zh-CN": "「{label}」是系统字段，不能在数据中填写",
        "en": "{label} is a system field and cannot be set",
    },
    "operator": {
        "zh-CN": "「{label}」的值包含不允许的运算符或键名",
        "en": "{label} contains a forbidden operator or key",
    },
    "relation_not_found": {
        "zh-CN": "「{label}」关联的记录不存在：{ids}",
        "en": "{label} refers to records that do not exist: {ids}",
    },
    "attachment_not_found": {
        "zh-CN": "「{label}」引用的文件不存在：{ids}",
        "en": "{label} refers to files that do not exist: {ids}",
    },
    "file_too_large": {
        "zh-CN": "「{label}」中的文件「{name}」超过大小限制 {max_size} 字节",
        "en": "The file {name} in {label} is larger than {max_size} bytes",
    },
    "file_type": {
        "zh-CN": "「{label}」不接受文件「{name}」的类型 {content_type}",
        "en": "{label} does not accept the file {name} of type {content_type}",
    },
    "too_many_files": {
        "zh-CN": "「{label}」最多只能上传 {max_files} 个文件",
        "en": "{label} takes at most {max_files} files",
    },
    "filter_too_deep": {
        "zh-CN": "筛选条件嵌套过深（最多 {max} 层）",
        "en": "The filter is nested too deeply (at most {max} levels)",
    },
    "filter_too_wide": {
        "zh-CN": "一组筛选条件最多包含 {max} 项",
        "en": "A filter group may hold at most {max} conditions",
    },
    "filter_too_large": {
        "zh-CN": "筛选条件总数不能超过 {max} 个",
        "en": "A filter may hold at most {max} conditions in all",
    },
    "filter_too_many_values": {
        "zh-CN": "一个筛选条件最多包含 {max} 个值",
        "en": "A filter condition may list at most {max} values",
    },
    "filter_operator": {
        "zh-CN": "「{label}」不支持筛选条件「{op}」",
        "en": "{label} cannot be filtered with {op}",
    },
    # definition rules (form designer)
    "invalid_key": {
        "zh-CN": "字段标识「{key}」无效：须以小写字母开头，只含小写字母、数字和下划线，最长 63 位",
        "en": "The field key {key} is invalid: a lower-case letter, then lower-case letters, digits or _, "
        "at most 63 long",
    },
    "reserved_key": {
        "zh-CN": "字段标识「{key}」是系统保留名",
        "en": "The field key {key} is reserved by the system",
    },
    "duplicate_key": {"zh-CN": "字段标识「{key}」重复", "en": "The field key {key} is used twice"},
    "unknown_type": {
        "zh-CN": "字段「{key}」的类型「{type}」不存在",
        "en": "The field {key} has an unknown type {type}",
    },
    "invalid_label": {
        "zh-CN": "字段「{key}」缺少名称（中文或英文）",
        "en": "The field {key} needs a label (Chinese or English)",
    },
    "invalid_property": {
        "zh-CN": "字段「{label}」的属性「{property}」无效：{reason}",
        "en": "The property {property} of the field {label} is invalid: {reason}",
    },
    "unsupported_property": {
        "zh-CN": "字段「{label}」的类型不支持属性「{property}」",
        "en": "The field {label} does not support the property {property}",
    },
    "missing_options": {
        "zh-CN": "字段「{label}」至少需要一个选项",
        "en": "The field {label} needs at least one option",
    },
    "duplicate_option": {
        "zh-CN": "字段「{label}」的选项值「{value}」重复",
        "en": "The field {label} has the option value {value} twice",
    },
    "invalid_default": {
        "zh-CN": "字段「{label}」的默认值无效：{reason}",
        "en": "The default value of the field {label} is invalid: {reason}",
    },
    "unknown_reference": {
        "zh-CN": "字段「{label}」引用了不存在的字段「{ref}」",
        "en": "The field {label} refers to the unknown field {ref}",
    },
    "self_reference": {"zh-CN": "字段「{label}」不能引用自身", "en": "The field {label} cannot refer to itself"},
    "formula_cycle": {
        "zh-CN": "公式字段之间存在循环引用：{cycle}",
        "en": "Formula fields refer to each other in a cycle: {cycle}",
    },
    "formula_syntax": {
        "zh-CN": "字段「{label}」的公式无效：{reason}",
        "en": "The formula of the field {label} is invalid: {reason}",
    },
    "invalid_pattern": {
        "zh-CN": "字段「{label}」的编号规则无效，须包含序号占位如 {{0000}}",
        "en": "The numbering pattern of the field {label} is invalid; it needs a sequence such as {{0000}}",
    },
    "nested_sub_table": {
        "zh-CN": "子表「{label}」中不能再包含子表或系统字段",
        "en": "The sub-table {label} cannot contain another sub-table or system fields",
    },
    "invalid_fields": {"zh-CN": "字段列表必须是对象数组", "en": "The field list must be a list of objects"},
}

_TYPE_LABELS_FALLBACK = {"zh-CN": "正确类型", "en": "valid"}


class _Blank(dict[str, Any]):
    """format_map mapping that renders unknown placeholders as empty text."""

    def __missing__(self, key: str) -> str:
        return ""


def _show(value: Any, locale: str) -> str:
    if isinstance(value, dict):
        return localised(value, locale)
    if isinstance(value, list | tuple | set):
        sep = "、" if locale == "zh-CN" else ", "
        return sep.join(_show(v, locale) for v in value)
    if value is None:
        return ""
    return str(value)


def message(rule: str, locale: str, **params: Any) -> str:
    """The user-facing text of `rule` in `locale` ("zh-CN" default, "en").

    `kind` selects a finer text ("format" + kind "mobile" -> "format.mobile");
    `field_type` adds `type_label`, the type's name in `locale`.
    """
    lang = locale if locale in LOCALES else DEFAULT_LOCALE
    kind = params.get("kind")
    entry = (_CATALOGUE.get(f"{rule}.{kind}") if kind else None) or _CATALOGUE.get(rule)
    if entry is None:
        entry = {"zh-CN": "「{label}」校验失败（{rule}）", "en": "{label} failed the rule {rule}"}
    shown = _Blank({k: _show(v, lang) for k, v in params.items()})
    shown.setdefault("rule", rule)
    if "field_type" in params and "type_label" not in params:
        from crm_schema.registry import FIELD_TYPES

        ftype = FIELD_TYPES.get(str(params["field_type"]))
        shown["type_label"] = localised(ftype.label, lang) if ftype else _TYPE_LABELS_FALLBACK[lang]
    if not shown.get("label"):
        shown["label"] = shown.get("key") or shown.get("field") or ""
    return string.Formatter().vformat(entry[lang], (), shown)


def known_rules() -> list[str]:
    """Every catalogue entry name (for tests and documentation)."""
    return sorted(_CATALOGUE)
