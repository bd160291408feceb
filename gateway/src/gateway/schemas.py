"""Request and response schemas (marshmallow, through apiflask) for validation and the OpenAPI document.

The gateway's own endpoints refuse unknown keys (marshmallow's default RAISE).
Record data, form definitions and service results are user-defined, so they are
described as free-form objects.
"""

from __future__ import annotations

from typing import Any

from apiflask import Schema
from apiflask.fields import Boolean, Dict, File, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import EXCLUDE, INCLUDE, ValidationError, validates_schema

ROLE_KEY = Length(1, 40)

# Integers that reach a store (BSON int64) or a proto int64 field: larger ones are refused with
# 422 naming the field, not left to fail there as a 500.
INT64_MAX = 2**63 - 1
# a department's `sort` is an ordering key: a 32-bit range is plenty and portable
SORT_RANGE = Range(-(2**31), 2**31 - 1)


class FreeObject(Schema):
    """Any JSON object (user-defined structure)."""

    class Meta:
        unknown = INCLUDE


class FieldErrorOut(Schema):
    """One field failing one rule."""

    field = String(metadata={"description": "field key or body path"})
    rule = String(metadata={"description": "the rule that failed (required, unique, type, ...)"})
    message = String(metadata={"description": "message in the request's language (zh-CN or en)"})


class ProblemOut(Schema):
    """RFC 9457 problem details (application/problem+json)."""

    type = String()
    title = String()
    status = Integer()
    detail = String()
    code = String(metadata={"description": "stable machine-readable error code"})
    errors = List(Nested(FieldErrorOut))
    instance = String()


# --- auth


class LoginIn(Schema):
    """Credentials."""

    username = String(required=True, validate=Length(1, 128))
    password = String(required=True, validate=Length(1, 1024))
    tenant = String(load_default="default", validate=Length(1, 64))
    totp_code = String(
        validate=Length(1, 16), metadata={"description": "current authenticator code, when two-factor is on"}
    )


class TokenOut(Schema):
    """A token pair."""

    access_token = String(metadata={"description": "JWT (HS256), valid 15 minutes"})
    refresh_token = String(metadata={"description": "opaque, single use, valid 7 days"})
    token_type = String(metadata={"example": "Bearer"})
    expires_in = Integer()
    refresh_expires_in = Integer()


class RefreshIn(Schema):
    """A refresh token to rotate."""

    refresh_token = String(required=True, validate=Length(1, 512))


class LogoutIn(Schema):
    """Logout ends the session of the access token, and of this refresh token when given."""

    refresh_token = String(validate=Length(1, 512))


class PasswordChangeRequiredOut(ProblemOut):
    """403 `password_change_required`: exchange the token at POST /auth/password."""

    password_change_token = String(metadata={"description": "single-use, valid 10 minutes"})
    expires_in = Integer()


class PasswordChangeIn(Schema):
    """A new password, proven by a password-change token, or by the signed-in user's current password."""

    new_password = String(required=True, validate=Length(1, 1024))
    password_change_token = String(validate=Length(1, 2048))
    current_password = String(validate=Length(1, 1024))


class TotpSetupOut(Schema):
    """A pending TOTP secret: confirm it with POST /auth/totp/enable."""

    secret = String(metadata={"description": "base32 secret (shown once)"})
    otpauth_uri = String(metadata={"description": "otpauth://totp/... for a QR code"})


class TotpCodeIn(Schema):
    """A code from the authenticator app."""

    code = String(required=True, validate=Length(1, 16))


class TotpDisableIn(Schema):
    """Turning two-factor off needs the password and a current code."""

    password = String(required=True, validate=Length(1, 1024))
    code = String(required=True, validate=Length(1, 16))


class PasswordResetIn(Schema):
    """An administrator's reset: a password of their choice (else one is generated)."""

    password = String(validate=Length(1, 1024))
    disable_totp = Boolean(load_default=False, metadata={"description": "also turn the user's two-factor off"})


class PasswordResetOut(Schema):
    """The reset's result; `temporary_password` is shown only here, once, and only when generated."""

    user_id = String()
    must_change_password = Boolean()
    temporary_password = String()


# --- users, departments, roles


