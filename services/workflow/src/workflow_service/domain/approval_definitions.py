"""Approval process definitions: a graph of nodes, checked against the published form and normalised at save.

A process is `{name, key, form, enabled, description, guard, start, channels, nodes}`
(services/workflow/README.md, "Approvals", has every option). Nodes:

* `approver` — `approvers` (each `{"type": "user", "id"}`, `{"type": "role", "role"}`,
  `{"type": "submitter_manager"}` or `{"type": "manager_of_manager"}`), `mode` `any` (或签:
  the first approval decides), `all` (会签: every one must approve, any rejection rejects)
  or `sequence` (one after another, in the order named), `if_empty` (`admin`: the tenant's
  administrators approve when nobody is found; `skip`: the step is passed), `timeouts`
  (`remind_after`, `escalate_after`, `escalate_to` `manager` or `admin`), `next`;
* `condition` — `branches` `[{"when": <condition tree>, "next"}]` tried in order, `default`;
  the trees are the automations' conditions (domain/conditions.py) on the form's fields;
* `cc` — `users` (the same approver specs), `next`;
* `end`.

`parse_process` refuses a bad definition with one FieldError per wrong part, named by
its path ("nodes[2].next", "nodes[1].branches[0].when.field", "guard.field") in the
caller's language: unknown node references, a node without a next step, unreachable
nodes, cycles, no end node, no approver node, approver nodes naming nobody. What it
returns is stored as is: fields by key, durations in seconds, names in both languages.

A `guard` `{field, condition}` makes the process decide a field change instead of a
submitted record: the record service holds a user's change of `field` (when the record
as it would be after the change matches `condition`) until the approval ends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crm_runtime.errors import ValidationFailed
from workflow_service.domain import templating
from workflow_service.domain.approval_messages import field_error
from workflow_service.domain.common import Check as _BaseCheck
from workflow_service.domain.conditions import parse_condition
from workflow_service.domain.definitions import CHANNELS, FormInfo, FormLookup


class Check(_BaseCheck):
    """Collects a process's errors with the approvals' own messages (domain/approval_messages.py)."""

    def fail(self, where: str, rule: str, **params: Any) -> None:
        """One more wrong part."""
        self.errors.append(field_error(where, rule, self.locale, **params))


NODE_TYPES = ("approver", "condition", "cc", "end")
APPROVER_TYPES = ("user", "role", "submitter_manager", "manager_of_manager")
MODES = ("any", "all", "sequence")
IF_EMPTY = ("admin", "skip")
ESCALATE_TO = ("manager", "admin")
MAX_NODES = 50
MAX_APPROVERS = 50
MAX_BRANCHES = 20
MAX_NAME = 100
MIN_TIMEOUT = 60
MAX_TIMEOUT = 366 * 86400
NOT_GUARDABLE = frozenset(
    {"approval_status", "formula", "auto_number", "lookup", "rollup", "sub_table", "owner", "created_by"}
)
_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_NODE_ID = re.compile(r"[A-Za-z0-9_\-]{1,40}")
ALLOWED = {"name", "key", "form", "form_id", "enabled", "description", "guard", "start", "channels", "nodes"}
DEFAULT_NAMES = {
    "approver": {"zh-CN": "审批", "en": "Approval"},
    "condition": {"zh-CN": "条件", "en": "Condition"},
    "cc": {"zh-CN": "抄送", "en": "CC"},
    "end": {"zh-CN": "结束", "en": "End"},
}


def parse_process(
    spec: Any, forms: FormLookup, *, locale: str = "zh-CN", partial_of: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The normalised definition of `spec` (a whole one, or a patch over `partial_of`); ValidationFailed if wrong."""
    check = Check(locale)
    if not isinstance(spec, Mapping):
        raise ValidationFailed([field_error("process_json", "not_object", locale)])
    for key in spec:
        if key not in ALLOWED:
            check.fail(str(key), "unknown_key", key=key)
    merged: dict[str, Any] = dict(partial_of or {})
    if partial_of is not None:
        merged["form"] = partial_of.get("form_id")
        if "form" in spec and spec["form"] not in (partial_of.get("form_id"), partial_of.get("form_key")):
            check.fail("form", "unknown_key", key="form")  # a process keeps its form
    merged.update(
        {k: v for k, v in spec.items() if k in ALLOWED and (partial_of is None or k not in ("form", "form_id"))}
    )
    name = _name(merged.get("name"), "name", check, required=True)
    key = merged.get("key") or ""
    if not isinstance(key, str) or (key and not _KEY.fullmatch(key)):
        check.fail("key", "bad_key", key=key)
        key = ""
    description = merged.get("description") or ""
    if not isinstance(description, str) or len(description) > 1000:
        check.fail("description", "too_long", max=1000)
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        check.fail("enabled", "not_boolean")
    channels = merged.get("channels", ["in_app"])
    if not isinstance(channels, list) or not channels:
        check.fail("channels", "not_list")
        channels = ["in_app"]
    for index, channel in enumerate(channels):
        if channel not in CHANNELS:
            check.fail(f"channels[{index}]", "unknown_choice", value=channel, choices=", ".join(CHANNELS))
    form_ref = merged.get("form") or merged.get("form_id")
    form: FormInfo | None = None
    if not isinstance(form_ref, str) or not form_ref:
        check.fail("form", "required")
    else:
        form = forms.published(form_ref)
        if form is None:
            check.fail("form", "form_not_found", ref=form_ref)
    if form is None:
        raise ValidationFailed(check.errors)
    guard = _guard(merged.get("guard"), form, check)
    nodes = _nodes(merged.get("nodes"), form, check)
    start = merged.get("start") or (nodes[0]["id"] if nodes else "")
    if nodes:
        _graph(nodes, start, check, explicit_start="start" in merged and bool(merged.get("start")))
    if check.errors:
        raise ValidationFailed(check.errors)
    return {
        "name": name,
        "key": key,
        "description": description,
        "form_id": form.id,
        "form_key": form.key,
        "enabled": bool(enabled),
        "guard": guard,
        "start": start,
        "channels": [c for c in channels if c in CHANNELS],
        "nodes": nodes,
    }


