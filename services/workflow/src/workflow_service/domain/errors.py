"""The workflow service's user-facing messages (zh-CN and en) and error constructors.

    crm_runtime.DomainError
    ├── ValidationFailed(FieldError...)  422  a definition refused at save: the part that is wrong, by path
    │                                         ("trigger.cron", "actions[1].form", "actions[0].values.title"),
    │                                         or a malformed request (page size, cursor, JSON)
    ├── NotFound                         404  no such automation / dead letter / notification in this tenant
    ├── Forbidden                        403  managing automations or dead letters without the right
    └── Conflict                         409  a stale expected_version; a dead letter already replayed

Conditions have their own rules and texts (domain/messages.py).
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import Conflict, Forbidden, NotFound
from crm_runtime.i18n import Catalog

MESSAGES: dict[str, dict[str, str]] = {
    "required": {"zh-CN": "必填", "en": "Required"},
    "not_object": {"zh-CN": "应为 JSON 对象", "en": "Must be a JSON object"},
    "not_list": {"zh-CN": "应为列表", "en": "Must be a list"},
    "not_text": {"zh-CN": "应为文本", "en": "Must be text"},
    "not_boolean": {"zh-CN": "应为 true 或 false", "en": "Must be true or false"},
    "invalid_json": {"zh-CN": "不是有效的 JSON：{error}", "en": "Not valid JSON: {error}"},
    "too_long": {"zh-CN": "长度不能超过 {max}", "en": "Must be at most {max} long"},
    "too_many": {"zh-CN": "最多 {max} 项", "en": "At most {max} items"},
    "unknown_key": {"zh-CN": "不认识的设置项：{key}", "en": "Unknown setting: {key}"},
    "form_not_found": {
        "zh-CN": "表单“{ref}”不存在或未发布",
        "en": "The form “{ref}” does not exist or is not published",
    },
    "unknown_trigger": {
        "zh-CN": "触发方式 {type} 不存在（可选：{choices}）",
        "en": "Unknown trigger {type} (one of: {choices})",
    },
    "unknown_action": {
        "zh-CN": "动作类型 {type} 不存在（可选：{choices}）",
        "en": "Unknown action {type} (one of: {choices})",
    },
    "unknown_field": {
        "zh-CN": "字段“{field}”不是表单“{form}”的字段",
        "en": "“{field}” is not a field of the form “{form}”",
    },
    "field_type": {
        "zh-CN": "字段“{label}”应为{expected}字段",
        "en": "The field “{label}” must be a {expected} field",
    },
    "from_to_one_field": {
        "zh-CN": "指定“从/变为”取值时只能选择一个字段",
        "en": "“from”/“to” values need exactly one field",
    },
    "bad_cron": {
        "zh-CN": "定时表达式“{cron}”无法解析（格式：分 时 日 月 周，例如 0 9 * * 1）",
        "en": "The schedule “{cron}” does not parse (minute hour day month weekday, e.g. 0 9 * * 1)",
    },
    "bad_time_zone": {"zh-CN": "时区“{tz}”不存在", "en": "Unknown time zone “{tz}”"},
    "bad_duration": {
        "zh-CN": "时长“{value}”无法解析（例如 30m、1h、3d，提前用负号：-1h）",
        "en": "The duration “{value}” does not parse (e.g. 30m, 1h, 3d; before: -1h)",
    },
    "duration_range": {
        "zh-CN": "时长应在 {min} 到 {max} 之间",
        "en": "The duration must be between {min} and {max}",
    },
    "event_only_condition": {
        "zh-CN": "定时或超时触发的条件不能使用“变更”类运算符（{op}）",
        "en": "A scheduled or inactivity trigger's condition cannot use a change operator ({op})",
    },
    "template_field": {
        "zh-CN": "模板中的“{{{name}}}”不是表单“{form}”的字段",
        "en": "“{{{name}}}” in the template is not a field of the form “{form}”",
    },
    "template_syntax": {
        "zh-CN": "模板格式错误：{error}",
        "en": "Malformed template: {error}",
    },
    "relation_field": {
        "zh-CN": "“{field}”不是表单“{form}”的关联字段",
        "en": "“{field}” is not a relation field of the form “{form}”",
    },
    "relation_target": {
        "zh-CN": "关联字段“{field}”关联的不是表单“{target}”",
        "en": "The relation “{field}” does not point to the form “{target}”",
    },
    "unknown_strategy": {
        "zh-CN": "分配方式 {strategy} 不存在（可选：{choices}）",
        "en": "Unknown assignment strategy {strategy} (one of: {choices})",
    },
    "no_candidates": {
        "zh-CN": "请指定分配给哪些人（users、department 或 role）",
        "en": "Name whom to assign to (users, department or role)",
    },
    "unknown_recipient": {
        "zh-CN": "接收人类型 {type} 不存在（可选：{choices}）",
        "en": "Unknown recipient {type} (one of: {choices})",
    },
    "unknown_channel": {
        "zh-CN": "通知渠道 {channel} 不存在（可选：{choices}）",
        "en": "Unknown channel {channel} (one of: {choices})",
    },
    "bad_url": {
        "zh-CN": "地址应以 http:// 或 https:// 开头",
        "en": "The URL must start with http:// or https://",
    },
    "automation_not_found": {"zh-CN": "自动化流程不存在：{ref}", "en": "Automation not found: {ref}"},
    "dead_letter_not_found": {"zh-CN": "失败记录不存在：{ref}", "en": "Dead letter not found: {ref}"},
    "dead_letter_replayed": {
        "zh-CN": "该失败记录已重放过（{at}）",
        "en": "This dead letter was already replayed ({at})",
    },
    "version_conflict": {
        "zh-CN": "流程已被他人修改（当前版本 {current}，提交版本 {expected}），请刷新后重试",
        "en": "The automation was changed by someone else (version {current}, you sent {expected}); reload and retry",
    },
    "manage_forbidden": {
        "zh-CN": "只有管理员可以管理自动化流程",
        "en": "Only an administrator may manage automations",
    },
    "invalid_page_size": {"zh-CN": "每页条数应在 1 到 {max} 之间", "en": "Page size must be between 1 and {max}"},
    "invalid_cursor": {"zh-CN": "分页游标无效", "en": "Invalid page cursor"},
    "template_not_found": {"zh-CN": "流程模板不存在：{ref}", "en": "Workflow template not found: {ref}"},
    "unknown_user": {"zh-CN": "用户不存在或已停用：{ref}", "en": "No such active user: {ref}"},
    "handover_target": {
        "zh-CN": "请指定接手的用户（to_user_id）或退回的公海池（pool_id），二选一",
        "en": "Name either the user who takes over (to_user_id) or a pool (pool_id), not both",
    },
    "job_not_found": {"zh-CN": "交接任务不存在：{ref}", "en": "Handover job not found: {ref}"},
    "not_manual": {
        "zh-CN": "这个流程不是可手动执行的按钮，或已停用",
        "en": "This automation is not a manual one, or it is switched off",
    },
    "record_not_found": {"zh-CN": "记录不存在：{ref}", "en": "Record not found: {ref}"},
    "pool_not_found": {"zh-CN": "公海池不存在：{ref}", "en": "Public pool not found: {ref}"},
    "pool_warning": {
        "zh-CN": "“{name}”{days} 天后将被收回“{pool}”，请尽快跟进",
        "en": "“{name}” goes back to “{pool}” in {days} days unless it is followed up",
    },
    "pool_recycled": {
        "zh-CN": "“{name}”{days} 天无跟进，已被收回“{pool}”",
        "en": "“{name}” went back to “{pool}” after {days} days without follow-up",
    },
    "pool_recycled_reason": {"zh-CN": "{days} 天无跟进，自动收回公海", "en": "No follow-up for {days} days"},
    # run-log texts (what an admin reads in a run)
    "channel_not_configured": {
        "zh-CN": "通知渠道“{channel}”未配置",
        "en": "channel not configured: {channel}",
    },
    "loop_cut": {
        "zh-CN": "流程链深度达到上限 {max}，为避免循环已停止",
        "en": "Cut at automation depth {max} to stop a loop",
    },
}

_CATALOG = Catalog(MESSAGES)
message = _CATALOG.message
invalid = _CATALOG.invalid
field_error = _CATALOG.field_error


def job_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a handover job outside the tenant or unknown."""
    return NotFound(message("job_not_found", locale, ref=ref), job_id=ref)


