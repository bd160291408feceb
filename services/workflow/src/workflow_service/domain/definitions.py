"""Automation definitions: what a user saves, checked against the published forms and normalised.

An automation is `{name, form, enabled, trigger, condition, actions}`
(services/workflow/README.md has every option). `parse_automation` refuses a
bad definition at save with one FieldError per wrong part, named by its path
in the definition ("trigger.cron", "actions[1].form", "actions[0].values.title")
and in the caller's language; what it returns is the stored, normalised form
(forms and fields by id and key, durations in seconds, select operands as
option values), so that a run never meets an unknown name.

Triggers: record_created, record_updated (optionally `fields`, and `from`/`to`
for one field), record_saved (created or updated), record_deleted,
owner_changed, owner_assigned (created with an owner, or given one), schedule
(`cron` in the tenant's time zone), date_relative (`field` + `offset`),
inactivity (`after`, with `field` — no change of that field — or
`related_form` + `related_field` — no new related record — since `since`),
manual (a button on a record: a user runs it, choosing the `optional` actions,
e.g. the 线索's 转化).

Actions: create_record, update_record (the record or a related one), assign_owner,
notify, webhook, move_to_pool, assign_from_pool, start_approval (submit the record to an
approval process, domain/approval_engine.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from crm_runtime.errors import ValidationFailed
from workflow_service.domain import templating
from workflow_service.domain.approval_messages import field_error as approval_error
from workflow_service.domain.common import Check
from workflow_service.domain.conditions import parse_condition
from workflow_service.domain.errors import field_error

TRIGGERS = (
    "record_created",
    "record_updated",
    "record_saved",
    "record_deleted",
    "owner_changed",
    "owner_assigned",
    "schedule",
    "date_relative",
    "inactivity",
    "manual",
)
EVENT_TRIGGERS = frozenset(TRIGGERS[:6])
TIMER_TRIGGERS = frozenset({"date_relative", "inactivity"})
ACTIONS = (
    "create_record", "update_record", "assign_owner", "notify", "webhook", "move_to_pool", "assign_from_pool",
    "start_approval",
)  # fmt: skip
STRATEGIES = ("round_robin", "load_balanced", "rule")
RECIPIENTS = (
    "owner", "owner_manager", "user", "role", "department_members", "department_leader", "user_field", "record_creator",
)  # fmt: skip
CHANNELS = ("in_app", "email", "wecom", "dingtalk", "feishu", "sms", "webhook")
SINCE = ("created", "owner_assigned", "changed")
DATE_TYPES = frozenset({"date", "datetime"})
USER_TYPES = frozenset({"user", "owner", "created_by"})
MAX_ACTIONS = 20
MAX_NAME = 100
MAX_TEXT = templating.MAX_TEMPLATE
MAX_USERS = 200
MAX_OFFSET = 366 * 86400
MAX_AFTER = 366 * 86400
MIN_AFTER = 60


@dataclass(frozen=True)
class FormInfo:
    """A published form as the workflow needs it: ids, name and fields by key."""

    id: str
    key: str
    name: str
    fields: Mapping[str, Mapping[str, Any]]
    version: int = 0
    names: Mapping[str, str] = field(default_factory=dict)

    def title(self, locale: str) -> str:
        """The form's name in `locale` (its zh-CN name, else its key)."""
        return str(self.names.get(locale) or self.name or self.key)

    def label(self, key: str, locale: str) -> str:
        """A field's label in `locale`, else its key."""
        definition = self.fields.get(key) or {}
        label = definition.get("label")
        if isinstance(label, Mapping):
            return str(label.get(locale) or label.get("zh-CN") or key)
        return str(label or key)


class FormLookup(Protocol):
    """The published forms of the caller's tenant (FormService.GetPublishedForm)."""

    def published(self, form_ref: str) -> FormInfo | None:
        """The latest published version of a form by id or key, or None."""
        ...


# ---------------------------------------------------------------- entry point