def _name(
    raw: Any, where: str, check: Check, *, required: bool, default: Mapping[str, str] | None = None
) -> dict[str, str]:
    if raw is None and not required:
        return dict(default or {})
    if isinstance(raw, str):
        raw = {"zh-CN": raw, "en": raw}
    if not isinstance(raw, Mapping) or not any(isinstance(v, str) and v.strip() for v in raw.values()):
        check.fail(where, "required")
        return dict(default or {})
    out: dict[str, str] = {}
    for lang in ("zh-CN", "en"):
        text = raw.get(lang) or next((v for v in raw.values() if isinstance(v, str) and v.strip()), "")
        if not isinstance(text, str) or len(text) > MAX_NAME:
            check.fail(f"{where}.{lang}", "too_long", max=MAX_NAME)
            continue
        out[lang] = text.strip()
    return out


def _condition(raw: Any, form: FormInfo, where: str, check: Check) -> Any:
    """A condition tree checked on the form (record conditions only: no change operators)."""
    try:
        parsed = parse_condition(raw, form.fields, locale=check.locale, where=where)
    except ValidationFailed as exc:
        check.errors.extend(exc.errors)
        return raw
    if parsed is not None and not parsed.compilable:
        check.fail(where, "unknown_choice", value="changed", choices="eq, ne, in, gt, gte, lt, lte, ...")
    return raw


def _guard(raw: Any, form: FormInfo, check: Check) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        check.fail("guard", "not_object")
        return None
    for key in raw:
        if key not in ("field", "condition"):
            check.fail(f"guard.{key}", "unknown_key", key=key)
    ref = raw.get("field")
    key = templating.field_key_of(ref, form.fields) if isinstance(ref, str) and ref else None
    if key is None:
        check.fail("guard.field", "unknown_field", field=ref, form=form.name)
        return None
    if str(form.fields[key].get("type")) in NOT_GUARDABLE:
        check.fail("guard.field", "guard_field", label=form.label(key, check.locale))
        return None
    condition = raw.get("condition") or None
    if condition is not None:
        _condition(condition, form, "guard.condition", check)
    return {"field": key, "condition": condition}


def _approver_specs(raw: Any, where: str, check: Check) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        if raw is not None:
            check.fail(where, "not_list")
        return []
    if len(raw) > MAX_APPROVERS:
        check.fail(where, "too_many", max=MAX_APPROVERS)
        return []
    out: list[dict[str, Any]] = []
    for index, spec in enumerate(raw):
        swhere = f"{where}[{index}]"
        kind = spec.get("type") if isinstance(spec, Mapping) else spec
        if not isinstance(spec, Mapping) or kind not in APPROVER_TYPES:
            check.fail(f"{swhere}.type", "unknown_approver", type=kind, choices=", ".join(APPROVER_TYPES))
            continue
        for key in spec:
            if key not in ("type", "id", "role"):
                check.fail(f"{swhere}.{key}", "unknown_key", key=key)
        item: dict[str, Any] = {"type": kind}
        if kind == "user":
            user_id = spec.get("id")
            if not isinstance(user_id, str) or not user_id.strip():
                check.fail(f"{swhere}.id", "required")
                continue
            item["id"] = user_id.strip()
        elif kind == "role":
            role = spec.get("role")
            if not isinstance(role, str) or not role.strip():
                check.fail(f"{swhere}.role", "required")
                continue
            item["role"] = role.strip()
        if item not in out:
            out.append(item)
    return out