class UserOut(Schema):
    """A user (no password)."""

    id = String()
    tenant_id = String()
    username = String()
    name = String()
    email = String()
    phone = String()
    role = String(metadata={"description": "the primary role key (first of `roles`)"})
    roles = List(String(), metadata={"description": "every role key the user holds; rights are the union"})
    attributes = Dict(keys=String(), values=String(), metadata={"description": 'e.g. {"region": "华东"}'})
    department_id = String(allow_none=True)
    manager_id = String(allow_none=True)
    active = Boolean()
    created_at = String()
    updated_at = String()


class UserItem(UserOut):
    """A user in a list (its own component: apiflask registers output schemas separately)."""


class TenantOut(Schema):
    """A tenant."""

    id = String()
    name = String()
    time_zone = String()


class MeOut(UserOut):
    """The signed-in user, their tenant and their data scope."""

    tenant = Nested(TenantOut)
    scope_departments = List(String())
    locale = String()
    totp_enabled = Boolean(metadata={"description": "logins need an authenticator code"})


class UserIn(Schema):
    """A new user."""

    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 256), metadata={"description": "password policy applies"})
    name = String(validate=Length(0, 128))
    email = String(validate=Length(0, 256))
    phone = String(validate=Length(0, 64))
    role = String(validate=ROLE_KEY, metadata={"description": "one role key (older form of `roles`; default sales)"})
    roles = List(String(validate=ROLE_KEY), metadata={"description": "role keys, the primary first"})
    attributes = Dict(
        keys=String(), values=String(), metadata={"description": "short strings role conditions may name"}
    )
    department_id = String(allow_none=True)
    manager_id = String(allow_none=True)
    active = Boolean(load_default=True)


class UserPatch(Schema):
    """Changes to a user (any subset)."""

    password = String(validate=Length(1, 256), metadata={"description": "password policy applies"})
    name = String(validate=Length(0, 128))
    email = String(validate=Length(0, 256))
    phone = String(validate=Length(0, 64))
    role = String(validate=ROLE_KEY)
    roles = List(String(validate=ROLE_KEY))
    attributes = Dict(keys=String(), values=String())
    department_id = String(allow_none=True)
    manager_id = String(allow_none=True)
    active = Boolean()


class UserListOut(Schema):
    """Users."""

    items = List(Nested(UserItem))


class UserQuery(Schema):
    """User list filters."""

    class Meta:
        unknown = EXCLUDE

    department_id = String()


class DepartmentIn(Schema):
    """A new department."""

    name = String(required=True, validate=Length(1, 128))
    parent_id = String(allow_none=True)
    sort = Integer(load_default=0, validate=SORT_RANGE, metadata={"description": "order among siblings"})


class DepartmentPatch(Schema):
    """Rename, reorder, or move (a `parent_id` key moves it; null = to the root)."""

    name = String(validate=Length(1, 128))
    sort = Integer(validate=SORT_RANGE)
    parent_id = String(allow_none=True)


class DepartmentMoveIn(Schema):
    """The new parent (null = root)."""

    parent_id = String(required=True, allow_none=True)


class DepartmentOut(Schema):
    """A department."""

    id = String()
    name = String()
    parent_id = String(allow_none=True)
    path = String(metadata={"description": "materialised path /root/.../self/"})
    ancestor_ids = List(String())
    depth = Integer()
    sort = Integer()
    created_at = String()


class DepartmentItem(DepartmentOut):
    """A department in a list."""


class DepartmentListOut(Schema):
    """Departments, flat (by path) and as a tree."""

    items = List(Nested(DepartmentItem))
    tree = List(Dict(), metadata={"description": "nested departments with `children`"})


class RoleOut(Schema):
    """A role: its permission document (docs/security.md) and a summary."""

    key = String()
    name = String(metadata={"description": "in the request's language"})
    description = String()
    permissions = Dict(metadata={"description": "{tenant_admin, default, forms}"})
    tenant_admin = Boolean()
    data_scope = String(metadata={"description": "the default rule's scope: own | department | department_tree | all"})
    builtin = Boolean(metadata={"description": "one of the seeded admin, manager, sales (still editable)"})
    version = Integer(metadata={"description": "bumped on every change"})
    created_at = String()
    updated_at = String()


