"""Access control: the one place that decides who may do what to which records and fields.

Roles are data (owned by the gateway, editable per tenant). A role says, for
each form (by form key, `*` for every other form):

    actions    view create edit delete export import assign claim approve manage
    scope      own | department | department_tree | all   (which records it sees)
    condition  a record-query filter tree ANDed to the scope, with variables
               {"$user": "id" | "department_id" | "attr.<key>"} filled in per user
    fields     {field_key: hidden | readonly | editable}   (unnamed: editable)

A user may hold several roles; `compile_policy` unions them into a `Policy`
(actions: union; visibility: OR of each role's scope AND condition; a field is
hidden only if every role that sees the form hides it, read-only only if none
lets it be edited). The gateway compiles the policy once per request (cached by
role versions) and signs it into the principal token; every service decides
with the functions below and never re-reads roles.

Record-level visibility travels as *acl tokens* stored on each record
(`record_acl`): `u:<owner>`, `d:<owner's department>`, and shares
`ru:`/`rd:` (read, user/department) and `wu:`/`wd:` (edit). A principal's
`Visibility` names the tokens any of which let it see a record, so the record
service pushes one `acl $in [...]` predicate into the store (one multikey index)
and checks the exact rule (with conditions) on the rows it reads. Counts,
pages, keyword search, 360° views, reports and exports therefore agree.

Pure Python: no grpc, no pymongo.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("view", "create", "edit", "delete", "export", "import", "assign", "claim", "approve", "manage")
SCOPES = ("own", "department", "department_tree", "all")
FIELD_LEVELS = ("hidden", "readonly", "editable")
_LEVEL_RANK = {level: i for i, level in enumerate(FIELD_LEVELS)}
_SCOPE_RANK = {scope: i for i, scope in enumerate(SCOPES)}
ANY_FORM = "*"

Doc = Mapping[str, Any]
ConditionMatcher = Callable[[Mapping[str, Any], Doc], bool]
"""(condition filter tree, stored record) -> True when the record satisfies it."""


class PolicyError(ValueError):
    """A role definition that is not well formed; `field` names the offending member."""

    def __init__(self, field_path: str, rule: str, detail: str = "") -> None:
        super().__init__(f"{field_path}: {rule} {detail}".strip())
        self.field = field_path
        self.rule = rule
        self.detail = detail


# ----------------------------------------------------------------------------- role definitions


@dataclass(frozen=True)
class FormRule:
    """One role's rule for one form (or `*`)."""

    actions: frozenset[str] = frozenset()
    scope: str = "own"
    condition: Mapping[str, Any] | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, where: str) -> FormRule:
        """Validate a rule from JSON; raises PolicyError naming the member."""
        if not isinstance(raw, Mapping):
            raise PolicyError(where, "type", "an object")
        unknown = set(raw) - {"actions", "scope", "condition", "fields"}
        if unknown:
            raise PolicyError(f"{where}.{sorted(unknown)[0]}", "unknown_member")
        actions = raw.get("actions", [])
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise PolicyError(f"{where}.actions", "type", "a list of action names")
        bad = [a for a in actions if a not in ACTIONS]
        if bad:
            raise PolicyError(f"{where}.actions", "option", bad[0])
        scope = raw.get("scope", "own")
        if scope not in SCOPES:
            raise PolicyError(f"{where}.scope", "option", str(scope))
        condition = raw.get("condition")
        if condition is not None and (not isinstance(condition, Mapping) or not condition):
            raise PolicyError(f"{where}.condition", "type", "a filter tree")
        fields = raw.get("fields", {})
        if not isinstance(fields, Mapping):
            raise PolicyError(f"{where}.fields", "type", "an object")
        for key, level in fields.items():
            if not isinstance(key, str) or not key or level not in FIELD_LEVELS:
                raise PolicyError(f"{where}.fields.{key}", "option", str(level))
        return cls(frozenset(actions), scope, condition, dict(fields))

    def to_json(self) -> dict[str, Any]:
        """The stored / API form."""
        out: dict[str, Any] = {"actions": sorted(self.actions, key=ACTIONS.index), "scope": self.scope}
        if self.condition is not None:
            out["condition"] = self.condition
        out["fields"] = dict(self.fields)
        return out


