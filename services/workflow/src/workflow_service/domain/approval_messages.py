"""The approvals' user-facing messages (zh-CN and en) and their error constructors.

crm_runtime.DomainError
├── ValidationFailed(FieldError...)  422  a process refused at save, by path ("nodes[2].next",
│                                         "nodes[1].branches[0].when.field", "guard.field"); a task
│                                         action's input (reason, user_id, to)
├── NotFound                         404  no such process / instance / task in this tenant, or one the
│                                         caller may not see (never "exists but forbidden")
├── Forbidden                        403  managing processes without being an admin; acting on a task
│                                         of someone else on an instance one can see; withdrawing
│                                         another's submission
└── Conflict                         409  a stale expected_version; a task already handled or no longer
                                          current; a record already in approval; a taken key
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import Conflict, Forbidden, NotFound
from crm_runtime.i18n import Catalog

MESSAGES: dict[str, dict[str, str]] = {
    # ---------------------------------------------------------- the definition
    "required": {"zh-CN": "必填", "en": "Required"},
    "not_object": {"zh-CN": "应为 JSON 对象", "en": "Must be a JSON object"},
    "not_list": {"zh-CN": "应为列表", "en": "Must be a list"},
    "not_text": {"zh-CN": "应为文本", "en": "Must be text"},
    "not_boolean": {"zh-CN": "应为 true 或 false", "en": "Must be true or false"},
    "too_long": {"zh-CN": "长度不能超过 {max}", "en": "Must be at most {max} long"},
    "too_many": {"zh-CN": "最多 {max} 项", "en": "At most {max} items"},
    "unknown_key": {"zh-CN": "不认识的设置项：{key}", "en": "Unknown setting: {key}"},
    "form_not_found": {
        "zh-CN": "表单“{ref}”不存在或未发布",
        "en": "The form “{ref}” does not exist or is not published",
    },
    "unknown_field": {
        "zh-CN": "字段“{field}”不是表单“{form}”的字段",
        "en": "“{field}” is not a field of the form “{form}”",
    },
    "bad_key": {
        "zh-CN": "编码“{key}”应以小写字母开头，只含小写字母、数字和下划线（最多 64 个字符）",
        "en": "The key “{key}” must start with a lower-case letter and hold only a-z, 0-9 and _ (at most 64)",
    },
    "bad_node_id": {
        "zh-CN": "节点编号“{id}”应由字母、数字、下划线或短横线组成（最多 40 个字符）",
        "en": "The node id “{id}” must be letters, digits, _ or - (at most 40)",
    },
    "duplicate_node": {"zh-CN": "节点编号“{id}”重复", "en": "The node id “{id}” is used twice"},
    "unknown_node_type": {
        "zh-CN": "节点类型 {type} 不存在（可选：{choices}）",
        "en": "Unknown node type {type} (one of: {choices})",
    },
    "unknown_node": {
        "zh-CN": "节点“{ref}”不存在",
        "en": "There is no node “{ref}”",
    },
    "no_next": {
        "zh-CN": "节点“{id}”没有下一步（next）；流程的每条路径都应走到结束节点",
        "en": "The node “{id}” has no next step; every path of the process must reach an end node",
    },
    "end_has_next": {"zh-CN": "结束节点“{id}”不能有下一步", "en": "The end node “{id}” cannot have a next step"},
    "no_end": {
        "zh-CN": "流程中没有结束节点（type: end）",
        "en": "The process has no end node (type: end)",
    },
    "unreachable_node": {
        "zh-CN": "节点“{id}”从开始节点无法到达",
        "en": "The node “{id}” cannot be reached from the start",
    },
    "cycle": {
        "zh-CN": "节点“{id}”又指回了“{to}”：审批流程中不能有环",
        "en": "“{id}” leads back to “{to}”: an approval process cannot go round in a cycle",
    },
    "no_approver_node": {
        "zh-CN": "流程中至少要有一个审批节点（type: approver）",
        "en": "The process needs at least one approver node (type: approver)",
    },
    "empty_approvers": {
        "zh-CN": "审批节点“{id}”没有指定审批人",
        "en": "The approver node “{id}” names no approver",
    },
    "empty_cc": {"zh-CN": "抄送节点“{id}”没有指定抄送人", "en": "The CC node “{id}” names nobody to copy"},
    "unknown_approver": {
        "zh-CN": "审批人类型 {type} 不存在（可选：{choices}）",
        "en": "Unknown approver type {type} (one of: {choices})",
    },
    "unknown_choice": {
        "zh-CN": "“{value}”不是可选值（可选：{choices}）",
        "en": "“{value}” is not one of: {choices}",
    },
    "empty_branches": {
        "zh-CN": "条件节点“{id}”至少要有一个分支",
        "en": "The condition node “{id}” needs at least one branch",
    },
    "bad_duration": {
        "zh-CN": "时长“{value}”无法解析（例如 30m、24h、3d）",
        "en": "The duration “{value}” does not parse (e.g. 30m, 24h, 3d)",
    },
    "duration_range": {
        "zh-CN": "时长应在 {min} 到 {max} 之间",
        "en": "The duration must be between {min} and {max}",
    },
    "escalate_before_remind": {
        "zh-CN": "升级时间应晚于提醒时间",
        "en": "The escalation must come after the reminder",
    },
    "guard_field": {
        "zh-CN": "字段“{label}”是系统或计算字段，不能设为需审批的变更",
        "en": "The field “{label}” is a system or computed field: its changes cannot wait for approval",
    },
    # ---------------------------------------------------------- the automation action
    "approval_process_not_found": {
        "zh-CN": "审批流程“{ref}”不存在",
        "en": "There is no approval process “{ref}”",
    },
    "approval_process_form": {
        "zh-CN": "审批流程“{name}”属于另一个表单，不是本流程的表单“{form}”",
        "en": "The approval process “{name}” belongs to another form than “{form}”",
    },
    "approval_process_guard": {
        "zh-CN": "审批流程“{name}”用于字段变更审批，不能直接发起",
        "en": "The approval process “{name}” decides guarded field changes and cannot be started directly",
    },
    # ---------------------------------------------------------- the API
    "process_not_found": {"zh-CN": "审批流程不存在：{ref}", "en": "Approval process not found: {ref}"},
    "approval_not_found": {"zh-CN": "审批不存在：{ref}", "en": "Approval not found: {ref}"},
    "task_not_found": {"zh-CN": "审批任务不存在：{ref}", "en": "Approval task not found: {ref}"},
    "record_not_found": {"zh-CN": "记录不存在：{ref}", "en": "Record not found: {ref}"},
    "manage_forbidden": {
        "zh-CN": "只有管理员可以管理审批流程",
        "en": "Only an administrator may manage approval processes",
    },
    "not_assignee": {
        "zh-CN": "只有该任务的审批人或管理员可以处理它",
        "en": "Only the task's approver or an administrator may act on it",
    },
    "withdraw_forbidden": {
        "zh-CN": "只有提交人或管理员可以撤回审批",
        "en": "Only the submitter or an administrator may withdraw an approval",
    },
    "task_not_pending": {
        "zh-CN": "该审批任务已处理或已不在当前环节（{state}）",
        "en": "This task was already handled or is no longer current ({state})",
    },
    "not_pending": {
        "zh-CN": "审批已结束（{state}）",
        "en": "The approval has ended ({state})",
    },
    "already_in_approval": {
        "zh-CN": "该记录正在审批中（{name}）",
        "en": "The record is already in approval ({name})",
    },
    "process_disabled": {"zh-CN": "审批流程“{name}”已停用", "en": "The approval process “{name}” is disabled"},
    "process_form": {
        "zh-CN": "审批流程“{name}”不属于该记录的表单",
        "en": "The approval process “{name}” is not for this record's form",
    },
    "process_required": {
        "zh-CN": "请指定审批流程（该表单有 {count} 个可用的审批流程）",
        "en": "Name the approval process (this form has {count} enabled ones)",
    },
    "guard_process": {
        "zh-CN": "审批流程“{name}”用于字段变更审批，不能直接提交",
        "en": "The approval process “{name}” decides guarded field changes and cannot be submitted to",
    },
    "no_previous_node": {
        "zh-CN": "这是第一个审批环节，只能驳回给提交人",
        "en": "This is the first approval step: it can only be rejected to the submitter",
    },
    "unknown_user": {
        "zh-CN": "用户“{id}”不存在或已停用",
        "en": "The user “{id}” does not exist or is inactive",
    },
    "already_assignee": {
        "zh-CN": "用户“{id}”已是本环节的审批人",
        "en": "The user “{id}” already approves this step",
    },
    "too_many_handoffs": {
        "zh-CN": "该任务转交或加签次数过多（最多 {max} 次）",
        "en": "This task was handed on too often (at most {max} times)",
    },
    "too_many_comments": {"zh-CN": "评论过多（最多 {max} 条）", "en": "Too many comments (at most {max})"},
    "key_taken": {"zh-CN": "编码“{key}”已被另一审批流程使用", "en": "The key “{key}” is used by another process"},
    "version_conflict": {
        "zh-CN": "审批流程已被他人修改（当前版本 {current}，提交版本 {expected}），请刷新后重试",
        "en": "The process was changed by someone else (version {current}, you sent {expected}); reload and retry",
    },
    "invalid_page_size": {"zh-CN": "每页条数应在 1 到 {max} 之间", "en": "Page size must be between 1 and {max}"},
    "invalid_cursor": {"zh-CN": "分页游标无效", "en": "Invalid page cursor"},
    "invalid_json": {"zh-CN": "不是有效的 JSON：{error}", "en": "Not valid JSON: {error}"},
    # ---------------------------------------------------------- reasons the system writes
    "lock_conflict": {
        "zh-CN": "记录已被另一审批锁定（{name}）",
        "en": "The record is locked by another approval ({name})",
    },
    "record_gone": {"zh-CN": "记录已删除", "en": "The record was deleted"},
    "withdrawn_reason": {"zh-CN": "提交人撤回", "en": "Withdrawn by the submitter"},
    # ---------------------------------------------------------- notifications (titles)
    "notify_task": {"zh-CN": "待审批：{process} · {title}", "en": "To approve: {process} · {title}"},
    "notify_cc": {"zh-CN": "抄送：{process} · {title}", "en": "For your information: {process} · {title}"},
    "notify_remind": {
        "zh-CN": "催办：{process} · {title} 等待您审批",
        "en": "Reminder: {process} · {title} waits for your approval",
    },
    "notify_escalated": {
        "zh-CN": "超时升级：{process} · {title} 转由您审批",
        "en": "Escalated: {process} · {title} is now yours to approve",
    },
    "notify_approved": {"zh-CN": "审批通过：{process} · {title}", "en": "Approved: {process} · {title}"},
    "notify_rejected": {
        "zh-CN": "审批驳回：{process} · {title}（{reason}）",
        "en": "Rejected: {process} · {title} ({reason})",
    },
    "notify_withdrawn": {"zh-CN": "审批已撤回：{process} · {title}", "en": "Withdrawn: {process} · {title}"},
}

CATALOG = Catalog(MESSAGES)
message = CATALOG.message
invalid = CATALOG.invalid
field_error = CATALOG.field_error


def process_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a process outside the tenant or unknown."""
    return NotFound(message("process_not_found", locale, ref=ref), process_id=ref)