class RoleItem(RoleOut):
    """A role in a list."""


class RoleListOut(Schema):
    """Roles."""

    items = List(Nested(RoleItem))


class RoleIn(Schema):
    """A new role."""

    key = String(required=True, validate=Length(1, 40), metadata={"description": "[a-z][a-z0-9_]*"})
    name = Raw(metadata={"description": 'a string or {"zh-CN": "...", "en": "..."}'})
    description = Raw(metadata={"description": 'a string or {"zh-CN": "...", "en": "..."}'})
    permissions = Raw(load_default=dict, metadata={"description": "the permission document"})


class RolePatch(Schema):
    """Changes to a role (any subset)."""

    name = Raw()
    description = Raw()
    permissions = Raw()


class PermissionCheckQuery(Schema):
    """Can user U do action A on form F (or record R)?"""

    class Meta:
        unknown = EXCLUDE

    user_id = String(required=True, validate=Length(1, 64))
    form = String(validate=Length(1, 128), metadata={"description": "form key (or id, with record_id)"})
    action = String(required=True, validate=Length(1, 32))
    record_id = String(validate=Length(1, 64))


class PermissionCheckOut(Schema):
    """The answer and its reasons."""

    allowed = Boolean()
    reasons = List(Dict(), metadata={"description": "[{code: action_granted|in_scope|out_of_scope|...}]"})
    hidden_fields = List(String())
    readonly_fields = List(String())


# --- proxied: apps and forms


class AppIn(Schema):
    """A new app."""

    name = Raw(required=True, metadata={"description": 'a string or {"zh-CN": "...", "en": "..."}'})
    key = String(validate=Length(0, 64))
    description = String(validate=Length(0, 2000))


class ListOut(Schema):
    """A list of free-form objects."""

    items = List(Dict())


class FieldTypeOut(Schema):
    """One field type of the catalogue (GET /field-types returns a list of them)."""

    class Meta:
        unknown = INCLUDE

    name = String(metadata={"example": "text"})
    label = Dict(keys=String(), values=String(), metadata={"description": '{"zh-CN": "...", "en": "..."}'})
    category = String()
    system = Boolean(metadata={"description": "maintained by the platform (created_at, owner, ...)"})
    computed = Boolean()
    stored = Boolean()
    filterable_default = Boolean()
    searchable = Boolean()
    searchable_default = Boolean()
    unique_allowed = Boolean()
    operators = List(String(), metadata={"description": "filter operators the type supports"})
    value_range = Dict(
        keys=String(), values=String(), metadata={"description": "the values the type accepts: {min, max} as text"}
    )


class TemplateInstallIn(Schema):
    """Which template to install."""

    template = String(load_default="crm")


class InstallOut(Schema):
    """The installed app and whether it was new."""

    app = Dict()
    created = Boolean()


class PublishedQuery(Schema):
    """Which published version (0 or absent: the latest)."""

    class Meta:
        unknown = EXCLUDE

    version = Integer(load_default=0, validate=Range(0, INT64_MAX))


class PublishOut(Schema):
    """A published form version."""

    form = Dict()
    version = Integer()


# --- proxied: records


class RecordIn(Schema):
    """A new record."""

    data = Dict(required=True, metadata={"description": "{field_key: value}"})
    owner_id = String(metadata={"description": "defaults to the caller"})


class BulkIn(Schema):
    """Records to create, all or nothing."""

    records = List(Dict(), required=True, validate=Length(1, 10_000))


class BulkOut(Schema):
    """Ids of the created records, in input order."""

    ids = List(String())
    count = Integer()


class RecordPatch(Schema):
    """A partial update naming the version it read."""

    data = Dict(load_default=dict)
    version = Integer(required=True, validate=Range(1, INT64_MAX))
    owner_id = String()


