"""The actions of an automation: what each one does with the record that triggered it.

Each executor takes the run's `ActionContext` and the normalised action
(domain/definitions.py) and returns the outcome written to the run log. An
executor is idempotent in effect under its `key` (event, automation, action
index): a create carries it as the record service's idempotency key, an
assignment remembers its choice, a notification uses it as its id, an update
sets values (setting them twice changes nothing). Errors raise: the engine
retries the action with backoff and dead-letters it after the last attempt.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from crm_runtime.principal import Principal
from workflow_service.domain import assignment, templating
from workflow_service.domain.errors import message
from workflow_service.domain.ports import (
    Channel,
    Delivery,
    DirectoryPort,
    DirectoryUser,
    Doc,
    FormPort,
    Message,
    RecordPort,
    WorkflowStore,
)

WEBHOOK_TIMEOUT = 10.0
MAX_UPDATE_ATTEMPTS = 3


class ActionFailed(Exception):
    """An action that cannot complete now; the message goes to the run log (and the dead letter)."""


@dataclass
class ActionContext:
    """Everything an action reads: the run's record and form, the principal it acts as, the ports."""

    tenant_id: str
    automation: Mapping[str, Any]
    record: Doc
    fields: Mapping[str, Mapping[str, Any]]
    principal: Principal
    now: datetime
    tz: tzinfo
    key: str
    records: RecordPort
    forms: FormPort
    directory: DirectoryPort
    store: WorkflowStore
    channels: Mapping[str, Channel]
    locale: str = "zh-CN"
    steps: list[Doc] = field(default_factory=list)
    approvals: Any = None  # domain.approval_engine.Approvals, for start_approval

    def scope(self) -> templating.Scope:
        """What the action's templates are filled from."""
        return templating.Scope(self.record, self.fields, self.now, self.tz, tuple(self.steps))

    def render(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A {field: template} map filled in; empty results are left out."""
        scope = self.scope()
        out = {}
        for key, template in values.items():
            value = templating.render_value(template, scope)
            if value is not None:
                out[key] = value
        return out


def _owner_of(ctx: ActionContext, template: Any) -> str:
    value = templating.render_value(template, ctx.scope()) if template else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value or "")


def create_record(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Create a record in another form from templates; the owner defaults to the triggering record's."""
    data = ctx.render(action.get("values") or {})
    owner = _owner_of(ctx, action.get("owner"))
    created = ctx.records.create(ctx.principal, str(action["form_id"]), data, owner, ctx.key)
    return {"record_id": created.get("id"), "form_id": action["form_id"], "id": created.get("id")}


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _later(new: Any, current: Any, tz: tzinfo) -> bool:
    """True when `new` is a later date/time than `current` (or there is none yet)."""
    old = templating.parse_moment(current, tz)
    moment = templating.parse_moment(new, tz)
    return old is None or (moment is not None and moment > old)


def _plain_id(value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, list):
        value = value[0] if value else None
        if isinstance(value, Mapping):
            value = value.get("id")
    return str(value or "")


def update_record(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Set fields of the record, or of the record a relation field points to (values only when empty for `if_empty`)."""
    target = str(action.get("target") or "self")
    if target == "self":
        record_id = str(ctx.record.get("id") or "")
    else:
        record_id = _plain_id((ctx.record.get("data") or {}).get(target))
        if not record_id:
            return {"skipped": "no_related_record", "relation": target}
    values = ctx.render(action.get("values") or {})
    only_empty = set(action.get("if_empty") or [])
    only_later = set(action.get("if_later") or [])
    for _attempt in range(MAX_UPDATE_ATTEMPTS):
        current = ctx.records.get(ctx.principal, record_id)
        if current is None:
            return {"skipped": "record_gone", "record_id": record_id}
        data = current.get("data") or {}
        patch = {
            k: v
            for k, v in values.items()
            if (k not in only_empty or _empty(data.get(k))) and (k not in only_later or _later(v, data.get(k), ctx.tz))
        }
        if not patch:
            return {"record_id": record_id, "changed": []}
        try:
            ctx.records.update(ctx.principal, record_id, patch, int(current.get("version") or 0))
        except VersionMoved:
            continue  # someone else wrote it between the read and the write: read again
        return {"record_id": record_id, "changed": sorted(patch)}
    raise ActionFailed(f"record {record_id} kept changing while being updated")


class VersionMoved(Exception):
    """The record's version moved between the read and the update (raised by the record port)."""


def assign_owner(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Give the record an owner by round robin, load or rule; inactive users are skipped."""
    chosen = ctx.store.choice(ctx.key)
    if chosen is None:
        user = assignment.choose(ctx, action)
        if user is None:
            raise ActionFailed("no active user to assign to")
        chosen = ctx.store.save_choice(ctx.key, ctx.tenant_id, user)
    record_id = str(ctx.record.get("id") or "")
    for _attempt in range(MAX_UPDATE_ATTEMPTS):
        current = ctx.records.get(ctx.principal, record_id)
        if current is None:
            return {"skipped": "record_gone", "record_id": record_id}
        if current.get("owner_id") == chosen:
            return {"owner_id": chosen}
        try:
            ctx.records.update(ctx.principal, record_id, {}, int(current.get("version") or 0), owner_id=chosen)
        except VersionMoved:
            continue
        return {"owner_id": chosen}
    raise ActionFailed(f"record {record_id} kept changing while being assigned")


def recipients(ctx: ActionContext, specs: list[Mapping[str, Any]]) -> list[DirectoryUser]:
    """The active users a notify action names, each once."""
    out: dict[str, DirectoryUser] = {}
    unknown: list[str] = []
    record = ctx.record

    def add(user_id: Any) -> None:
        uid = _plain_id(user_id)
        if not uid or uid in out or uid.startswith("service:"):
            return
        user = ctx.directory.user(ctx.tenant_id, uid)
        if user is None:
            unknown.append(uid)
        elif user.active:
            out[uid] = user

    for spec in specs:
        kind = spec.get("type")
        if kind == "owner":
            add(record.get("owner_id"))
        elif kind == "record_creator":
            add(record.get("created_by"))
        elif kind == "owner_manager":
            owner = ctx.directory.user(ctx.tenant_id, _plain_id(record.get("owner_id")))
            if owner is not None and owner.manager_id:
                add(owner.manager_id)
        elif kind == "user":
            add(spec.get("id"))
        elif kind == "role":
            for user in ctx.directory.members(ctx.tenant_id, role=str(spec.get("role") or "")):
                add(user.user_id)
        elif kind == "department_leader":
            department = str(spec.get("department") or record.get("department_id") or "")
            for user in ctx.directory.members(
                ctx.tenant_id, department_id=department, role=str(spec.get("role") or "manager")
            ):
                add(user.user_id)
        elif kind == "department_members":
            members = ctx.directory.members(
                ctx.tenant_id, department_id=str(spec.get("department") or ""), role=str(spec.get("role") or "")
            )
            for user in members:
                add(user.user_id)
        elif kind == "user_field":
            value = (record.get("data") or {}).get(str(spec.get("field") or ""))
            for item in value if isinstance(value, list) else [value]:
                add(item)
    if unknown and not out:
        # a user just created may not have reached the workflow's replica yet: try again later
        raise ActionFailed(f"recipients not (yet) in the directory: {', '.join(sorted(set(unknown)))}")
    return list(out.values())


def notify(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Send a message to the chosen recipients on each channel; a channel not configured is logged, not failed."""
    users = recipients(ctx, list(action.get("recipients") or []))
    scope = ctx.scope()
    title = templating.render_value(action.get("title") or "", scope) or ""
    body = templating.render_value(action.get("body") or "", scope) or ""
    msg = Message(
        tenant_id=ctx.tenant_id,
        recipients=tuple(users),
        title=str(title),
        body=str(body),
        record_id=str(ctx.record.get("id") or ""),
        form_id=str(ctx.record.get("form_id") or ""),
        key=ctx.key,
    )
    deliveries: list[Delivery] = []
    if not users:
        return {"recipients": [], "deliveries": []}
    for name in action.get("channels") or ["in_app"]:
        channel = ctx.channels.get(name)
        if channel is None or not channel.configured:
            deliveries.append(
                Delivery(name, "not_configured", message("channel_not_configured", ctx.locale, channel=name))
            )
            continue
        deliveries.append(channel.send(msg))
    return {
        "recipients": [u.user_id for u in users],
        "deliveries": [
            {"channel": d.channel, "status": d.status, "detail": d.detail, "sent_to": d.sent_to} for d in deliveries
        ],
    }


def webhook(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """POST the record (or the rendered body) as JSON; a non-2xx answer or no answer fails the action."""
    body = ctx.render(action["body"]) if action.get("body") else {
        "automation_id": ctx.automation.get("id"),
        "record": ctx.record,
    }  # fmt: skip
    payload = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": ctx.key}
    headers.update(action.get("headers") or {})
    refuse_private_address(str(action["url"]))
    request = urllib.request.Request(str(action["url"]), data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310 - admin-set URL
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise ActionFailed(f"webhook answered {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ActionFailed(f"webhook unreachable: {exc}") from None
    return {"status": status}


def move_to_pool(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Return the record to a public pool (the record service clears its owner, its history says why)."""
    record_id = str(ctx.record.get("id") or "")
    reason = templating.render_value(action.get("reason") or "", ctx.scope()) or ""
    moved = ctx.records.move_to_pool(ctx.principal, record_id, str(action["pool"]), str(reason), {})
    return {"record_id": record_id, "pool_id": moved.get("pool_id") or action["pool"]}


def assign_from_pool(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Give a record in a pool to a user (as the pool's admin would)."""
    record_id = str(ctx.record.get("id") or "")
    owner = _owner_of(ctx, action.get("owner"))
    if not owner:
        raise ActionFailed("the owner template gave no user")
    ctx.records.assign_from_pool(ctx.principal, record_id, owner)
    return {"record_id": record_id, "owner_id": owner}


def start_approval(ctx: ActionContext, action: Mapping[str, Any]) -> Doc:
    """Submit the record to an approval process of its form, as its owner; once per run (the action's key)."""
    if ctx.approvals is None:
        raise ActionFailed("approvals are not available in this process")
    ref = str(action.get("process_id") or action.get("process") or "")
    process = ctx.approvals.live_process(ctx.tenant_id, ref)
    if process is None:
        raise ActionFailed(f"approval process {ref} does not exist")
    if not process.get("enabled"):
        return {"skipped": "process_disabled", "process_id": process["id"]}
    record = ctx.records.get(ctx.principal, str(ctx.record.get("id") or ""))
    if record is None:
        return {"skipped": "record_gone", "record_id": ctx.record.get("id")}
    if process.get("form_id") != record.get("form_id") or process.get("guard"):
        raise ActionFailed(f"approval process {ref} does not decide records of this form")
    result: Doc = ctx.approvals.start_for_automation(ctx.tenant_id, process, record, ctx.key)
    return {"process_id": process["id"], **result}


def refuse_private_address(url: str) -> None:
    """A webhook may not reach loopback, private, link-local or reserved addresses (the worker's own network)
    unless the installation allows it (WORKFLOW_WEBHOOK_ALLOW_PRIVATE=1, e.g. an ERP on the private cloud)."""
    if os.environ.get("WORKFLOW_WEBHOOK_ALLOW_PRIVATE") == "1":
        return
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise ActionFailed(f"webhook host does not resolve: {host} ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
        ):
            raise ActionFailed(f"webhook address {address} of {host} is not public")


EXECUTORS: dict[str, Callable[[ActionContext, Mapping[str, Any]], Doc]] = {
    "create_record": create_record,
    "update_record": update_record,
    "assign_owner": assign_owner,
    "notify": notify,
    "webhook": webhook,
    "move_to_pool": move_to_pool,
    "assign_from_pool": assign_from_pool,
    "start_approval": start_approval,
}
