"""Public pools (公海池): their definitions, and recycling records into them.

A pool belongs to a form and is ordinary data (any number per form, e.g. by region):

    {name, form, enabled, members: {users, departments}, admins,
     max_owned_per_user, max_owned_per_department, max_claims_per_day, cooldown_days,
     recycle: {after_days, days_by: {field, days: {<option value>: n}},
               activity: [{form, field, condition?}], exempt: [{form, field, condition?}],
               warn_days, entered_at_field}}

* The record service keeps what a pool means for a record (who sees and claims
  its records, the caps, the cooldown): it gets each saved pool as a
  `pool.updated` event from the workflow's outbox and replicates it.
* Recycling is the workflow's: a record of the pool's form that has an owner
  gets a timer due `after_days` (or the days of its `days_by` field's value)
  after it got that owner; a new related record of an `activity` form pointing
  to it (a 跟进记录, a 商机, a won 商机 with a condition) moves the timer on; when
  due, a record with a related record matching an `exempt` entry (a won deal, an
  open 商机) is kept and checked again a period later, any other goes back to the
  pool (the record service's MoveToPool, with `entered_at_field` stamped and the
  reason in its history) and its former owner is notified; `warn_days` before,
  the owner is warned. The due items are leased like every timer (two workers
  never recycle one record twice).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_runtime.errors import ValidationFailed
from crm_runtime.principal import Principal
from workflow_service.domain import templating
from workflow_service.domain.common import Check
from workflow_service.domain.conditions import parse_condition
from workflow_service.domain.definitions import FormInfo, FormLookup
from workflow_service.domain.errors import field_error, message
from workflow_service.domain.ports import (
    Channel,
    DirectoryPort,
    Doc,
    FormPort,
    Message,
    RecordPort,
    TimerItem,
    WorkflowStore,
)

MAX_DAYS = 3650
MAX_MEMBERS = 2000
REPLICATED = (
    "id", "form_id", "name", "members", "admins", "max_owned_per_user", "max_owned_per_department",
    "max_claims_per_day", "cooldown_days", "version", "enabled",
)  # fmt: skip


def pool_timer_id(pool_id: str, record_id: str) -> str:
    """The recycle timer of one record in one pool."""
    return f"pool:{pool_id}:{record_id}"


def pool_warn_id(pool_id: str, record_id: str) -> str:
    """The warning timer before a record's recycling."""
    return f"poolwarn:{pool_id}:{record_id}"


def replica(pool: Mapping[str, Any]) -> dict[str, Any]:
    """What the record service keeps of a pool (the pool.updated payload)."""
    return {k: pool.get(k) for k in REPLICATED}


def _count(raw: Any, where: str, check: Check, hi: int) -> int:
    if raw is None:
        return 0
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= hi:
        check.fail(where, "duration_range", min=0, max=hi)
        return 0
    return raw


def _related(raw: Any, where: str, form: FormInfo, forms: FormLookup, check: Check) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        check.fail(where, "not_list")
        return []
    out = []
    for index, item in enumerate(raw):
        iwhere = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            check.fail(iwhere, "not_object")
            continue
        related = forms.published(str(item.get("form") or ""))
        if related is None:
            check.fail(f"{iwhere}.form", "form_not_found", ref=item.get("form"))
            continue
        key = templating.field_key_of(str(item.get("field") or ""), related.fields)
        definition = related.fields.get(key or "") or {}
        target = str((definition.get("relation") or {}).get("form_id") or "")
        if key is None or definition.get("type") != "relation" or target not in (form.id, form.key):
            check.fail(f"{iwhere}.field", "relation_target", field=item.get("field"), target=form.title(check.locale))
            continue
        try:
            parse_condition(item.get("condition"), related.fields, locale=check.locale, where=f"{iwhere}.condition")
        except ValidationFailed as exc:
            check.errors.extend(exc.errors)
        out.append({"form_id": related.id, "form_key": related.key, "field": key, "condition": item.get("condition")})
    return out


