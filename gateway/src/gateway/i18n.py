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
    "body_too_deep": {
        "zh-CN": "请求体嵌套过深（对象和数组至多 {max} 层）",
        "en": "The request body is nested too deeply (at most {max} levels of objects and arrays)",
    },
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
    # --- account security (password policy, lockout, TOTP, password change and reset)
    "password_policy": {
        "zh-CN": "密码不符合安全要求",
        "en": "The password does not meet the security requirements",
    },
    "password_too_short": {"zh-CN": "密码至少需要 {min} 个字符", "en": "The password needs at least {min} characters"},
    "password_too_simple": {
        "zh-CN": "密码需包含小写字母、大写字母、数字、符号中的至少 {classes} 类（或长度不少于 {long} 个字符）",
        "en": "The password needs at least {classes} of: lower-case, upper-case, digit, symbol (or {long}+ characters)",
    },
    "password_contains_username": {"zh-CN": "密码不能包含用户名", "en": "The password must not contain the username"},
    "password_breached": {
        "zh-CN": "该密码过于常见或已在泄露数据中出现，请换一个",
        "en": "This password is too common or has appeared in a data breach; choose another",
    },
    "password_reused": {
        "zh-CN": "新密码不能与当前密码相同",
        "en": "The new password must differ from the current one",
    },
    "totp_required": {"zh-CN": "请输入动态验证码（totp_code）", "en": "Enter the authenticator code (totp_code)"},
    "totp_invalid": {"zh-CN": "动态验证码错误或已使用", "en": "The authenticator code is wrong or already used"},
    "totp_already_enabled": {
        "zh-CN": "已启用两步验证；如需更换请先停用",
        "en": "Two-factor authentication is already on; turn it off first to replace it",
    },
    "totp_not_pending": {
        "zh-CN": "没有待确认的两步验证设置，请先调用 /auth/totp/setup",
        "en": "No two-factor setup to confirm; call /auth/totp/setup first",
    },
    "totp_not_enabled": {"zh-CN": "尚未启用两步验证", "en": "Two-factor authentication is not on"},
    "current_password_invalid": {"zh-CN": "当前密码错误", "en": "The current password is wrong"},
    "password_change_required": {
        "zh-CN": "管理员已重置您的密码，请先设置新密码",
        "en": "Your password was reset by an administrator; set a new password first",
    },
    "invalid_password_change_token": {
        "zh-CN": "改密令牌无效或已过期，请重新登录",
        "en": "The password change token is invalid or expired; please sign in again",
    },
    "password_change_credentials_required": {
        "zh-CN": "请提供 password_change_token，或登录后提供 current_password",
        "en": "Give a password_change_token, or sign in and give current_password",
    },
    # --- identity: roles, users' roles and attributes, permission check
    "role_not_found": {"zh-CN": "角色不存在：{role}", "en": "No such role: {role}"},
    "role_exists": {"zh-CN": "角色标识已存在：{role}", "en": "A role with this key already exists: {role}"},
    "role_in_use": {
        "zh-CN": "仍有用户拥有角色 {role}，不能删除",
        "en": "Users still hold the role {role}; it cannot be deleted",
    },
    "role_key_pattern": {
        "zh-CN": "角色标识须以小写字母开头，只含小写字母、数字和下划线（至多 40 个字符）",
        "en": "A role key starts with a lower-case letter and has only a-z, 0-9 and _ (at most 40 characters)",
    },
    "role_text_invalid": {
        "zh-CN": '{field} 必须是至多 {limit} 个字符的文本，或 {{"zh-CN": ..., "en": ...}}',
        "en": '{field} must be text of at most {limit} characters, or {{"zh-CN": ..., "en": ...}}',
    },
    "role_policy_type": {
        "zh-CN": "权限定义 {field} 的类型不正确",
        "en": "Permission member {field} has the wrong type",
    },
    "role_policy_unknown_member": {
        "zh-CN": "权限定义中有未知成员：{field}",
        "en": "Unknown member in the permission document: {field}",
    },
    "role_policy_option": {
        "zh-CN": "权限定义 {field} 的取值不合法：{detail}",
        "en": "Permission member {field} has an invalid value: {detail}",
    },
    "last_tenant_admin": {
        "zh-CN": "租户至少需要保留一名启用的管理员",
        "en": "The tenant must keep at least one active administrator",
    },
    "roles_empty": {"zh-CN": "用户至少需要一个角色", "en": "A user needs at least one role"},
    "roles_too_many": {"zh-CN": "一个用户至多 {limit} 个角色", "en": "A user holds at most {limit} roles"},
    "attributes_type": {
        "zh-CN": "attributes 必须是对象（键为属性名，值为文本）",
        "en": "attributes must be an object of short strings",
    },
    "attributes_too_many": {"zh-CN": "用户属性至多 {limit} 个", "en": "At most {limit} user attributes"},
    "attribute_key_pattern": {
        "zh-CN": "属性名不合法：{field}（字母开头，只含字母、数字和下划线）",
        "en": "Invalid attribute name: {field} (a letter, then letters, digits and _)",
    },
    "attribute_value": {
        "zh-CN": "属性值必须是至多 {limit} 个字符的文本：{field}",
        "en": "An attribute value must be text of at most {limit} characters: {field}",
    },
    "unknown_action": {"zh-CN": "未知操作：{action}", "en": "Unknown action: {action}"},
    "form_required": {
        "zh-CN": "未指定 record_id 时必须提供 form",
        "en": "form is required when no record_id is given",
    },
    # --- requests gunicorn refuses before the app sees them (gateway.server_errors)
    "malformed_request": {
        "zh-CN": "请求格式错误：请求行或请求头不合法",
        "en": "Malformed request: the request line or a header is invalid",
    },
    "uri_too_long": {
        "zh-CN": "请求地址（含查询参数）过长：上限 {limit} 字节；较大的筛选条件请用 POST …/records/query 提交",
        "en": (
            "The request URI (with its query) is too long: at most {limit} bytes; "
            "send big filters with POST …/records/query"
        ),
    },
    "headers_too_large": {"zh-CN": "请求头过多或过大", "en": "Too many or too large request headers"},
    "expectation_failed": {"zh-CN": "不支持该 Expect 请求头", "en": "The Expect header is not supported"},
    "unsupported_transfer_coding": {
        "zh-CN": "不支持的请求传输编码",
        "en": "Unsupported transfer coding of the request",
    },
    "titles.400": {"zh-CN": "请求错误", "en": "Bad request"},
    "titles.401": {"zh-CN": "未认证", "en": "Unauthenticated"},
    "titles.403": {"zh-CN": "禁止访问", "en": "Forbidden"},
    "titles.404": {"zh-CN": "未找到", "en": "Not found"},
    "titles.405": {"zh-CN": "方法不允许", "en": "Method not allowed"},
    "titles.409": {"zh-CN": "冲突", "en": "Conflict"},
    "titles.413": {"zh-CN": "请求体过大", "en": "Payload too large"},
    "titles.414": {"zh-CN": "请求地址过长", "en": "URI too long"},
    "titles.417": {"zh-CN": "预期失败", "en": "Expectation failed"},
    "titles.422": {"zh-CN": "数据校验失败", "en": "Unprocessable entity"},
    "titles.423": {"zh-CN": "已锁定", "en": "Locked"},
    "titles.429": {"zh-CN": "请求过多", "en": "Too many requests"},
    "titles.431": {"zh-CN": "请求头过大", "en": "Request header fields too large"},
    "titles.500": {"zh-CN": "服务器错误", "en": "Internal server error"},
    "titles.501": {"zh-CN": "未实现", "en": "Not implemented"},
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
