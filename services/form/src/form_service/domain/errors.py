"""Localised errors of the form engine.

The error classes are the shared tree of crm_runtime (translated to gRPC once,
by the server's interceptor)::

    DomainError
    ├── ValidationFailed([FieldError])  a definition or input broke a rule (422)
    ├── NotFound                        no such app/form/version in the tenant (404)
    ├── Conflict                        key taken, stale revision, concurrent publish (409)
    └── Forbidden                       only an admin (or a form's manager) may change apps and forms (403)

This module holds the zh-CN/en texts of the rules the form engine itself
checks (field-type rules come from crm_schema's catalogue) and small
constructors that render them in the caller's locale.
"""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from crm_runtime.i18n import Catalog

_MESSAGES: dict[str, dict[str, str]] = {
    "forbidden": {
        "zh-CN": "只有管理员（或对该表单有管理权限的用户）可以创建或修改应用和表单",
        "en": "Only an administrator (or a user who may manage the form) may create or change apps and forms",
    },
    "app_not_found": {"zh-CN": "应用不存在：{ref}", "en": "App not found: {ref}"},
    "form_not_found": {"zh-CN": "表单不存在：{ref}", "en": "Form not found: {ref}"},
    "version_not_found": {
        "zh-CN": "表单 {ref} 没有已发布的版本 {version}",
        "en": "Form {ref} has no published version {version}",
    },
    "not_published": {"zh-CN": "表单 {ref} 尚未发布", "en": "Form {ref} has not been published"},
    "template_not_found": {"zh-CN": "模板不存在：{ref}", "en": "Template not found: {ref}"},
    "app_key_taken": {"zh-CN": "应用标识 {key} 已被使用", "en": "App key {key} is already taken"},
    "form_key_taken": {"zh-CN": "表单标识 {key} 已被使用", "en": "Form key {key} is already taken"},
    "stale_revision": {
        "zh-CN": "表单已被他人修改（当前版本 {current}，你读取的是 {expected}），请刷新后重试",
        "en": "The form was changed by someone else (revision {current}, you read {expected}); reload and retry",
    },
    "publish_conflict": {
        "zh-CN": "表单正在被同时发布，请重试",
        "en": "The form was published concurrently; retry",
    },
    "invalid_json": {"zh-CN": "不是有效的 JSON：{error}", "en": "Not valid JSON: {error}"},
    "not_object": {"zh-CN": "必须是 JSON 对象", "en": "Must be a JSON object"},
    "fields_not_list": {"zh-CN": "字段列表必须是数组", "en": "Fields must be a list"},
    "field_not_object": {"zh-CN": "字段定义必须是对象", "en": "A field definition must be an object"},
    "name_required": {"zh-CN": "名称不能为空", "en": "A name is required"},
    "invalid_key": {
        "zh-CN": "标识 {key} 无效：须以小写字母开头，只含小写字母、数字和下划线，最长 63 位",
        "en": "Key {key} is invalid: a lower-case letter, then lower-case letters, digits or _, at most 63",
    },
    "type_immutable": {
        "zh-CN": "字段 {field} 已发布为 {old} 类型，不能改为 {new}；请删除后新增一个字段",
        "en": "Field {field} was published as {old} and cannot become {new}; remove it and add a new field",
    },
    "title_field_unknown": {
        "zh-CN": "标题字段 {field} 不在字段列表中",
        "en": "Title field {field} is not one of the form's fields",
    },
    "relation_target_missing": {
        "zh-CN": "字段 {field} 关联的表单 {target} 不存在",
        "en": "Field {field} relates to form {target}, which does not exist",
    },
    "rollup_target_missing": {
        "zh-CN": "字段 {field} 汇总的表单 {target} 不存在",
        "en": "Field {field} rolls up form {target}, which does not exist",
    },
    "rollup_relation_invalid": {
        "zh-CN": "字段 {field}：表单 {target} 的 {relation} 不是指向本表单的关联字段",
        "en": "Field {field}: {relation} of form {target} is not a relation to this form",
    },
    "rollup_field_missing": {
        "zh-CN": "字段 {field}：表单 {target} 没有字段 {source}",
        "en": "Field {field}: form {target} has no field {source}",
    },
}


_CATALOG = Catalog(_MESSAGES)


def message(rule: str, locale: str, **params: Any) -> str:
    """The text of `rule` in `locale` (zh-CN when the locale is unknown)."""
    return _CATALOG.message(rule, locale, **params)


def field_error(path: str, rule: str, locale: str, /, **params: Any) -> FieldError:
    """A FieldError on the field at `path` whose message is rendered in `locale`."""
    return _CATALOG.field_error(path, rule, locale, **params)


def invalid(path: str, rule: str, locale: str, /, **params: Any) -> ValidationFailed:
    """A ValidationFailed with one field error."""
    return _CATALOG.invalid(path, rule, locale, **params)


def forbidden(locale: str) -> Forbidden:
    """The caller is not an administrator."""
    return Forbidden(message("forbidden", locale))


def not_found(rule: str, locale: str, **params: Any) -> NotFound:
    """A localised NotFound."""
    return NotFound(message(rule, locale, **params), rule=rule)


def conflict(rule: str, locale: str, **params: Any) -> Conflict:
    """A localised Conflict."""
    return Conflict(message(rule, locale, **params), rule=rule, **params)