def parse_pool(
    spec: Any, forms: FormLookup, *, locale: str = "zh-CN", current: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The normalised pool of `spec` (a whole one, or a patch over `current`); ValidationFailed naming what is wrong."""
    check = Check(locale)
    if not isinstance(spec, Mapping):
        raise ValidationFailed([field_error("pool_json", "not_object", locale)])
    allowed = {
        "name", "form", "enabled", "members", "admins", "max_owned_per_user", "max_owned_per_department",
        "max_claims_per_day", "cooldown_days", "recycle",
    }  # fmt: skip
    for key in spec:
        if key not in allowed:
            check.fail(str(key), "unknown_key", key=key)
    merged: dict[str, Any] = dict(current or {})
    if current is not None:
        merged["form"] = current.get("form_id")
    merged.update({k: v for k, v in spec.items() if k in allowed})
    name = merged.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        check.fail("name", "required" if not name else "too_long", max=100)
    form = forms.published(str(merged.get("form") or "")) if merged.get("form") else None
    if form is None:
        check.fail("form", "form_not_found" if merged.get("form") else "required", ref=merged.get("form"))
        raise ValidationFailed(check.errors)
    members = merged.get("members") or {}
    if not isinstance(members, Mapping):
        check.fail("members", "not_object")
        members = {}
    users = [str(u) for u in members.get("users") or [] if isinstance(u, str) and u]
    departments = [str(d) for d in members.get("departments") or [] if isinstance(d, str) and d]
    if not users and not departments:
        check.fail("members", "no_candidates")
    if len(users) + len(departments) > MAX_MEMBERS:
        check.fail("members", "too_many", max=MAX_MEMBERS)
    admins = merged.get("admins") or []
    if not isinstance(admins, list) or not all(isinstance(a, str) for a in admins):
        check.fail("admins", "not_list")
        admins = []
    recycle_raw = merged.get("recycle") or {}
    if not isinstance(recycle_raw, Mapping):
        check.fail("recycle", "not_object")
        recycle_raw = {}
    recycle: dict[str, Any] = {
        "after_days": _count(recycle_raw.get("after_days"), "recycle.after_days", check, MAX_DAYS),
        "warn_days": _count(recycle_raw.get("warn_days"), "recycle.warn_days", check, MAX_DAYS),
        "activity": _related(recycle_raw.get("activity"), "recycle.activity", form, forms, check),
        "exempt": _related(recycle_raw.get("exempt"), "recycle.exempt", form, forms, check),
    }
    days_by = recycle_raw.get("days_by")
    if days_by:
        key = (
            templating.field_key_of(str((days_by or {}).get("field") or ""), form.fields)
            if isinstance(days_by, Mapping)
            else None
        )
        days = (days_by or {}).get("days") if isinstance(days_by, Mapping) else None
        if key is None or not isinstance(days, Mapping):
            check.fail(
                "recycle.days_by.field",
                "unknown_field",
                field=(days_by or {}).get("field"),
                form=form.title(check.locale),
            )
        else:
            recycle["days_by"] = {
                "field": key,
                "days": {str(v): _count(n, f"recycle.days_by.days.{v}", check, MAX_DAYS) for v, n in days.items()},
            }
    entered = recycle_raw.get("entered_at_field")
    if entered:
        key = templating.field_key_of(str(entered), form.fields)
        if key is None or form.fields[key].get("type") != "datetime":
            check.fail("recycle.entered_at_field", "field_type", label=entered, expected="datetime")
        else:
            recycle["entered_at_field"] = key
    if recycle["warn_days"] and recycle["after_days"] and recycle["warn_days"] >= recycle["after_days"]:
        check.fail("recycle.warn_days", "duration_range", min=0, max=recycle["after_days"] - 1)
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        check.fail("enabled", "not_boolean")
    out = {
        "name": str(name or "").strip(),
        "form_id": form.id,
        "form_key": form.key,
        "enabled": bool(enabled),
        "members": {"users": sorted(set(users)), "departments": sorted(set(departments))},
        "admins": sorted(set(admins)),
        "max_owned_per_user": _count(merged.get("max_owned_per_user"), "max_owned_per_user", check, 1_000_000),
        "max_owned_per_department": _count(
            merged.get("max_owned_per_department"), "max_owned_per_department", check, 10_000_000
        ),
        "max_claims_per_day": _count(merged.get("max_claims_per_day"), "max_claims_per_day", check, 100_000),
        "cooldown_days": _count(merged.get("cooldown_days"), "cooldown_days", check, MAX_DAYS),
        "recycle": recycle,
    }
    if check.errors:
        raise ValidationFailed(check.errors)
    return out


class PoolRecycler:
    """Keeps the recycle timers of the records of each pool's form, and recycles the due ones."""

    def __init__(
        self,
        store: WorkflowStore,
        records: RecordPort,
        forms: FormPort,
        directory: DirectoryPort,
        channels: Mapping[str, Channel],
        *,
        clock: Callable[[], datetime],
        pools_of: Callable[[str, str], list[Doc]],
        pool: Callable[[str, str], Doc | None],
    ) -> None:
        self.store = store
        self.records = records
        self.forms = forms
        self.directory = directory
        self.channels = channels
        self.clock = clock
        self.pools_of = pools_of  # (tenant, form id) -> enabled pools whose form or activity form it is
        self.pool = pool  # (tenant, pool id) -> the pool

    @staticmethod
    def _service(tenant_id: str, pool_id: str) -> Principal:
        return Principal.service(tenant_id, "workflow", on_behalf=f"pool:{pool_id}")

    @staticmethod
    def days_for(pool: Mapping[str, Any], record: Mapping[str, Any]) -> int:
        """The days a record may go without activity before recycling (by its field's value, if set)."""
        recycle = pool.get("recycle") or {}
        days_by = recycle.get("days_by") or {}
        value = (record.get("data") or {}).get(days_by.get("field") or "")
        by_value = (days_by.get("days") or {}).get(str(value)) if value is not None else None
        return int(by_value if by_value else recycle.get("after_days") or 0)

    # ------------------------------------------------------------ timers kept by events

    def on_event(self, envelope: Mapping[str, Any], record_of: Callable[[], Doc | None]) -> None:
        """Arm, move or cancel the recycle timers a record event concerns."""
        tenant_id = str(envelope.get("tenant_id") or "")
        data = envelope.get("data") or {}
        form_id = str(data.get("form_id") or "")
        kind = envelope.get("type")
        record_id = str(data.get("record_id") or "")
        now = templating.parse_moment(envelope.get("occurred_at"), UTC) or self.clock()
        for pool in self.pools_of(tenant_id, form_id):
            recycle = pool.get("recycle") or {}
            if not recycle.get("after_days") and not (recycle.get("days_by") or {}).get("days"):
                continue
            if pool.get("form_id") == form_id:
                owner = data.get("new_owner_id") if kind == "record.owner_changed" else data.get("owner_id")
                if kind == "record.deleted" or (kind == "record.owner_changed" and not owner):
                    self._disarm(pool, record_id)
                elif kind == "record.created" and owner or kind == "record.owner_changed":
                    record = record_of()
                    if record is not None:
                        self._arm(pool, tenant_id, record, now)
            for activity in recycle.get("activity") or []:
                if activity.get("form_id") != form_id or kind != "record.created":
                    continue
                target = (data.get("data") or {}).get(str(activity.get("field")))
                if isinstance(target, Mapping):
                    target = target.get("id")
                if not target or not self._matches(activity, data.get("data") or {}, tenant_id):
                    continue
                self._restart(pool, tenant_id, str(target), now)

    def _matches(self, entry: Mapping[str, Any], data: Mapping[str, Any], tenant_id: str) -> bool:
        if not entry.get("condition"):
            return True
        form = self.forms.published(Principal.service(tenant_id, "workflow"), str(entry["form_id"]))
        condition = parse_condition(entry["condition"], form.fields if form else {})
        return condition is None or condition.matches({"data": dict(data)})

    def _arm(self, pool: Mapping[str, Any], tenant_id: str, record: Mapping[str, Any], since: datetime) -> None:
        days = self.days_for(pool, record)
        if days <= 0:
            return
        record_id = str(record.get("id"))
        due = since + timedelta(days=days)
        owner = f"pool:{pool['id']}"
        self.store.arm(
            pool_timer_id(pool["id"], record_id),
            kind="pool",
            tenant_id=tenant_id,
            automation_id=owner,
            record_id=record_id,
            due_at=due,
            payload={"pool_id": pool["id"]},
        )
        warn = int((pool.get("recycle") or {}).get("warn_days") or 0)
        if warn and warn < days:
            self.store.arm(
                pool_warn_id(pool["id"], record_id),
                kind="pool_warn",
                tenant_id=tenant_id,
                automation_id=owner,
                record_id=record_id,
                due_at=due - timedelta(days=warn),
                payload={"pool_id": pool["id"], "recycle_at": due.isoformat()},
            )

    def _restart(self, pool: Mapping[str, Any], tenant_id: str, record_id: str, now: datetime) -> None:
        if not self.store.has_pending(pool_timer_id(pool["id"], record_id)):
            return  # not owned (in the pool, or never assigned): nothing to move
        record = self.records.get(self._service(tenant_id, pool["id"]), record_id)
        if record is not None and record.get("owner_id"):
            self._arm(pool, tenant_id, record, now)

    def _disarm(self, pool: Mapping[str, Any], record_id: str) -> None:
        self.store.disarm(pool_timer_id(pool["id"], record_id))
        self.store.disarm(pool_warn_id(pool["id"], record_id))

    # ------------------------------------------------------------ due items

    def fire(self, item: TimerItem, *, locale: str = "zh-CN") -> str:
        """Recycle (kind "pool") or warn (kind "pool_warn") one due record; returns what was done."""
        pool = self.pool(item.tenant_id, str(item.payload.get("pool_id") or ""))
        if pool is None or not pool.get("enabled", True):
            return "pool_gone"
        principal = self._service(item.tenant_id, pool["id"])
        record = self.records.get(principal, item.record_id)
        if record is None or not record.get("owner_id") or record.get("pool_id"):
            return "not_owned"
        name = self._title(item.tenant_id, record)
        if item.kind == "pool_warn":
            self._notify(item.tenant_id, record, f"warn:{item.id}:{int(item.due_at.timestamp())}",
                         message("pool_warning", locale, name=name, pool=pool.get("name"),
                                 days=(pool.get("recycle") or {}).get("warn_days")))  # fmt: skip
            return "warned"
        for entry in (pool.get("recycle") or {}).get("exempt") or []:
            tree: dict[str, Any] = {"field": entry["field"], "op": "eq", "value": item.record_id}
            if entry.get("condition"):
                tree = {"and": [tree, entry["condition"]]}
            if self.records.count(principal, str(entry["form_id"]), tree) > 0:
                self._arm(pool, item.tenant_id, record, self.clock())
                return "exempt"
        data: dict[str, Any] = {}
        entered = (pool.get("recycle") or {}).get("entered_at_field")
        if entered:
            data[entered] = templating.format_datetime(self.clock())
        days = self.days_for(pool, record)
        reason = message("pool_recycled_reason", locale, days=days)
        self.records.move_to_pool(principal, item.record_id, str(pool["id"]), reason, data)
        self.store.disarm(pool_warn_id(pool["id"], item.record_id))
        self._notify(item.tenant_id, record, f"recycle:{item.id}:{int(item.due_at.timestamp())}",
                     message("pool_recycled", locale, name=name, pool=pool.get("name"), days=days))  # fmt: skip
        return "recycled"

    def _title(self, tenant_id: str, record: Mapping[str, Any]) -> str:
        form = self.forms.published(Principal.service(tenant_id, "workflow"), str(record.get("form_id")))
        data = record.get("data") or {}
        for key, definition in (form.fields if form else {}).items():
            if definition.get("type") == "text" and data.get(key):
                return str(data[key])
        return str(record.get("id"))

    def _notify(self, tenant_id: str, record: Mapping[str, Any], key: str, text: str) -> None:
        owner = record.get("owner_id")
        user = self.directory.user(tenant_id, str(owner)) if owner else None
        channel = self.channels.get("in_app")
        if user is None or channel is None:
            return
        channel.send(
            Message(
                tenant_id=tenant_id,
                recipients=(user,),
                title=text,
                body=text,
                record_id=str(record.get("id")),
                form_id=str(record.get("form_id")),
                key=key,
            )
        )


def new_pool_id() -> str:
    """A pool's id."""
    return uuid.uuid4().hex
