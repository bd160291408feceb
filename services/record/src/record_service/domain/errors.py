"""The record service's user-facing error messages (zh-CN and en) and error constructors.

    crm_runtime.DomainError
    ├── ValidationFailed(FieldError...)  422  bad data, filter, sort, cursor, version missing, merge choices,
    │                                         file type
    ├── NotFound                         404  no such record/form/attachment for this tenant *and scope*
    ├── Forbidden                        403  a visible record (or a form) the caller may not act on
    ├── Conflict                         409  stale version, unique value taken, merged record restored,
    │                                         merge across forms or of a changed record
    ├── PayloadTooLarge                  413  a file over the global or the field's limit
    └── Unavailable                      503  the form service did not answer (forms/grpc_source.py)

Records outside the caller's tenant or data scope are reported as NotFound,
never Forbidden, so that their existence does not leak; Forbidden names the
action refused on something the caller can see (domain/access.py).
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import Conflict, NotFound, PayloadTooLarge
from crm_runtime.i18n import Catalog

MESSAGES: dict[str, dict[str, str]] = {
    "record_not_found": {"zh-CN": "记录不存在：{ref}", "en": "Record not found: {ref}"},
    "form_not_found": {"zh-CN": "表单不存在或未发布：{ref}", "en": "Form not found or not published: {ref}"},
    "version_conflict": {
        "zh-CN": "记录已被他人修改（当前版本 {current}，提交版本 {expected}），请刷新后重试",
        "en": "The record was changed by someone else (version {current}, you sent {expected}); reload and retry",
    },
    "unique_conflict": {
        "zh-CN": "{label}“{value}”已存在（{display}）",
        "en": "{label} '{value}' already exists ({display})",
    },
    "unique_in_batch": {
        "zh-CN": "{label}“{value}”与第 {other} 行重复",
        "en": "{label} '{value}' repeats row {other}",
    },
    "required": {"zh-CN": "必填", "en": "Required"},
    "invalid_json": {"zh-CN": "不是有效的 JSON：{error}", "en": "Not valid JSON: {error}"},
    "not_object": {"zh-CN": "应为 JSON 对象", "en": "Must be a JSON object"},
    "not_array": {"zh-CN": "应为 JSON 数组", "en": "Must be a JSON array"},
    "too_many_rows": {"zh-CN": "一次最多 {max} 行，收到 {count} 行", "en": "At most {max} rows per call, got {count}"},
    "empty_batch": {"zh-CN": "没有要创建的记录", "en": "No records to create"},
    "unknown_field": {"zh-CN": "未知字段：{field}", "en": "Unknown field: {field}"},
    "unknown_operator": {"zh-CN": "不支持的运算符：{op}", "en": "Unsupported operator: {op}"},
    "invalid_filter": {"zh-CN": "筛选条件格式错误", "en": "Malformed filter"},
    "invalid_value": {"zh-CN": "筛选值无效：{error}", "en": "Invalid filter value: {error}"},
    "not_sortable": {"zh-CN": "不能按此字段排序：{field}", "en": "Cannot sort by this field: {field}"},
    "sort_too_large": {
        "zh-CN": "按 {field} 排序需要更少的记录：约 {estimate} 条匹配，最多 {max} 条；"
        "请添加筛选条件，或按创建时间、日期或数字字段排序",
        "en": "Sorting by {field} needs fewer records: about {estimate} match, at most {max}; add a filter, or sort by "
        "the creation time or a date or number field",
    },
    "invalid_cursor": {"zh-CN": "分页游标无效", "en": "Invalid page cursor"},
    "invalid_page_size": {"zh-CN": "每页条数应在 1 到 {max} 之间", "en": "Page size must be between 1 and {max}"},
    "not_deleted": {"zh-CN": "记录未被删除", "en": "The record is not deleted"},
    "unique_conflict_hidden": {
        "zh-CN": "{label}“{value}”已存在",
        "en": "{label} '{value}' already exists",
    },
    "owner_invalid": {
        "zh-CN": "负责人 {owner} 不存在或已停用",
        "en": "The owner {owner} does not exist or is inactive",
    },
    "merged_away": {
        "zh-CN": "记录已合并到 {winner}，不能恢复",
        "en": "The record was merged into {winner} and cannot be restored",
    },
    "share_target_invalid": {
        "zh-CN": "共享对象 {target} 不存在或已停用",
        "en": "The share target {target} does not exist or is inactive",
    },
    "share_kind_invalid": {
        "zh-CN": "共享对象类型应为用户或部门",
        "en": "The share target must be a user or a department",
    },
    "share_access_invalid": {"zh-CN": "共享权限应为只读或编辑", "en": "The share access must be read or edit"},
    "unknown_action": {"zh-CN": "未知操作：{action}", "en": "Unknown action: {action}"},
    "invalid_limit": {"zh-CN": "数量应在 1 到 {max} 之间", "en": "Must be between 1 and {max}"},
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
    "not_mergeable": {"zh-CN": "计算字段不能选择来源：{field}", "en": "A computed field has no source: {field}"},
    "attachment_not_found": {"zh-CN": "文件不存在：{ref}", "en": "File not found: {ref}"},
    "file_required": {"zh-CN": "文件内容为空", "en": "The file is empty"},
    "record_locked": {
        "zh-CN": "记录正在审批中（{name}），审批结束前不能修改",
        "en": "The record is in approval ({name}) and cannot be changed until it ends",
    },
    "change_pending": {
        "zh-CN": "字段 {fields} 的修改正在等待审批",
        "en": "A change of {fields} is waiting for approval",
    },
    "no_pending_change": {
        "zh-CN": "没有等待审批的修改：{id}",
        "en": "No change waiting for approval: {id}",
    },
    "pool_not_found": {"zh-CN": "公海池不存在：{ref}", "en": "Public pool not found: {ref}"},
    "pool_other_form": {
        "zh-CN": "公海池“{pool}”不属于这条记录的表单",
        "en": "The pool “{pool}” is not a pool of this record's form",
    },
    "pool_not_member": {"zh-CN": "你不是公海池“{pool}”的成员", "en": "You are not a member of the pool “{pool}”"},
    "pool_not_admin": {
        "zh-CN": "只有公海池“{pool}”的管理员可以分配",
        "en": "Only an administrator of the pool “{pool}” may assign",
    },
    "pool_cooldown": {
        "zh-CN": "你刚把这条记录退回公海，{until} 之后才能再次领取",
        "en": "You returned this record to the pool recently; you may claim it again after {until}",
    },
    "pool_cap_user": {
        "zh-CN": "名下记录已达上限 {max} 条，不能再领取或分配",
        "en": "The owner already has the most records allowed ({max})",
    },
    "pool_cap_department": {
        "zh-CN": "该部门名下记录已达上限 {max} 条",
        "en": "The department already has the most records allowed ({max})",
    },
    "pool_cap_daily": {
        "zh-CN": "今天的领取次数已达上限 {max} 次",
        "en": "You have claimed the most records allowed today ({max})",
    },
    "service_only": {"zh-CN": "只有平台服务可以执行此操作", "en": "Only a platform service may do this"},
    "idempotency_key_too_long": {
        "zh-CN": "幂等键长度不能超过 {max_length}",
        "en": "The idempotency key must be at most {max_length} long",
    },
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


def record_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a record that does not exist, or not for this tenant/scope."""
    return NotFound(message("record_not_found", locale, ref=ref), record_id=ref)