@dataclass(frozen=True)
class RoleDefinition:
    """A role as the gateway stores it: tenant admin flag, a default rule and per-form rules."""

    key: str
    tenant_admin: bool = False
    default: FormRule = field(default_factory=FormRule)
    forms: Mapping[str, FormRule] = field(default_factory=dict)

    @classmethod
    def parse(cls, key: str, raw: Mapping[str, Any]) -> RoleDefinition:
        """Validate a role's permission document (`tenant_admin`, `default`, `forms`)."""
        admin = raw.get("tenant_admin", False)
        if not isinstance(admin, bool):
            raise PolicyError("tenant_admin", "type", "true or false")
        default = FormRule.parse(raw.get("default", {}), "default")
        forms_raw = raw.get("forms", {})
        if not isinstance(forms_raw, Mapping):
            raise PolicyError("forms", "type", "an object keyed by form key")
        forms = {str(k): FormRule.parse(v, f"forms.{k}") for k, v in forms_raw.items()}
        return cls(key, admin, default, forms)

    def rule(self, form_key: str) -> FormRule:
        """The rule for a form (its own, else the default)."""
        return self.forms.get(form_key) or self.default

    def to_json(self) -> dict[str, Any]:
        """The permission document."""
        return {
            "tenant_admin": self.tenant_admin,
            "default": self.default.to_json(),
            "forms": {k: v.to_json() for k, v in self.forms.items()},
        }


# The built-in roles a tenant starts with; ordinary editable roles afterwards.
_ALL = list(ACTIONS)
_MANAGER = [a for a in ACTIONS if a != "manage"]
_SALES = ["view", "create", "edit", "export", "claim"]
BUILTIN_ROLES: dict[str, dict[str, Any]] = {
    "admin": {"tenant_admin": True, "default": {"actions": _ALL, "scope": "all"}},
    "manager": {"default": {"actions": _MANAGER, "scope": "department_tree"}},
    "sales": {"default": {"actions": _SALES, "scope": "own"}},
}


def builtin_role(key: str) -> RoleDefinition:
    """A built-in role's definition (admin, manager, sales)."""
    return RoleDefinition.parse(key, BUILTIN_ROLES[key])


# ----------------------------------------------------------------------------- compiled policy


@dataclass(frozen=True)
class Grant:
    """One way a principal sees records of a form: a scope AND an optional condition."""

    scope: str
    condition: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FormPolicy:
    """What one user may do on one form, all roles united."""

    actions: frozenset[str] = frozenset()
    grants: tuple[Grant, ...] = ()
    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        """Compact form carried in the principal token."""
        out: dict[str, Any] = {"a": sorted(self.actions, key=ACTIONS.index)}
        if self.grants:
            out["g"] = [{"s": g.scope, **({"c": g.condition} if g.condition else {})} for g in self.grants]
        if self.hidden:
            out["h"] = sorted(self.hidden)
        if self.readonly:
            out["r"] = sorted(self.readonly)
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FormPolicy:
        """Inverse of to_json."""
        return cls(
            frozenset(raw.get("a", ())),
            tuple(Grant(str(g["s"]), g.get("c")) for g in raw.get("g", ())),
            frozenset(raw.get("h", ())),
            frozenset(raw.get("r", ())),
        )


NOTHING = FormPolicy()


@dataclass(frozen=True)
class Policy:
    """A user's compiled rights: tenant administration plus a FormPolicy per form key (`*` for the rest)."""

    tenant_admin: bool = False
    forms: Mapping[str, FormPolicy] = field(default_factory=dict)

    def form(self, form_key: str) -> FormPolicy:
        """The policy for a form key."""
        return self.forms.get(form_key) or self.forms.get(ANY_FORM) or NOTHING

    def to_json(self) -> dict[str, Any]:
        """Compact form (principal token)."""
        return {"ta": self.tenant_admin, "f": {k: v.to_json() for k, v in self.forms.items()}}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Policy:
        """Inverse of to_json."""
        return cls(bool(raw.get("ta")), {k: FormPolicy.from_json(v) for k, v in (raw.get("f") or {}).items()})

    def fingerprint(self) -> str:
        """A stable text of the policy (cache keys)."""
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _resolve(node: Any, variables: Mapping[str, Any]) -> Any:
    """Replace {"$user": name} operands with the user's values (unknown -> None, matching nothing)."""
    if isinstance(node, Mapping):
        if set(node) == {"$user"}:
            return variables.get(str(node["$user"]))
        return {k: _resolve(v, variables) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, variables) for v in node]
    return node