class ListQuery(Schema):
    """Record list parameters in the query string."""

    class Meta:
        unknown = EXCLUDE

    filter = String(metadata={"description": "filter tree as JSON text"})
    sort = String(metadata={"description": '"-created_at", "a,-b" or a JSON list [{"field","direction"}]'})
    cursor = String()
    page_size = Integer(validate=Range(1, 200))
    count = String(validate=OneOf(["capped", "exact", "none"]))
    q = String(
        metadata={
            "description": "keyword: Chinese substrings and word prefixes of the searchable fields. Without "
            "`sort`, matches come in the keyword order (stable across pages); `count=none` skips the count, "
            "which costs time in proportion to the matches"
        }
    )
    deleted = Boolean(metadata={"description": "list the recycle bin"})


class QueryIn(Schema):
    """Record list parameters in a JSON body (for big filter trees)."""

    filter = Raw(allow_none=True, metadata={"description": "filter tree (object)"})
    sort = Raw(allow_none=True, metadata={"description": 'string "-created_at" or [{"field","direction"}]'})
    cursor = String(allow_none=True)
    page_size = Integer(validate=Range(1, 200))
    count = String(validate=OneOf(["capped", "exact", "none"]))
    q = String(allow_none=True)
    deleted = Boolean()


class RecordListOut(Schema):
    """A page of records."""

    items = List(Dict())
    next_cursor = String(allow_none=True)
    total = Integer(allow_none=True, metadata={"description": "null when not counted"})
    total_display = String(allow_none=True, metadata={"description": '"10,000+" when capped'})


class DeleteQuery(Schema):
    """Optional optimistic-concurrency check."""

    class Meta:
        unknown = EXCLUDE

    version = Integer(validate=Range(1, INT64_MAX))


class PageQuery(Schema):
    """Cursor paging."""

    class Meta:
        unknown = EXCLUDE

    cursor = String()
    page_size = Integer(validate=Range(1, 200))


class View360Query(Schema):
    """How many related records per form."""

    class Meta:
        unknown = EXCLUDE

    per_form_limit = Integer(validate=Range(1, 200))


class HistoryOut(Schema):
    """History entries, newest first."""

    items = List(Dict())
    next_cursor = String(allow_none=True)


class DuplicatesIn(Schema):
    """Find duplicates of a stored record or of unsaved data."""

    record_id = String()
    data = Dict()
    limit = Integer(validate=Range(1, 100))


class ShareIn(Schema):
    """Share a record with a user or a department."""

    target_kind = String(required=True, validate=OneOf(["user", "department"]))
    target_id = String(required=True, validate=Length(1, 64))
    access = String(load_default="read", validate=OneOf(["read", "edit"]))


class MergeIn(Schema):
    """Merge the loser into the winner."""

    winner_id = String(required=True)
    loser_id = String(required=True)
    field_choices = Dict(load_default=dict, metadata={"description": '{field_key: "winner"|"loser"}'})


class UploadIn(Schema):
    """A file, optionally checked against a form field's limits."""

    file = File(required=True)
    form_id = String()
    field_key = String()


# --- proxied: workflow (automations, runs, dead letters, notifications)

LOCALES = ("zh-CN", "en")
# the workflow service's page sizes: default 20, at most 100 (crm.workflow.v1)
WORKFLOW_PAGE = Range(1, 100)

TRIGGER_EXAMPLE = {"type": "record_created"}
CONDITION_EXAMPLE = {"and": [{"field": "source", "op": "eq", "value": "官网"}]}
ACTIONS_EXAMPLE = [
    {
        "type": "create_record",
        "form": "task",
        "values": {"title": "【新客户跟进】{customer_name}", "assignee": "{owner_id}", "due_at": "{now+3d}"},
    }
]
AUTOMATION_EXAMPLE = {
    "name": {"zh-CN": "新客户跟进", "en": "Follow up a new customer"},
    "form": "customer",
    "enabled": True,
    "trigger": TRIGGER_EXAMPLE,
    "condition": CONDITION_EXAMPLE,
    "actions": ACTIONS_EXAMPLE,
}