def form_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a form that does not exist or has no published version."""
    return NotFound(message("form_not_found", locale, ref=ref), form_id=ref)


def version_conflict(record_id: str, current: int, expected: int, locale: str = "zh-CN") -> Conflict:
    """409 for a stale expected_version."""
    return Conflict(
        message("version_conflict", locale, current=current, expected=expected),
        reason="version_conflict",
        record_id=record_id,
        current_version=current,
        expected_version=expected,
    )


def merged_away(record_id: str, winner_id: str, locale: str = "zh-CN") -> Conflict:
    """409 for restoring a record that a merge folded into another one."""
    return Conflict(
        message("merged_away", locale, winner=winner_id),
        reason="merged_away",
        record_id=record_id,
        merged_into=winner_id,
    )


def unique_conflict(
    field: str, label: str, value: Any, existing_id: str, display: str, locale: str = "zh-CN", row: int | None = None
) -> Conflict:
    """409 naming the field and, when the caller may see it (`existing_id` given), the record holding the value."""
    name = f"rows[{row}].{field}" if row is not None else field
    if not existing_id:
        text = message("unique_conflict_hidden", locale, label=label, value=value)
        return Conflict(
            text, reason="unique_conflict", field=name, errors=[{"field": name, "rule": "unique", "message": text}]
        )
    text = message("unique_conflict", locale, label=label, value=value, display=display or existing_id)
    return Conflict(
        text,
        reason="unique_conflict",
        field=name,
        errors=[{"field": name, "rule": "unique", "message": text}],
        existing_record={"id": existing_id, "display": display or existing_id},
    )


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