def parse_automation(
    spec: Any, forms: FormLookup, *, locale: str = "zh-CN", partial_of: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The normalised definition of `spec` (a whole one, or a patch over `partial_of`); ValidationFailed if wrong."""
    check = Check(locale)
    if not isinstance(spec, Mapping):
        raise ValidationFailed([field_error("automation_json", "not_object", locale)])
    allowed = {"name", "form", "form_id", "enabled", "trigger", "condition", "actions", "description"}
    for key in spec:
        if key not in allowed:
            check.fail(str(key), "unknown_key", key=key)
    merged: dict[str, Any] = dict(partial_of or {})
    if partial_of is not None:
        # the stored form reference stays unless the patch names another form
        merged["form"] = partial_of.get("form_id")
    merged.update({k: v for k, v in spec.items() if k in allowed})
    form_ref = merged.get("form") or merged.get("form_id")
    name = _name(merged.get("name"), check)
    description = merged.get("description") or ""
    if not isinstance(description, str) or len(description) > 1000:
        check.fail("description", "too_long", max=1000)
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        check.fail("enabled", "not_boolean")
    form: FormInfo | None = None
    if not isinstance(form_ref, str) or not form_ref:
        check.fail("form", "required")
    else:
        form = forms.published(form_ref)
        if form is None:
            check.fail("form", "form_not_found", ref=form_ref)
    if form is None:
        raise ValidationFailed(check.errors)
    trigger = _trigger(merged.get("trigger"), form, forms, check)
    condition = merged.get("condition") or None
    try:
        parsed = parse_condition(condition, form.fields, locale=locale, where="condition")
    except ValidationFailed as exc:
        check.errors.extend(exc.errors)
        parsed = None
    if parsed is not None and trigger and trigger.get("type") not in EVENT_TRIGGERS and not parsed.compilable:
        check.fail("condition", "event_only_condition", op="changed")
    actions = _actions(merged.get("actions"), form, forms, check)
    if check.errors:
        raise ValidationFailed(check.errors)
    return {
        "name": name,
        "description": description,
        "form_id": form.id,
        "form_key": form.key,
        "enabled": bool(enabled),
        "trigger": trigger,
        "condition": condition,
        "actions": actions,
    }


def _name(raw: Any, check: Check) -> dict[str, str]:
    if isinstance(raw, str):
        raw = {"zh-CN": raw, "en": raw}
    if not isinstance(raw, Mapping) or not any(isinstance(v, str) and v.strip() for v in raw.values()):
        check.fail("name", "required")
        return {}
    out: dict[str, str] = {}
    for lang in ("zh-CN", "en"):
        text = raw.get(lang) or next((v for v in raw.values() if isinstance(v, str) and v.strip()), "")
        if not isinstance(text, str) or len(text) > MAX_NAME:
            check.fail(f"name.{lang}", "too_long", max=MAX_NAME)
            continue
        out[lang] = text.strip()
    return out


# ---------------------------------------------------------------- triggers


def _field_key(form: FormInfo, ref: Any, where: str, check: Check, types: frozenset[str] | None = None) -> str:
    key = templating.field_key_of(ref, form.fields) if isinstance(ref, str) and ref else None
    if key is None:
        check.fail(where, "unknown_field", field=ref, form=form.title(check.locale))
        return ""
    if types is not None and str(form.fields[key].get("type")) not in types:
        expected = {"zh-CN": "日期或日期时间", "en": "date or datetime"} if types == DATE_TYPES else {}
        check.fail(where, "field_type", label=form.label(key, check.locale), expected=expected.get(check.locale, ""))
        return ""
    return key


def _duration(raw: Any, where: str, check: Check, lo: int, hi: int) -> int:
    seconds = templating.parse_duration(raw)
    if seconds is None:
        check.fail(where, "bad_duration", value=raw)
        return 0
    if not lo <= seconds <= hi:
        check.fail(where, "duration_range", min=_human(lo), max=_human(hi))
    return seconds


def _human(seconds: int) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{sign}{seconds // size}{unit}"
    return f"{sign}{seconds}s"


def _trigger(raw: Any, form: FormInfo, forms: FormLookup, check: Check) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        check.fail("trigger", "not_object" if raw is not None else "required")
        return {}
    kind = raw.get("type")
    if kind not in TRIGGERS:
        check.fail("trigger.type", "unknown_trigger", type=kind, choices=", ".join(TRIGGERS))
        return {}
    out: dict[str, Any] = {"type": kind}
    known = {"type"}
    if kind in ("record_updated", "record_saved"):
        known |= {"fields", "from", "to"}
        keys = raw.get("fields") or []
        if not isinstance(keys, list):
            check.fail("trigger.fields", "not_list")
            keys = []
        out["fields"] = [k for i, ref in enumerate(keys) if (k := _field_key(form, ref, f"trigger.fields[{i}]", check))]
        for side in ("from", "to"):
            if side not in raw:
                continue
            if len(out["fields"]) != 1:
                check.fail(f"trigger.{side}", "from_to_one_field")
                continue
            leaf = {"field": out["fields"][0], "op": "eq", "value": raw[side]}
            try:
                parse_condition(leaf, form.fields, locale=check.locale, where=f"trigger.{side}")
            except ValidationFailed as exc:
                check.errors.extend(exc.errors)
                continue
            out[side] = _normalised_operand(form, out["fields"][0], raw[side])
    elif kind == "schedule":
        known |= {"cron", "time_zone", "limit"}
        cron = raw.get("cron")
        if not isinstance(cron, str) or not cron.strip() or not croniter.is_valid(cron.strip()):
            check.fail("trigger.cron", "bad_cron", cron=cron)
        else:
            out["cron"] = " ".join(cron.split())
        tz = raw.get("time_zone")
        if tz is not None:
            try:
                ZoneInfo(str(tz))
                out["time_zone"] = str(tz)
            except (ZoneInfoNotFoundError, ValueError):
                check.fail("trigger.time_zone", "bad_time_zone", tz=tz)
        limit = raw.get("limit", 10_000)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100_000:
            check.fail("trigger.limit", "duration_range", min=1, max=100_000)
        else:
            out["limit"] = limit
    elif kind == "date_relative":
        known |= {"field", "offset"}
        out["field"] = _field_key(form, raw.get("field"), "trigger.field", check, DATE_TYPES)
        out["offset"] = _duration(raw.get("offset", "0m"), "trigger.offset", check, -MAX_OFFSET, MAX_OFFSET)
    elif kind == "inactivity":
        known |= {"after", "field", "related_form", "related_field", "since", "on_related"}
        out["after"] = _duration(raw.get("after"), "trigger.after", check, MIN_AFTER, MAX_AFTER)
        since = raw.get("since", "changed")
        if since not in SINCE:
            check.fail("trigger.since", "unknown_trigger", type=since, choices=", ".join(SINCE))
        out["since"] = since
        on_related = raw.get("on_related", "cancel" if since == "owner_assigned" else "restart")
        if on_related not in ("cancel", "restart"):
            check.fail("trigger.on_related", "unknown_trigger", type=on_related, choices="cancel, restart")
        out["on_related"] = on_related
        if raw.get("field"):
            out["field"] = _field_key(form, raw.get("field"), "trigger.field", check)
        if raw.get("related_form"):
            related = forms.published(str(raw["related_form"]))
            if related is None:
                check.fail("trigger.related_form", "form_not_found", ref=raw["related_form"])
            else:
                out["related_form_id"] = related.id
                out["related_form_key"] = related.key
                out["related_field"] = _relation_to(related, raw.get("related_field"), form, check)
    for key in raw:
        if key not in known:
            check.fail(f"trigger.{key}", "unknown_key", key=key)
    return out


def _normalised_operand(form: FormInfo, key: str, value: Any) -> Any:
    """A select/stage operand given by label becomes its option value."""
    definition = form.fields.get(key) or {}
    for option in definition.get("options") or []:
        if not isinstance(option, Mapping):
            continue
        labels = option.get("label")
        names = list(labels.values()) if isinstance(labels, Mapping) else [labels]
        if value == option.get("value") or value in names:
            return option.get("value")
    return value


def _relation_to(related: FormInfo, ref: Any, target: FormInfo, check: Check) -> str:
    """The key of a relation field of `related` that points to `target`."""
    key = templating.field_key_of(ref, related.fields) if isinstance(ref, str) and ref else None
    if key is None:
        check.fail("trigger.related_field", "unknown_field", field=ref, form=related.title(check.locale))
        return ""
    definition = related.fields[key]
    if definition.get("type") != "relation":
        check.fail("trigger.related_field", "relation_field", field=ref, form=related.title(check.locale))
        return ""
    points_to = str((definition.get("relation") or {}).get("form_id") or "")
    if points_to not in (target.id, target.key):
        check.fail("trigger.related_field", "relation_target", field=ref, target=target.title(check.locale))
        return ""
    return key


# ---------------------------------------------------------------- actions


def _actions(raw: Any, form: FormInfo, forms: FormLookup, check: Check) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        check.fail("actions", "required" if not raw else "not_list")
        return []
    if len(raw) > MAX_ACTIONS:
        check.fail("actions", "too_many", max=MAX_ACTIONS)
        return []
    out: list[dict[str, Any]] = []
    for index, action in enumerate(raw):
        where = f"actions[{index}]"
        if not isinstance(action, Mapping):
            check.fail(where, "not_object")
            continue
        kind = action.get("type")
        if kind not in ACTIONS:
            check.fail(f"{where}.type", "unknown_action", type=kind, choices=", ".join(ACTIONS))
            continue
        parse = _ACTION_PARSERS[str(kind)]
        optional = _optional(action, where, check)
        rest = {k: v for k, v in action.items() if k != "optional"}
        out.append({"type": kind, **parse(rest, where, form, forms, check, index), **optional})
    return out


def _templates(
    raw: Any, where: str, source: FormInfo, check: Check, steps: int, target: FormInfo | None = None
) -> dict[str, Any]:
    """A {field: template} map: every target field exists, every placeholder names a field of the source."""
    if not isinstance(raw, Mapping) or not raw:
        check.fail(where, "required" if not raw else "not_object")
        return {}
    out: dict[str, Any] = {}
    for ref, template in raw.items():
        key = str(ref)
        if target is not None:
            found = templating.field_key_of(str(ref), target.fields)
            if found is None:
                check.fail(f"{where}.{ref}", "unknown_field", field=ref, form=target.title(check.locale))
                continue
            key = found
        out[key] = _template(template, f"{where}.{ref}", source, check, steps)
    return out


def _template(template: Any, where: str, source: FormInfo, check: Check, steps: int) -> Any:
    if not isinstance(template, str):
        return template
    if len(template) > MAX_TEXT:
        check.fail(where, "too_long", max=MAX_TEXT)
        return template
    try:
        found = templating.placeholders(template)
    except templating.TemplateError as exc:
        check.fail(where, "template_syntax", error=str(exc))
        return template
    for placeholder in found:
        if not templating.known_name(placeholder.name, source.fields, steps):
            check.fail(where, "template_field", name=placeholder.name, form=source.title(check.locale))
    return template


def _target_form(
    action: Mapping[str, Any], where: str, forms: FormLookup, check: Check, key: str = "form"
) -> FormInfo | None:
    ref = action.get(key)
    if not isinstance(ref, str) or not ref:
        check.fail(f"{where}.{key}", "required")
        return None
    found = forms.published(ref)
    if found is None:
        check.fail(f"{where}.{key}", "form_not_found", ref=ref)
    return found


def _unknown_keys(action: Mapping[str, Any], known: set[str], where: str, check: Check) -> None:
    for key in action:
        if key not in known:
            check.fail(f"{where}.{key}", "unknown_key", key=key)


def _create_record(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    _unknown_keys(action, {"type", "form", "values", "owner"}, where, check)
    target = _target_form(action, where, forms, check)
    if target is None:
        return {}
    values = _templates(action.get("values"), f"{where}.values", form, check, index, target)
    owner = _template(action.get("owner", "{owner_id}"), f"{where}.owner", form, check, index)
    return {"form_id": target.id, "form_key": target.key, "values": values, "owner": owner}


def _update_record(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    _unknown_keys(action, {"type", "target", "values", "if_empty", "if_later"}, where, check)
    target_ref = action.get("target", "self")
    target_form: FormInfo | None = form
    relation = ""
    if target_ref != "self":
        key = templating.field_key_of(target_ref, form.fields) if isinstance(target_ref, str) else None
        definition = form.fields.get(key or "") or {}
        if key is None or definition.get("type") != "relation":
            check.fail(f"{where}.target", "relation_field", field=target_ref, form=form.title(check.locale))
            return {}
        relation = key
        target_form = forms.published(str((definition.get("relation") or {}).get("form_id") or ""))
        if target_form is None:
            check.fail(f"{where}.target", "form_not_found", ref=target_ref)
            return {}
    values = _templates(action.get("values"), f"{where}.values", form, check, index, target_form)
    if_empty = action.get("if_empty") or []
    if not isinstance(if_empty, list):
        check.fail(f"{where}.if_empty", "not_list")
        if_empty = []
    only_empty = []
    for i, ref in enumerate(if_empty):
        key = templating.field_key_of(str(ref), target_form.fields) if target_form else None
        if key is None or key not in values:
            check.fail(
                f"{where}.if_empty[{i}]",
                "unknown_field",
                field=ref,
                form=target_form.title(check.locale) if target_form else "",
            )
            continue
        only_empty.append(key)
    if_later = action.get("if_later") or []
    only_later = []
    for i, ref in enumerate(if_later if isinstance(if_later, list) else []):
        key = templating.field_key_of(str(ref), target_form.fields) if target_form else None
        if (
            target_form is None
            or key is None
            or key not in values
            or target_form.fields[key].get("type") not in DATE_TYPES
        ):
            check.fail(
                f"{where}.if_later[{i}]",
                "unknown_field",
                field=ref,
                form=target_form.title(check.locale) if target_form else "",
            )
            continue
        only_later.append(key)
    return {
        "target": relation or "self",
        "form_id": target_form.id if target_form else "",
        "values": values,
        "if_empty": only_empty,
        "if_later": only_later,
    }


def _user_list(raw: Any, where: str, check: Check) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(u, str) and u for u in raw):
        check.fail(where, "not_list")
        return []
    if len(raw) > MAX_USERS:
        check.fail(where, "too_many", max=MAX_USERS)
    return list(dict.fromkeys(raw))


def _assign_owner(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    _unknown_keys(
        action,
        {"type", "strategy", "users", "department", "role", "rules", "open_condition", "count_form", "count_field"},
        where,
        check,
    )
    strategy = action.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        check.fail(f"{where}.strategy", "unknown_strategy", strategy=strategy, choices=", ".join(STRATEGIES))
        return {}
    out: dict[str, Any] = {"strategy": strategy, **_pool(action, where, check)}
    if strategy == "rule":
        rules = action.get("rules")
        if not isinstance(rules, list) or not rules:
            check.fail(f"{where}.rules", "required")
            return out
        parsed_rules = []
        for i, rule in enumerate(rules):
            rwhere = f"{where}.rules[{i}]"
            if not isinstance(rule, Mapping):
                check.fail(rwhere, "not_object")
                continue
            try:
                parse_condition(rule.get("when"), form.fields, locale=check.locale, where=f"{rwhere}.when")
            except ValidationFailed as exc:
                check.errors.extend(exc.errors)
            pool = _pool(rule, rwhere, check)
            if not any(pool.values()):
                check.fail(rwhere, "no_candidates")
            parsed_rules.append({"when": rule.get("when"), **pool})
        out["rules"] = parsed_rules
    elif not any(out[k] for k in ("users", "department", "role")):
        check.fail(where, "no_candidates")
    if strategy == "load_balanced":
        count_form = forms.published(str(action.get("count_form") or form.id))
        if count_form is None:
            check.fail(f"{where}.count_form", "form_not_found", ref=action.get("count_form"))
            return out
        out["count_form_id"] = count_form.id
        if action.get("open_condition"):
            try:
                parse_condition(
                    action["open_condition"], count_form.fields, locale=check.locale, where=f"{where}.open_condition"
                )
            except ValidationFailed as exc:
                check.errors.extend(exc.errors)
            out["open_condition"] = action["open_condition"]
    return out


def _pool(raw: Mapping[str, Any], where: str, check: Check) -> dict[str, Any]:
    users = _user_list(raw.get("users"), f"{where}.users", check)
    department = raw.get("department") or ""
    role = raw.get("role") or ""
    if not isinstance(department, str):
        check.fail(f"{where}.department", "not_text")
        department = ""
    if not isinstance(role, str):
        check.fail(f"{where}.role", "not_text")
        role = ""
    return {"users": users, "department": department, "role": role}


def _notify(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    _unknown_keys(action, {"type", "recipients", "channels", "title", "body"}, where, check)
    recipients = action.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        check.fail(f"{where}.recipients", "required")
        recipients = []
    parsed: list[dict[str, Any]] = []
    for i, recipient in enumerate(recipients):
        rwhere = f"{where}.recipients[{i}]"
        if not isinstance(recipient, Mapping) or recipient.get("type") not in RECIPIENTS:
            kind = recipient.get("type") if isinstance(recipient, Mapping) else recipient
            check.fail(f"{rwhere}.type", "unknown_recipient", type=kind, choices=", ".join(RECIPIENTS))
            continue
        kind = recipient["type"]
        item: dict[str, Any] = {"type": kind}
        if kind == "user":
            item["id"] = str(recipient.get("id") or "")
            if not item["id"]:
                check.fail(f"{rwhere}.id", "required")
        elif kind == "role":
            item["role"] = str(recipient.get("role") or "")
            if not item["role"]:
                check.fail(f"{rwhere}.role", "required")
        elif kind == "department_leader":
            # a department's leaders: its members holding the leader role (default "manager"); the department
            # named, else the record's own
            item["department"] = str(recipient.get("department") or "")
            item["role"] = str(recipient.get("role") or "manager")
        elif kind == "department_members":
            item["department"] = str(recipient.get("department") or "")
            if not item["department"]:
                check.fail(f"{rwhere}.department", "required")
            item["role"] = str(recipient.get("role") or "")
        elif kind == "user_field":
            key = _field_key(form, recipient.get("field"), f"{rwhere}.field", check)
            if key and str(form.fields[key].get("type")) not in USER_TYPES:
                check.fail(f"{rwhere}.field", "field_type", label=form.label(key, check.locale), expected="user")
            item["field"] = key
        parsed.append(item)
    channels = action.get("channels", ["in_app"])
    if not isinstance(channels, list) or not channels:
        check.fail(f"{where}.channels", "required")
        channels = []
    for i, channel in enumerate(channels):
        if channel not in CHANNELS:
            check.fail(f"{where}.channels[{i}]", "unknown_channel", channel=channel, choices=", ".join(CHANNELS))
    title = action.get("title")
    if not isinstance(title, str) or not title.strip():
        check.fail(f"{where}.title", "required")
    return {
        "recipients": parsed,
        "channels": [c for c in channels if c in CHANNELS],
        "title": _template(title, f"{where}.title", form, check, index),
        "body": _template(action.get("body") or "", f"{where}.body", form, check, index),
    }


def _webhook(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    _unknown_keys(action, {"type", "url", "headers", "body"}, where, check)
    url = action.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
        check.fail(f"{where}.url", "bad_url")
    headers = action.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(v, str) for v in headers.values()):
        check.fail(f"{where}.headers", "not_object")
        headers = {}
    body = action.get("body")
    if body is not None and not isinstance(body, Mapping):
        check.fail(f"{where}.body", "not_object")
        body = None
    rendered = _templates(body, f"{where}.body", form, check, index) if body else None
    return {"url": url, "headers": dict(headers), "body": rendered}


def _move_to_pool(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    """Return the record to a public pool of its form (the pool is checked when the action runs)."""
    _unknown_keys(action, {"type", "pool", "reason"}, where, check)
    pool = action.get("pool")
    if not isinstance(pool, str) or not pool:
        check.fail(f"{where}.pool", "required")
    reason = _template(action.get("reason") or "自动退回公海", f"{where}.reason", form, check, index)
    return {"pool": pool, "reason": reason}


def _assign_from_pool(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    """Give a record that sits in a pool to a user (a template, e.g. a user field of the record)."""
    _unknown_keys(action, {"type", "owner"}, where, check)
    if not action.get("owner"):
        check.fail(f"{where}.owner", "required")
    return {"owner": _template(action.get("owner"), f"{where}.owner", form, check, index)}


def _optional(action: Mapping[str, Any], where: str, check: Check) -> dict[str, Any]:
    """`optional: <name>`: the action runs only when a manual run chooses that option."""
    name = action.get("optional")
    if name is None:
        return {}
    if not isinstance(name, str) or not name.isidentifier() or len(name) > 40:
        check.fail(f"{where}.optional", "not_text")
        return {}
    return {"optional": name}


def _start_approval(
    action: Mapping[str, Any], where: str, form: FormInfo, forms: FormLookup, check: Check, index: int
) -> dict[str, Any]:
    """Submit the record to an approval process of its form (`process`: id or key), as the record's owner.

    When the lookup can find approval processes (`approval_process(ref)`, the API's), the process is
    checked at save: it exists, is of this form and decides submitted records (not a guarded change).
    """
    _unknown_keys(action, {"type", "process"}, where, check)
    ref = action.get("process")
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 100:
        check.fail(f"{where}.process", "required")
        return {}
    out: dict[str, Any] = {"process": ref.strip()}
    find = getattr(forms, "approval_process", None)
    if find is None:
        return out
    process = find(ref.strip())
    if process is None:
        check.errors.append(approval_error(f"{where}.process", "approval_process_not_found", check.locale, ref=ref))
        return out
    name = (process.get("name") or {}).get(check.locale) or (process.get("name") or {}).get("zh-CN") or ref
    if process.get("form_id") != form.id:
        check.errors.append(
            approval_error(
                f"{where}.process", "approval_process_form", check.locale, name=name, form=form.title(check.locale)
            )
        )
    elif process.get("guard"):
        check.errors.append(approval_error(f"{where}.process", "approval_process_guard", check.locale, name=name))
    out["process_id"] = str(process.get("id"))
    return out


_ACTION_PARSERS = {
    "create_record": _create_record,
    "update_record": _update_record,
    "assign_owner": _assign_owner,
    "notify": _notify,
    "webhook": _webhook,
    "move_to_pool": _move_to_pool,
    "assign_from_pool": _assign_from_pool,
    "start_approval": _start_approval,
}


def fields_read(automation: Mapping[str, Any]) -> Sequence[str]:
    """Field keys of the trigger form that the trigger reads (for the timers' snapshots)."""
    trigger = automation.get("trigger") or {}
    return [k for k in (trigger.get("field"),) if k]
