"""Access control of the record service: crm_runtime.access applied to stored records of one form.

The decisions themselves (visibility, actions, hidden and read-only fields,
assignment, explanations) are crm_runtime.access functions over
`principal.policy` and `principal.subject`; this module only supplies what
they need from the record service:

* `ConditionMatcher`: evaluates a role's condition (a record-query filter tree
  on the form's fields) on a stored record with the planner's own parser. A
  condition that does not parse against the form (a removed field, a bad
  operand) matches nothing and is logged: it is the role author's mistake,
  never the caller's 422.
* `FormAccess`: one principal's access to one form: the Visibility (pushed
  into the store as `acl $in [...]` and checked exactly on rows), the hidden
  and read-only fields, and the exact row check the planner and every read
  path use.
* `input_errors`: the 422s for writing hidden, read-only or system keys.
* `forbidden`: the 403 naming the refused action (a record the caller cannot
  see is a 404 instead, raised by the callers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import crm_schema
from crm_runtime import access, get_logger
from crm_runtime.errors import FieldError, Forbidden, ValidationFailed
from crm_runtime.i18n import Catalog
from crm_runtime.principal import Principal
from record_service.domain.forms import FormSchema
from record_service.domain.query import Coerce, Group, Leaf, Node, QueryContext, parse_filter

log = get_logger("record.access")

Doc = Mapping[str, Any]
# Keys of the record envelope that crm_schema does not already refuse inside `data`
# (owner_id, department_id, created_by, ... are refused there as system_field).
RECORD_SYSTEM_KEYS = frozenset({"acl", "shares", "merged_into", "files", "kw", "kp", "search", "dedupe"})

MESSAGES: dict[str, dict[str, str]] = {
    "forbidden": {
        "zh-CN": "没有权限{action}此表单的记录（{form}）",
        "en": "You are not allowed to {action} records of this form ({form})",
    },
    "forbidden_record": {
        "zh-CN": "没有权限{action}这条记录",
        "en": "You are not allowed to {action} this record",
    },
    "forbidden_assign": {
        "zh-CN": "没有权限把记录分配给 {owner}",
        "en": "You are not allowed to assign records to {owner}",
    },
}
ACTION_NAMES: dict[str, dict[str, str]] = {
    "view": {"zh-CN": "查看", "en": "view"},
    "create": {"zh-CN": "新建", "en": "create"},
    "edit": {"zh-CN": "编辑", "en": "edit"},
    "delete": {"zh-CN": "删除", "en": "delete"},
    "restore": {"zh-CN": "恢复", "en": "restore"},
    "import": {"zh-CN": "导入", "en": "import"},
    "merge": {"zh-CN": "合并", "en": "merge"},
    "share": {"zh-CN": "共享", "en": "share"},
    "assign": {"zh-CN": "分配", "en": "assign"},
}
_CATALOG = Catalog(MESSAGES)


def _action_name(action: str, locale: str) -> str:
    names = ACTION_NAMES.get(action) or {}
    return names.get(locale) or names.get("zh-CN") or action


def forbidden(action: str, form: FormSchema, locale: str, *, record_id: str = "") -> Forbidden:
    """403 naming the refused action (on the form, or on one record)."""
    name = _action_name(action, locale)
    if record_id:
        text = _CATALOG.message("forbidden_record", locale, action=name)
        return Forbidden(text, action=action, form_id=form.id, record_id=record_id)
    text = _CATALOG.message("forbidden", locale, action=name, form=form.key)
    return Forbidden(text, action=action, form_id=form.id)


def forbidden_assign(owner_id: str, form: FormSchema, locale: str) -> Forbidden:
    """403 for an owner the caller may not assign records to."""
    text = _CATALOG.message("forbidden_assign", locale, owner=owner_id)
    return Forbidden(text, action="assign", form_id=form.id, owner_id=owner_id)


_UNPARSABLE = object()


class ConditionMatcher:
    """(role condition, stored record) -> bool for one form, parsed once per condition.

    Conditions are parsed like a user's filter (so `{"field": "level", "op":
    "eq", "value": "A"}` compares the stored value exactly as a list filter
    does), but without the caller's hidden fields: a role may restrict on a
    field its holders cannot see.
    """

    def __init__(
        self,
        form: FormSchema,
        ctx: QueryContext,
        coerce: Coerce,
        subpath: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.form = form
        self._ctx = ctx
        self._coerce = coerce
        self._subpath = subpath
        self._parsed: dict[str, Any] = {}

    def node(self, condition: Mapping[str, Any]) -> Node | None:
        """The parsed condition; None when it does not parse (logged once per matcher)."""
        key = json.dumps(condition, sort_keys=True, ensure_ascii=False, default=str)
        hit = self._parsed.get(key)
        if hit is None:
            try:
                hit = parse_filter(dict(condition), self.form, self._ctx, self._coerce, self._subpath)
            except (ValidationFailed, ValueError, TypeError) as exc:
                log.warning("role_condition_unparsable", form=self.form.key, condition=key, error=str(exc))
                hit = _UNPARSABLE
            if hit is None:
                hit = _UNPARSABLE  # an empty condition is not a way to see everything
            self._parsed[key] = hit
        return hit if isinstance(hit, Leaf | Group) else None

    def __call__(self, condition: Mapping[str, Any], doc: Doc) -> bool:
        """True when the stored record satisfies the condition; an unparsable one matches nothing."""
        node = self.node(condition)
        return node is not None and node.matches(doc)

    def paths(self, condition: Mapping[str, Any]) -> set[str]:
        """Stored paths the condition reads (for projections)."""
        node = self.node(condition)
        return node.paths() if node is not None else set()


@dataclass
class FormAccess:
    """One principal's access to the records of one form (view, or edit with `edit=True`)."""

    principal: Principal
    form: FormSchema
    visibility: access.Visibility
    matcher: ConditionMatcher
    hidden: frozenset[str] = field(default_factory=frozenset)
    readonly: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, principal: Principal, form: FormSchema, matcher: ConditionMatcher, *, edit: bool = False) -> FormAccess:
        """Decided by crm_runtime.access over the principal's compiled policy."""
        policy, subject = principal.policy, principal.subject
        return cls(
            principal,
            form,
            access.visibility(policy, form.key, subject, edit=edit),
            matcher,
            access.hidden_fields(policy, form.key),
            access.readonly_fields(policy, form.key),
        )

    @property
    def unrestricted(self) -> bool:
        """True when every record of the tenant is visible (no predicate at all)."""
        return self.visibility.unrestricted

    def allows(self, doc: Doc) -> bool:
        """The exact rule on a stored record (its acl, and the role conditions on its data)."""
        return self.visibility.allows(doc, self.matcher)

    # the planner's AccessFilter protocol (domain/query.py)

    def matches(self, doc: Doc) -> bool:
        """Same as allows (the planner's Condition protocol)."""
        return self.allows(doc)

    def paths(self) -> set[str]:
        """Stored paths the exact check reads: acl and the paths of every branch condition."""
        out = {"acl"}
        for branch in self.visibility.branches:
            if branch.condition is not None:
                out |= self.matcher.paths(branch.condition)
        return out

    @property
    def pushdown(self) -> tuple[str, ...] | None:
        """The superset acl tokens the store can filter on (None: no acl predicate possible)."""
        return None if self.unrestricted else self.visibility.pushdown

    @property
    def exact(self) -> bool:
        """True when `acl $in pushdown` alone is the rule (no branch has a condition)."""
        return all(b.condition is None and b.tokens is not None for b in self.visibility.branches)

    # outputs

    def strip(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Record data without the hidden fields."""
        return access.strip_hidden(data, self.hidden) if self.hidden else dict(data)

    def title_of(self, doc: Doc, fallback: str) -> str:
        """The record's display name, or `fallback` when the caller may not see it or its title field."""
        if self.form.title_field in self.hidden or not self.allows(doc):
            return fallback
        return self.form.title_of(doc.get("data") or {}, fallback)


def input_errors(
    form: FormSchema, fa: FormAccess, data: Mapping[str, Any], locale: str, prefix: str = ""
) -> tuple[list[FieldError], dict[str, Any]]:
    """(errors for keys the caller may not write, the rest of `data` to validate).

    A hidden field gets exactly crm_schema's unknown-field error (its existence
    does not leak); a read-only one `read_only`; envelope keys `system_field`.
    """
    errors: list[FieldError] = []
    rest: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key in RECORD_SYSTEM_KEYS:
            errors.append(_schema_error(where, "system_field", str(key), locale))
        elif key in fa.hidden and form.field(key) is not None:
            errors.append(_schema_error(where, "unknown_field", str(key), locale))
        elif key in fa.readonly and form.field(key) is not None:
            errors.append(_schema_error(where, "read_only", _label(form.field(key) or {}, locale), locale))
        else:
            rest[key] = value
    return errors, rest


def _schema_error(where: str, rule: str, label: str, locale: str) -> FieldError:
    return FieldError(where, rule, crm_schema.message(rule, locale, label=label))


def _label(definition: Mapping[str, Any], locale: str) -> str:
    label = definition.get("label")
    if isinstance(label, Mapping):
        return str(label.get(locale) or label.get("zh-CN") or label.get("en") or definition.get("key") or "")
    return str(label or definition.get("key") or "")


def visible_changes(changes: Iterable[Mapping[str, Any]], hidden: frozenset[str]) -> list[dict[str, Any]]:
    """History changes without those of hidden fields."""
    return [dict(c) for c in changes if str(c.get("field")) not in hidden]
