"""The gateway's own user-facing messages in zh-CN (default) and en.

Services localise their own messages from the principal's locale; this table
covers what the gateway says itself (authentication, routing, limits, input).
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

LOCALES = ("zh-CN", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "bad_request": {
        "zh-CN": "请求格式错误：请求体无法解析（例如 JSON 不合法）",
        "en": "Malformed request: the body could not be parsed (e.g. invalid JSON)",
    },
    "unauthenticated": {
        "zh-CN": "未登录或登录已过期，请重新登录",
        "en": "Not signed in, or the session has expired; please sign in again",
    },
    "invalid_credentials": {"zh-CN": "用户名或密码错误", "en": "Wrong username or password"},
    "invalid_refresh_token": {
        "zh-CN": "刷新令牌无效或已过期，请重新登录",
        "en": "The refresh token is invalid or expired; please sign in again",
    },
    "refresh_token_reused": {
        "zh-CN": "刷新令牌已被使用，会话已注销，请重新登录",
        "en": "The refresh token was already used; the session has been revoked, please sign in again",
    },
    "account_inactive": {"zh-CN": "账号已停用", "en": "This account is deactivated"},
    "forbidden": {"zh-CN": "没有权限执行此操作", "en": "You are not allowed to do this"},
    "not_found": {"zh-CN": "请求的资源不存在", "en": "The requested resource does not exist"},
    "route_not_found": {"zh-CN": "接口不存在：{path}", "en": "No such endpoint: {path}"},
    "method_not_allowed": {
        "zh-CN": "该接口不支持 {method} 方法",
        "en": "Method {method} is not allowed on this endpoint",
    },
    "payload_too_large": {"zh-CN": "请求体过大（上限 {limit}）", "en": "Request body too large (limit {limit})"},
    "too_many_login_failures": {
        "zh-CN": "登录失败次数过多，请在 {minutes} 分钟后重试",
        "en": "Too many failed sign-in attempts; try again in {minutes} minutes",
    },
    "too_many_requests": {"zh-CN": "请求过于频繁，请稍后重试", "en": "Too many requests; please retry later"},
    "service_unavailable": {
        "zh-CN": "服务暂不可用（{service}），请稍后重试",
        "en": "Service temporarily unavailable ({service}); please retry later",
    },
    "upstream_timeout": {"zh-CN": "服务响应超时（{service}）", "en": "The service timed out ({service})"},
    "internal_error": {"zh-CN": "服务器内部错误", "en": "Internal server error"},
    "validation_failed": {"zh-CN": "请求数据校验失败", "en": "The request data is invalid"},
    "not_an_object": {"zh-CN": "请求体必须是 JSON 对象", "en": "The request body must be a JSON object"},
    "unknown_field": {"zh-CN": "未知字段：{field}", "en": "Unknown field: {field}"},
    "required": {"zh-CN": "必填字段：{field}", "en": "Required field: {field}"},
    "invalid_value": {"zh-CN": "字段值不合法：{field}", "en": "Invalid value: {field}"},
    "invalid_json_param": {"zh-CN": "参数 {field} 必须是合法的 JSON", "en": "Parameter {field} must be valid JSON"},
    "conflict": {"zh-CN": "数据冲突", "en": "Conflict"},
    "username_taken": {"zh-CN": "用户名已存在：{username}", "en": "Username already exists: {username}"},
    "department_not_found": {"zh-CN": "部门不存在：{id}", "en": "No such department: {id}"},
    "user_not_found": {"zh-CN": "用户不存在：{id}", "en": "No such user: {id}"},
    "manager_not_found": {"zh-CN": "上级用户不存在：{id}", "en": "No such manager: {id}"},
    "department_cycle": {
        "zh-CN": "不能把部门移动到它自己或它的下级部门之下",
        "en": "A department cannot be moved under itself or one of its sub-departments",
    },
    "department_not_empty": {
        "zh-CN": "部门下还有用户或子部门，不能删除",
        "en": "The department still has users or sub-departments and cannot be deleted",
    },
    "cannot_delete_self": {"zh-CN": "不能删除当前登录的用户", "en": "You cannot delete the signed-in user"},
    "file_required": {"zh-CN": "请上传文件（字段 file）", "en": "Upload a file (field `file`)"},
    "titles.400": {"zh-CN": "请求错误", "en": "Bad request"},
    "titles.401": {"zh-CN": "未认证", "en": "Unauthenticated"},
    "titles.403": {"zh-CN": "禁止访问", "en": "Forbidden"},
    "titles.404": {"zh-CN": "未找到", "en": "Not found"},
    "titles.405": {"zh-CN": "方法不允许", "en": "Method not allowed"},
    "titles.409": {"zh-CN": "冲突", "en": "Conflict"},
    "titles.413": {"zh-CN": "请求体过大", "en": "Payload too large"},
    "titles.422": {"zh-CN": "数据校验失败", "en": "Unprocessable entity"},
    "titles.429": {"zh-CN": "请求过多", "en": "Too many requests"},
    "titles.500": {"zh-CN": "服务器错误", "en": "Internal server error"},
    "titles.503": {"zh-CN": "服务不可用", "en": "Service unavailable"},
    "titles.504": {"zh-CN": "网关超时", "en": "Gateway timeout"},
}


def negotiate_locale(accept_language: str | None) -> str:
    """The first supported language in an Accept-Language header; zh-CN when none matches."""
    if not accept_language:
        return "zh-CN"
    ranked: list[tuple[float, int, str]] = []
    for pos, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, pos, tag.strip().lower()))
    for _q, _pos, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "zh-CN"


def current_locale() -> str:
    """The locale of the request being served (zh-CN outside a request)."""
    if not has_request_context():
        return "zh-CN"
    return negotiate_locale(request.headers.get("Accept-Language"))


def t(key: str, locale: str | None = None, **params: Any) -> str:
    """The message `key` in `locale` (the request's by default), formatted with `params`."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    text = entry.get(locale or current_locale()) or entry["zh-CN"]
    return text.format(**params) if params else text


def title_for(status: int, locale: str | None = None) -> str:
    """A short localised title for an HTTP status."""
    return t(f"titles.{status}", locale) if f"titles.{status}" in MESSAGES else str(status)