def approval_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for an instance outside the tenant, unknown, or not visible to the caller."""
    return NotFound(message("approval_not_found", locale, ref=ref), instance_id=ref)


def task_not_found(ref: str, locale: str = "zh-CN") -> NotFound:
    """404 for a task outside the tenant, unknown, or on an instance the caller may not see."""
    return NotFound(message("task_not_found", locale, ref=ref), task_id=ref)


def manage_forbidden(locale: str = "zh-CN") -> Forbidden:
    """403: managing processes is for tenant administrators."""
    return Forbidden(message("manage_forbidden", locale), rule="manage_forbidden")


def not_assignee(locale: str = "zh-CN") -> Forbidden:
    """403: the caller sees the instance but the task is someone else's."""
    return Forbidden(message("not_assignee", locale), rule="not_assignee")


def withdraw_forbidden(locale: str = "zh-CN") -> Forbidden:
    """403: only the submitter (or an admin) withdraws."""
    return Forbidden(message("withdraw_forbidden", locale), rule="withdraw_forbidden")


def task_not_pending(state: str, locale: str = "zh-CN") -> Conflict:
    """409: the task was handled (by someone, or by another action) or is no longer current."""
    return Conflict(message("task_not_pending", locale, state=state), rule="task_not_pending", state=state)


def not_pending(state: str, locale: str = "zh-CN") -> Conflict:
    """409: the instance has ended."""
    return Conflict(message("not_pending", locale, state=state), rule="not_pending", state=state)


def already_in_approval(name: str, instance_id: str, locale: str = "zh-CN") -> Conflict:
    """409: the record has an open approval."""
    return Conflict(
        message("already_in_approval", locale, name=name), rule="already_in_approval", instance_id=instance_id
    )


def version_conflict(current: int, expected: int, locale: str = "zh-CN") -> Conflict:
    """409: the process moved on since the caller read it."""
    return Conflict(message("version_conflict", locale, current=current, expected=expected), current_version=current)


def key_taken(key: str, locale: str = "zh-CN") -> Conflict:
    """409: another process of the tenant has this key."""
    return Conflict(message("key_taken", locale, key=key), rule="key_taken")


def texts(rule: str, **params: Any) -> dict[str, str]:
    """A message in both languages (stored names and reasons a reader sees in either)."""
    return {lang: message(rule, lang, **params) for lang in ("zh-CN", "en")}