_LOCALIZED_NAME: dict[str, Any] = {
    "description": 'a string or {"zh-CN": "...", "en": "..."} (at least one language)',
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "properties": {locale: {"type": "string", "minLength": 1} for locale in LOCALES},
            "additionalProperties": False,
            "minProperties": 1,
        },
    ],
    "example": AUTOMATION_EXAMPLE["name"],
}
_TRIGGER_DOC = {
    "description": "When the automation runs: a free-form object whose `type` names the trigger "
    "(services/workflow/README.md lists them and their options); the workflow service checks it.",
    "example": TRIGGER_EXAMPLE,
}
_CONDITION_DOC = {
    "description": "Which records it runs for: a filter tree in the format of the record list's `filter` "
    '(groups {"and"|"or": [...]} of leaves {"field", "op", "value"}), or null for every record the trigger '
    "fires on; the workflow service checks it against the form.",
    "example": CONDITION_EXAMPLE,
}
_ACTIONS_DOC = {
    "description": "What it does, in order: free-form objects whose `type` names the action; values may name "
    "the record's fields ({customer_name}) and relative times ({now+3d}); the workflow service checks them.",
    "example": ACTIONS_EXAMPLE,
}


def _localized_name(value: Any) -> None:
    """A non-empty string, or an object of non-empty strings keyed by zh-CN and/or en."""
    if isinstance(value, str):
        if not value.strip():
            raise ValidationError("Must not be blank.")
        return
    if not isinstance(value, dict) or not value:
        raise ValidationError('Must be a string or an object {"zh-CN": "...", "en": "..."}.')
    unknown = sorted(str(k) for k in value if k not in LOCALES)
    if unknown:
        raise ValidationError(f"Unknown language: {', '.join(unknown)} (zh-CN or en).")
    if not all(isinstance(v, str) and v.strip() for v in value.values()):
        raise ValidationError("Each language's name must be a non-blank string.")


class AutomationIn(Schema):
    """A new automation: on `trigger` in `form`, when `condition` holds, run `actions`."""

    name = Raw(required=True, validate=_localized_name, metadata=_LOCALIZED_NAME)
    form = String(required=True, validate=Length(1, 128), metadata={"description": "form id or key"})
    enabled = Boolean(metadata={"description": "runs only while true (absent: the service's default)"})
    trigger = Dict(required=True, metadata=_TRIGGER_DOC)
    condition = Dict(allow_none=True, metadata=_CONDITION_DOC)
    actions = List(Dict(), required=True, metadata=_ACTIONS_DOC)


class AutomationPatch(Schema):
    """A partial change of an automation naming the version it read (its form cannot change)."""

    name = Raw(validate=_localized_name, metadata=_LOCALIZED_NAME)
    enabled = Boolean()
    trigger = Dict(metadata=_TRIGGER_DOC)
    condition = Dict(allow_none=True, metadata=_CONDITION_DOC)
    actions = List(Dict(), metadata=_ACTIONS_DOC)
    expected_version = Integer(
        required=True,
        validate=Range(1, INT64_MAX),
        metadata={"description": "the `version` read; a stale one is refused with 409"},
    )


class AutomationOut(Schema):
    """An automation as the workflow service stores it (further members pass through)."""

    class Meta:
        unknown = INCLUDE

    id = String()
    name = Raw(metadata={"description": 'a string or {"zh-CN": "...", "en": "..."}'})
    enabled = Boolean()
    trigger = Dict(metadata=_TRIGGER_DOC)
    condition = Dict(allow_none=True, metadata=_CONDITION_DOC)
    actions = List(Dict(), metadata=_ACTIONS_DOC)
    version = Integer(metadata={"description": "bumped on every change; send it back as `expected_version`"})


class AutomationItem(AutomationOut):
    """An automation in a list."""


class AutomationListOut(Schema):
    """Automations."""

    items = List(Nested(AutomationItem))


class AutomationQuery(Schema):
    """Which automations (no `form_id`: every automation of the tenant)."""

    class Meta:
        unknown = EXCLUDE

    form_id = String(validate=Length(0, 128), metadata={"description": "form id or key (empty: every form)"})


class AutomationDeleteQuery(Schema):
    """The version the caller read (required)."""

    class Meta:
        unknown = EXCLUDE

    expected_version = Integer(
        required=True,
        validate=Range(1, INT64_MAX),
        metadata={"description": "the `version` read; a stale one is refused with 409"},
    )


