"""Request and response schemas (marshmallow, through apiflask) for validation and the OpenAPI document.

The gateway's own endpoints refuse unknown keys (marshmallow's default RAISE).
Record data, form definitions and service results are user-defined, so they are
described as free-form objects.
"""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, File, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import EXCLUDE, INCLUDE

ROLE_CHOICES = ["admin", "manager", "sales"]


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


# --- users, departments, roles


class UserOut(Schema):
    """A user (no password)."""

    id = String()
    tenant_id = String()
    username = String()
    name = String()
    email = String()
    phone = String()
    role = String(validate=OneOf(ROLE_CHOICES))
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


class UserIn(Schema):
    """A new user."""

    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(8, 256))
    name = String(validate=Length(0, 128))
    email = String(validate=Length(0, 256))
    phone = String(validate=Length(0, 64))
    role = String(load_default="sales", validate=OneOf(ROLE_CHOICES))
    department_id = String(allow_none=True)
    manager_id = String(allow_none=True)
    active = Boolean(load_default=True)


class UserPatch(Schema):
    """Changes to a user (any subset)."""

    password = String(validate=Length(8, 256))
    name = String(validate=Length(0, 128))
    email = String(validate=Length(0, 256))
    phone = String(validate=Length(0, 64))
    role = String(validate=OneOf(ROLE_CHOICES))
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
    sort = Integer(load_default=0)


class DepartmentPatch(Schema):
    """Rename, reorder, or move (a `parent_id` key moves it; null = to the root)."""

    name = String(validate=Length(1, 128))
    sort = Integer()
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
    """A role and its data scope."""

    key = String()
    name = String()
    data_scope = String(metadata={"description": "all | department_subtree | own"})
    description = String()


class RoleListOut(Schema):
    """Roles."""

    items = List(Nested(RoleOut))


# --- proxied: apps and forms


class AppIn(Schema):
    """A new app."""

    name = Raw(required=True, metadata={"description": 'a string or {"zh-CN": "...", "en": "..."}'})
    key = String(validate=Length(0, 64))
    description = String(validate=Length(0, 2000))


class ListOut(Schema):
    """A list of free-form objects."""

    items = List(Dict())


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

    version = Integer(load_default=0, validate=Range(min=0))


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
    version = Integer(required=True, validate=Range(min=1))
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

    version = Integer(validate=Range(min=1))


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