def record_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a record the caller cannot see."""
    return NotFound(message("record_not_found", locale, ref=ref), record_id=ref)


def pool_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a pool outside the tenant or unknown."""
    return NotFound(message("pool_not_found", locale, ref=ref), pool_id=ref)


def automation_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for an automation outside the tenant or unknown."""
    return NotFound(message("automation_not_found", locale, ref=ref), automation_id=ref)


def dead_letter_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a dead letter outside the tenant or unknown."""
    return NotFound(message("dead_letter_not_found", locale, ref=ref), dead_letter_id=ref)


def version_conflict(current: int, expected: int, locale: str = "zh-CN") -> Conflict:
    """409: the automation moved on since the caller read it."""
    return Conflict(
        message("version_conflict", locale, current=current, expected=expected),
        current_version=current,
    )


def already_replayed(at: Any, locale: str = "zh-CN") -> Conflict:
    """409: a dead letter is replayed once."""
    text = at.isoformat(timespec="seconds") if hasattr(at, "isoformat") else str(at)
    return Conflict(message("dead_letter_replayed", locale, at=text), rule="dead_letter_replayed")


def manage_forbidden(locale: str = "zh-CN") -> Forbidden:
    """403: managing automations needs the tenant administrator."""
    return Forbidden(message("manage_forbidden", locale), rule="manage_forbidden")