class WorkflowPageQuery(Schema):
    """Cursor paging of the workflow service (20 a page unless asked, at most 100)."""

    class Meta:
        unknown = EXCLUDE

    cursor = String(metadata={"description": "next_cursor of the previous page"})
    page_size = Integer(validate=WORKFLOW_PAGE)


class DeadLetterQuery(WorkflowPageQuery):
    """Dead letters, newest first; replayed ones only when asked."""

    include_replayed = Boolean(load_default=False)


class NotificationQuery(WorkflowPageQuery):
    """The caller's notifications, newest first."""

    unread_only = Boolean(load_default=False)


class RunListOut(Schema):
    """A page of automation runs, newest first."""

    items = List(Dict(), metadata={"description": "runs (their shape: services/workflow/README.md)"})
    next_cursor = String(allow_none=True)


class DeadLetterListOut(Schema):
    """A page of dead letters (actions that failed after their retries), newest first."""

    items = List(Dict())
    next_cursor = String(allow_none=True)


class NotificationListOut(Schema):
    """A page of the caller's notifications with their unread count."""

    items = List(Dict())
    next_cursor = String(allow_none=True)
    unread = Integer(metadata={"description": "the caller's unread notifications (all pages)"})


class NotificationsReadIn(Schema):
    """Which notifications to mark read: `ids`, or `all: true` for every one of the caller's."""

    ids = List(String(validate=Length(1, 300)), validate=Length(1, 1000))
    all = Boolean(metadata={"description": "true: every notification of the caller (then no `ids`)"})

    @validates_schema
    def _ids_or_all(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("all") and "ids" in data:
            raise ValidationError("Give either ids or all: true, not both.", "all")
        if not data.get("all") and "ids" not in data:
            raise ValidationError("Give ids, or all: true.", "ids")


class NotificationsReadOut(Schema):
    """How many were marked, and how many remain unread."""

    marked = Integer()
    unread = Integer()


# --- operation log (gateway.audit)


class AuditQuery(Schema):
    """Operation-log filters (exact matches; `from` <= at < `to`)."""

    class Meta:
        unknown = EXCLUDE

    actor_id = String(validate=Length(1, 128))
    action = String(validate=Length(1, 128), metadata={"example": "user.update"})
    object_type = String(validate=Length(1, 64), metadata={"example": "user"})
    object_id = String(validate=Length(1, 256))
    since = String(
        data_key="from",
        metadata={"description": "ISO-8601 time, inclusive (no offset: the tenant's time zone)"},
    )
    until = String(
        data_key="to",
        metadata={"description": "ISO-8601 time, exclusive (no offset: the tenant's time zone)"},
    )
    cursor = String(metadata={"description": "next_cursor of the previous page"})
    page_size = Integer(load_default=50, validate=Range(1, 200))


class AuditEntryOut(Schema):
    """One operation-log entry."""

    id = String()
    seq = Integer(metadata={"description": "1, 2, 3, ... per tenant"})
    at = String(metadata={"description": "UTC, milliseconds"})
    actor_id = String()
    actor_name = String()
    action = String()
    object_type = String()
    object_id = String()
    summary = String()
    details = Dict()
    address = String()
    user_agent = String()
    request_id = String()
    prev_hash = String()
    hash = String(metadata={"description": "SHA-256 of the canonical JSON of the entry without `hash`"})


class AuditListOut(Schema):
    """A page of entries, newest first."""

    items = List(Nested(AuditEntryOut))
    next_cursor = String(allow_none=True)


class AuditVerifyOut(Schema):
    """The result of walking the tenant's hash chain."""

    tenant_id = String()
    ok = Boolean()
    entries = Integer(metadata={"description": "entries verified before the first break (all when ok)"})
    first_broken_seq = Integer(allow_none=True)
    reason = String(allow_none=True, metadata={"description": "missing | prev_hash | hash"})


class AuditSettingsIn(Schema):
    """The forms whose record reads are logged."""

    sensitive_forms = List(String(validate=Length(1, 128)), required=True, validate=Length(0, 200))


class AuditSettingsOut(Schema):
    """The tenant's operation-log settings."""

    sensitive_forms = List(String(), metadata={"description": "form keys"})
    updated_at = String(allow_none=True)
    updated_by = String(allow_none=True)