def user_variables(user_id: str, department_id: str, attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The variables a role condition may name: id, department_id, attr.<key>."""
    out: dict[str, Any] = {"id": user_id, "department_id": department_id}
    for key, value in (attributes or {}).items():
        out[f"attr.{key}"] = value
    return out


def _unite(rules: Sequence[FormRule], variables: Mapping[str, Any]) -> FormPolicy:
    actions: set[str] = set()
    grants: list[Grant] = []
    best: dict[str, int] = {}
    named: set[str] = set()
    viewing = 0
    for rule in rules:
        actions |= rule.actions
        if "view" not in rule.actions:
            continue
        viewing += 1
        cond = _resolve(rule.condition, variables) if rule.condition else None
        grant = Grant(rule.scope, cond)
        if grant not in grants:
            grants.append(grant)
        named |= set(rule.fields)
    # a field's level is the most permissive among the viewing roles (unnamed = editable)
    for key in named:
        levels = [_LEVEL_RANK[rule.fields.get(key, "editable")] for rule in rules if "view" in rule.actions]
        best[key] = max(levels)
    # an unconditional `all` grant makes every other grant redundant
    if any(g.scope == "all" and g.condition is None for g in grants):
        grants = [Grant("all")]
    else:
        grants.sort(key=lambda g: (-_SCOPE_RANK[g.scope], json.dumps(g.condition, sort_keys=True, default=str)))
    hidden = frozenset(k for k, r in best.items() if r == 0) if viewing else frozenset()
    readonly = frozenset(k for k, r in best.items() if r == 1) if viewing else frozenset()
    return FormPolicy(frozenset(actions), tuple(grants), hidden, readonly)


def compile_policy(roles: Iterable[RoleDefinition], variables: Mapping[str, Any] | None = None) -> Policy:
    """Unite the roles a user holds into one Policy (conditions resolved against the user's variables)."""
    roles = list(roles)
    variables = variables or {}
    keys = {ANY_FORM} | {k for r in roles for k in r.forms}
    forms = {key: _unite([r.rule(key) for r in roles], variables) for key in sorted(keys)}
    # forms equal to the default need not travel
    default = forms[ANY_FORM]
    compact = {k: v for k, v in forms.items() if k == ANY_FORM or v != default}
    return Policy(any(r.tenant_admin for r in roles), compact)


FULL = Policy(True, {ANY_FORM: FormPolicy(frozenset(ACTIONS), (Grant("all"),))})
"""Everything in the tenant: service identities doing system work."""


# ----------------------------------------------------------------------------- decisions


def record_acl(owner_id: str, department_id: str, shares: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The acl tokens stored on a record: owner, owner's department, and each share."""
    tokens = []
    if owner_id:
        tokens.append(f"u:{owner_id}")
    if department_id:
        tokens.append(f"d:{department_id}")
    for share in shares:
        prefix = "w" if share.get("access") == "edit" else "r"
        kind = "d" if share.get("kind") == "department" else "u"
        tokens.append(f"{prefix}{kind}:{share.get('id')}")
    return sorted(set(tokens))


@dataclass(frozen=True)
class Subject:
    """Who is asking, as far as scope is concerned."""

    user_id: str
    department_id: str = ""
    subtree: tuple[str, ...] = ()  # the user's department and every department below it


def scope_tokens(scope: str, subject: Subject) -> tuple[str, ...] | None:
    """The acl tokens that put a record inside `scope` for `subject`; None for `all`."""
    if scope == "all":
        return None
    tokens = [f"u:{subject.user_id}"]
    if scope == "department" and subject.department_id:
        tokens.append(f"d:{subject.department_id}")
    elif scope == "department_tree":
        depts = set(subject.subtree)
        if subject.department_id:
            depts.add(subject.department_id)
        tokens += [f"d:{d}" for d in sorted(depts)]
    return tuple(tokens)


def share_tokens(subject: Subject, *, edit: bool = False) -> tuple[str, ...]:
    """The acl tokens of records shared with the subject (edit shares only, or read and edit)."""
    mine = [f"wu:{subject.user_id}"] + ([f"wd:{subject.department_id}"] if subject.department_id else [])
    if not edit:
        mine += [f"ru:{subject.user_id}"] + ([f"rd:{subject.department_id}"] if subject.department_id else [])
    return tuple(sorted(mine))


@dataclass(frozen=True)
class Branch:
    """One way to see a record: its acl meets `tokens` (None: any record) and `condition` holds."""

    tokens: tuple[str, ...] | None
    condition: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Visibility:
    """Which records of a form a principal sees.

    `unrestricted`: every record of the tenant. Otherwise a record is visible
    when any branch holds. `pushdown` is a superset predicate on `acl` the store
    can run with one index (None when some branch needs no acl token, i.e. an
    `all` scope with a condition); the exact branches are checked on the rows.
    """

    unrestricted: bool
    branches: tuple[Branch, ...] = ()
    pushdown: tuple[str, ...] | None = None

    @property
    def nothing(self) -> bool:
        """True when no record is visible."""
        return not self.unrestricted and not self.branches

    def allows(self, doc: Doc, matches: ConditionMatcher) -> bool:
        """Exact check on a stored record (its `acl` list)."""
        if self.unrestricted:
            return True
        acl = set(doc.get("acl") or ())
        for branch in self.branches:
            if branch.tokens is not None and not acl.intersection(branch.tokens):
                continue
            if branch.condition is not None and not matches(branch.condition, doc):
                continue
            return True
        return False


def visibility(policy: Policy, form_key: str, subject: Subject, *, edit: bool = False) -> Visibility:
    """Records of `form_key` the subject may view (or, with edit=True, change)."""
    fp = policy.form(form_key)
    needed = "edit" if edit else "view"
    branches: list[Branch] = []
    if needed in fp.actions and "view" in fp.actions:
        for grant in fp.grants:
            tokens = scope_tokens(grant.scope, subject)
            if tokens is None and grant.condition is None:
                return Visibility(True)
            branches.append(Branch(tokens, grant.condition))
    branches.append(Branch(share_tokens(subject, edit=edit)))
    if any(b.tokens is None for b in branches):
        pushdown = None
    else:
        pushdown = tuple(sorted({t for b in branches for t in b.tokens or ()}))
    return Visibility(False, tuple(branches), pushdown)


def can(policy: Policy, form_key: str, action: str) -> bool:
    """True when the policy grants `action` on the form at all (before any record's scope)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return action in policy.form(form_key).actions


def hidden_fields(policy: Policy, form_key: str) -> frozenset[str]:
    """Field keys that must be absent from every output for this policy."""
    return policy.form(form_key).hidden


def readonly_fields(policy: Policy, form_key: str) -> frozenset[str]:
    """Field keys the policy may see but not set (hidden ones cannot be set either)."""
    fp = policy.form(form_key)
    return fp.readonly | fp.hidden


def strip_hidden(data: Mapping[str, Any], hidden: frozenset[str]) -> dict[str, Any]:
    """A copy of record data without the hidden keys (the rule every output path applies)."""
    return {k: v for k, v in data.items() if k not in hidden}


def may_assign_to(policy: Policy, form_key: str, subject: Subject, owner_id: str, owner_department: str) -> bool:
    """May the subject make `owner_id` (in `owner_department`) the owner of a record of this form?

    Assigning to oneself needs no `assign` right. Otherwise the `assign` action is
    needed, and the new owner must be inside one of the subject's scopes (an
    `all` grant: anyone in the tenant; `department`: people of the subject's
    department; `department_tree`: of its subtree; `own`: nobody else).
    """
    if owner_id == subject.user_id:
        return True
    fp = policy.form(form_key)
    if "assign" not in fp.actions:
        return False
    probe = record_acl(owner_id, owner_department)
    for grant in fp.grants:
        tokens = scope_tokens(grant.scope, subject)
        if tokens is None or set(tokens).intersection(probe):
            return True
    return False


def explain(
    policy: Policy,
    form_key: str,
    subject: Subject,
    action: str,
    doc: Doc | None,
    matches: ConditionMatcher,
) -> dict[str, Any]:
    """Why a principal may or may not do `action` (on the record `doc`, if given): {allowed, reasons}."""
    fp = policy.form(form_key)
    reasons: list[dict[str, Any]] = []
    if action not in fp.actions:
        reasons.append({"code": "action_not_granted", "action": action, "form": form_key})
        # a share can still grant view/edit of one record
        if doc is None or action not in ("view", "edit"):
            return {"allowed": False, "reasons": reasons}
    else:
        reasons.append({"code": "action_granted", "action": action, "form": form_key})
    if doc is None:
        return {"allowed": action in fp.actions, "reasons": reasons}
    acl = set(doc.get("acl") or ())
    if action in fp.actions and "view" in fp.actions:
        for grant in fp.grants:
            tokens = scope_tokens(grant.scope, subject)
            in_scope = tokens is None or bool(acl.intersection(tokens))
            cond_ok = grant.condition is None or matches(grant.condition, doc)
            if in_scope and cond_ok:
                reasons.append({"code": "in_scope", "scope": grant.scope, "condition": grant.condition})
                return {"allowed": True, "reasons": reasons}
            reasons.append(
                {
                    "code": "out_of_scope" if not in_scope else "condition_not_met",
                    "scope": grant.scope,
                    "condition": grant.condition,
                }
            )
    if action in ("view", "edit") and acl.intersection(share_tokens(subject, edit=action == "edit")):
        reasons.append({"code": "shared", "access": "edit" if action == "edit" else "read"})
        return {"allowed": True, "reasons": reasons}
    return {"allowed": False, "reasons": reasons}