def _timeouts(raw: Any, where: str, check: Check) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        check.fail(where, "not_object")
        return None
    out: dict[str, Any] = {}
    for key in raw:
        if key not in ("remind_after", "escalate_after", "escalate_to"):
            check.fail(f"{where}.{key}", "unknown_key", key=key)
    for key in ("remind_after", "escalate_after"):
        if raw.get(key) is None:
            continue
        seconds = templating.parse_duration(raw[key])
        if seconds is None:
            check.fail(f"{where}.{key}", "bad_duration", value=raw[key])
            continue
        if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
            check.fail(f"{where}.{key}", "duration_range", min="1m", max="366d")
            continue
        out[key] = seconds
    escalate_to = raw.get("escalate_to", "manager")
    if escalate_to not in ESCALATE_TO:
        check.fail(f"{where}.escalate_to", "unknown_choice", value=escalate_to, choices=", ".join(ESCALATE_TO))
    out["escalate_to"] = escalate_to if escalate_to in ESCALATE_TO else "manager"
    if "remind_after" in out and "escalate_after" in out and out["escalate_after"] <= out["remind_after"]:
        check.fail(f"{where}.escalate_after", "escalate_before_remind")
    return out if ("remind_after" in out or "escalate_after" in out) else None


def _ref(raw: Any, where: str, check: Check) -> str:
    if raw is None or raw == "":
        return ""
    if not isinstance(raw, str):
        check.fail(where, "not_text")
        return ""
    return raw


def _nodes(raw: Any, form: FormInfo, check: Check) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        check.fail("nodes", "required" if not raw else "not_list")
        return []
    if len(raw) > MAX_NODES:
        check.fail("nodes", "too_many", max=MAX_NODES)
        return []
    out: list[dict[str, Any]] = []
    for index, node in enumerate(raw):
        where = f"nodes[{index}]"
        if not isinstance(node, Mapping):
            check.fail(where, "not_object")
            continue
        kind = node.get("type")
        if kind not in NODE_TYPES:
            check.fail(f"{where}.type", "unknown_node_type", type=kind, choices=", ".join(NODE_TYPES))
            continue
        node_id = node.get("id")
        if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
            check.fail(f"{where}.id", "bad_node_id" if node_id else "required", id=node_id)
            continue
        known = {"id", "type", "name"}
        item: dict[str, Any] = {
            "id": node_id,
            "type": kind,
            "name": _name(node.get("name"), f"{where}.name", check, required=False, default=DEFAULT_NAMES[str(kind)]),
        }
        if kind == "approver":
            known |= {"approvers", "mode", "if_empty", "timeouts", "next"}
            item["approvers"] = _approver_specs(node.get("approvers"), f"{where}.approvers", check)
            if not item["approvers"] and not any(e.field.startswith(f"{where}.approvers") for e in check.errors):
                check.fail(f"{where}.approvers", "empty_approvers", id=node_id)
            mode = node.get("mode", "any")
            if mode not in MODES:
                check.fail(f"{where}.mode", "unknown_choice", value=mode, choices=", ".join(MODES))
            item["mode"] = mode if mode in MODES else "any"
            if_empty = node.get("if_empty", "admin")
            if if_empty not in IF_EMPTY:
                check.fail(f"{where}.if_empty", "unknown_choice", value=if_empty, choices=", ".join(IF_EMPTY))
            item["if_empty"] = if_empty if if_empty in IF_EMPTY else "admin"
            item["timeouts"] = _timeouts(node.get("timeouts"), f"{where}.timeouts", check)
            item["next"] = _ref(node.get("next"), f"{where}.next", check)
        elif kind == "cc":
            known |= {"users", "next"}
            item["users"] = _approver_specs(node.get("users"), f"{where}.users", check)
            if not item["users"] and not any(e.field.startswith(f"{where}.users") for e in check.errors):
                check.fail(f"{where}.users", "empty_cc", id=node_id)
            item["next"] = _ref(node.get("next"), f"{where}.next", check)
        elif kind == "condition":
            known |= {"branches", "default"}
            branches = node.get("branches")
            if not isinstance(branches, list) or not branches:
                check.fail(f"{where}.branches", "empty_branches", id=node_id)
                branches = []
            if len(branches) > MAX_BRANCHES:
                check.fail(f"{where}.branches", "too_many", max=MAX_BRANCHES)
                branches = []
            parsed = []
            for b_index, branch in enumerate(branches):
                bwhere = f"{where}.branches[{b_index}]"
                if not isinstance(branch, Mapping):
                    check.fail(bwhere, "not_object")
                    continue
                for key in branch:
                    if key not in ("when", "next", "name"):
                        check.fail(f"{bwhere}.{key}", "unknown_key", key=key)
                if branch.get("when") is None:
                    check.fail(f"{bwhere}.when", "required")
                    continue
                parsed.append(
                    {
                        "when": _condition(branch.get("when"), form, f"{bwhere}.when", check),
                        "next": _ref(branch.get("next"), f"{bwhere}.next", check),
                    }
                )
            item["branches"] = parsed
            item["default"] = _ref(node.get("default"), f"{where}.default", check)
        else:
            known |= {"next"}
            if node.get("next"):
                check.fail(f"{where}.next", "end_has_next", id=node_id)
        for key in node:
            if key not in known:
                check.fail(f"{where}.{key}", "unknown_key", key=key)
        item["_index"] = index
        out.append(item)
    return out


