"""User-facing messages of the extras (zh-CN default, en) and their error constructors.

crm_runtime.DomainError
├── ValidationFailed  422  bad merge choices, same record twice, unknown field, file type
├── NotFound          404  record (tenant/visibility), attachment (tenant, no visible record holds it)
├── Forbidden         403  merge without edit/delete (raised by domain/access.py)
├── Conflict          409  merge across forms or of a changed record
└── PayloadTooLarge   413  file over the global or the field's limit
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import Conflict, NotFound, PayloadTooLarge
from crm_runtime.i18n import Catalog

MESSAGES: dict[str, dict[str, str]] = {
    "required": {"zh-CN": "必填", "en": "Required"},
    "invalid_limit": {"zh-CN": "数量应在 1 到 {max} 之间", "en": "Must be between 1 and {max}"},
    "not_object": {"zh-CN": "应为 JSON 对象", "en": "Must be a JSON object"},
    "form_mismatch": {
        "zh-CN": "记录不属于表单 {form}",
        "en": "The record does not belong to the form {form}",
    },
    "same_record": {"zh-CN": "不能把记录与自身合并", "en": "A record cannot be merged with itself"},
    "different_forms": {
        "zh-CN": "只能合并同一表单的记录",
        "en": "Only records of the same form can be merged",
    },
    "merge_changed": {
        "zh-CN": "合并期间记录已被修改，请刷新后重试",
        "en": "A record changed while merging; reload and retry",
    },
    "invalid_choice": {
        "zh-CN": "取值应为 winner 或 loser",
        "en": "Must be winner or loser",
    },
    "unknown_field": {"zh-CN": "未知字段：{field}", "en": "Unknown field: {field}"},
    "not_mergeable": {"zh-CN": "计算字段不能选择来源：{field}", "en": "A computed field has no source: {field}"},
    "attachment_not_found": {"zh-CN": "文件不存在：{ref}", "en": "File not found: {ref}"},
    "file_required": {"zh-CN": "文件内容为空", "en": "The file is empty"},
    "file_too_large_global": {
        "zh-CN": "文件「{name}」超过 {max_mb} MiB 的上限",
        "en": "The file {name} is larger than {max_mb} MiB",
    },
    "not_attachment_field": {
        "zh-CN": "字段 {field} 不是附件或图片字段",
        "en": "The field {field} is not an attachment or image field",
    },
    "content_mismatch": {
        "zh-CN": "文件「{name}」的内容（{detected}）与声明的类型 {content_type} 不符",
        "en": "The content of {name} ({detected}) does not match its declared type {content_type}",
    },
}


_CATALOG = Catalog(MESSAGES)
message = _CATALOG.message
invalid = _CATALOG.invalid


def attachment_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for an attachment that does not exist or belongs to another tenant."""
    return NotFound(message("attachment_not_found", locale, ref=ref), attachment_id=ref)


def too_large(where: str, text: str, max_size: int, size: int, rule: str = "file_too_large") -> PayloadTooLarge:
    """413 naming the limit; `errors` lets the UI show it on the field."""
    return PayloadTooLarge(
        text,
        max_size=max_size,
        size=size,
        errors=[{"field": where, "rule": rule, "message": text, "params": {"max_size": max_size, "size": size}}],
    )


def merge_conflict(rule: str, locale: str = "zh-CN", **extra: Any) -> Conflict:
    """409 for a merge that cannot happen as asked."""
    return Conflict(message(rule, locale), reason=rule, **extra)