def edges(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path suffix, target node id) of every way out of a node."""
    if node["type"] == "condition":
        out = [(f"branches[{i}].next", str(b.get("next") or "")) for i, b in enumerate(node.get("branches") or [])]
        return [*out, ("default", str(node.get("default") or ""))]
    if node["type"] == "end":
        return []
    return [("next", str(node.get("next") or ""))]


def _graph(nodes: list[dict[str, Any]], start: str, check: Check, *, explicit_start: bool) -> None:
    """Unknown references, dead ends, unreachable nodes, cycles, no end, no approver; strips `_index`."""
    by_id: dict[str, dict[str, Any]] = {}
    for node in nodes:
        where = f"nodes[{node['_index']}]"
        if node["id"] in by_id:
            check.fail(f"{where}.id", "duplicate_node", id=node["id"])
            continue
        by_id[node["id"]] = node
    if not any(n["type"] == "end" for n in nodes):
        check.fail("nodes", "no_end")
    if not any(n["type"] == "approver" for n in nodes):
        check.fail("nodes", "no_approver_node")
    broken = False
    for node in by_id.values():
        where = f"nodes[{node['_index']}]"
        for suffix, target in edges(node):
            if not target:
                check.fail(f"{where}.{suffix}", "no_next", id=node["id"])
                broken = True
            elif target not in by_id:
                check.fail(f"{where}.{suffix}", "unknown_node", ref=target)
                broken = True
    if start not in by_id:
        check.fail("start" if explicit_start else "nodes", "unknown_node", ref=start)
        broken = True
    if not broken:
        # depth-first from the start: an edge to a node on the current path is a cycle
        state: dict[str, int] = {}  # 1 on the path, 2 finished
        stack: list[tuple[str, int]] = [(start, 0)]
        state[start] = 1
        while stack:
            node_id, at = stack[-1]
            outs = edges(by_id[node_id])
            if at >= len(outs):
                state[node_id] = 2
                stack.pop()
                continue
            stack[-1] = (node_id, at + 1)
            suffix, target = outs[at]
            if state.get(target) == 1:
                check.fail(f"nodes[{by_id[node_id]['_index']}].{suffix}", "cycle", id=node_id, to=target)
            elif target not in state:
                state[target] = 1
                stack.append((target, 0))
        for node in by_id.values():
            if node["id"] not in state:
                check.fail(f"nodes[{node['_index']}]", "unreachable_node", id=node["id"])
    for node in nodes:
        node.pop("_index", None)


def node_map(process: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A stored process's nodes by id."""
    return {str(n["id"]): dict(n) for n in process.get("nodes") or []}


def user_definition(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The user-facing definition of a stored process (what a patch applies to)."""
    return {
        "name": doc.get("name"),
        "key": doc.get("key") or "",
        "description": doc.get("description") or "",
        "form_id": doc.get("form_id"),
        "form_key": doc.get("form_key"),
        "enabled": doc.get("enabled", True),
        "guard": doc.get("guard"),
        "start": doc.get("start"),
        "channels": doc.get("channels") or ["in_app"],
        "nodes": doc.get("nodes") or [],
    }
