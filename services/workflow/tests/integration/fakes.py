"""Plain fakes of the workflow's ports to the other services (RecordPort, FormPort), for engine tests
on the real store: records live in a dict, every write is kept as the event the record service would
publish (with `via` from the principal, as the record service sets it), so a test can feed them back."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from crm_runtime.envelope import make_envelope
from crm_runtime.errors import Conflict, NotFound, Unavailable
from crm_runtime.principal import Principal
from services.workflow.tests.unit.forms import FORMS
from workflow_service.domain.actions import VersionMoved
from workflow_service.domain.definitions import FormInfo


class FakeRecords:
    """RecordPort over a dict; `fail_creates` makes the next n creates raise Unavailable."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, str] = {}
        self.events: list[dict[str, Any]] = []
        self.fail_creates = 0
        self.creates = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # the approval gate: every call (name, record or form, details), the guards by (form, owner)
        self.gate_calls: list[tuple[str, str, Any]] = []
        self.guards: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.gate_down = 0  # the next n gate calls raise Unavailable

    def _event(self, principal: Principal, kind: str, record: Mapping[str, Any], **data: Any) -> None:
        payload = {"record_id": record["id"], "form_id": record["form_id"], "owner_id": record.get("owner_id"), **data}
        if principal.kind == "service" and principal.on_behalf:
            payload["via"] = principal.on_behalf
        self.events.append(make_envelope(kind, principal.tenant_id, payload, source="record", actor=principal.user_id))

    def add(self, tenant_id: str, form: str, data: dict[str, Any], owner_id: str = "") -> dict[str, Any]:
        """A record as a user's create would store it; returns its record.created event."""
        user = Principal(tenant_id=tenant_id, user_id="u-creator")
        form_id = FORMS[form].id
        record = self._store(user, form_id, data, owner_id)
        return self.events[-1] if self.events and self.events[-1]["data"]["record_id"] == record["id"] else {}

    def _store(self, principal: Principal, form_id: str, data: Mapping[str, Any], owner_id: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._lock:
            record_id = f"r{next(self._ids)}"
        record = {
            "id": record_id,
            "form_id": form_id,
            "tenant_id": principal.tenant_id,
            "owner_id": owner_id or None,
            "department_id": None,
            "created_by": principal.user_id,
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "data": dict(data),
        }
        self.records[record_id] = record
        self._event(principal, "record.created", record, data=dict(data), department_id=None, form_version=1)
        return record

    # RecordPort

    def get(self, principal: Principal, record_id: str) -> dict[str, Any] | None:
        record = self.records.get(record_id)
        if record is None or record["tenant_id"] != principal.tenant_id:
            return None
        return {**record, "data": dict(record["data"])}

    def create(
        self, principal: Principal, form_id: str, data: Mapping[str, Any], owner_id: str, key: str
    ) -> dict[str, Any]:
        with self._lock:
            if self.fail_creates > 0:
                self.fail_creates -= 1
                raise Unavailable("record service down")
            if key and key in self.keys:
                return dict(self.records[self.keys[key]])
            self.creates += 1
        record = self._store(principal, form_id, data, owner_id)
        if key:
            self.keys[key] = record["id"]
        return dict(record)

    def update(
        self, principal: Principal, record_id: str, data: Mapping[str, Any], expected_version: int, owner_id: str = ""
    ) -> dict[str, Any]:
        with self._lock:
            record = self.records[record_id]
            if record["version"] != expected_version:
                raise VersionMoved(record_id)
            changes = {
                k: {"old": record["data"].get(k), "new": v} for k, v in data.items() if record["data"].get(k) != v
            }
            old_owner = record.get("owner_id")
            new_owner = owner_id if owner_id and owner_id != old_owner else ""
            if not changes and not new_owner:
                return dict(record)
            record["data"].update({k: c["new"] for k, c in changes.items()})
            record["version"] += 1
            if new_owner:
                record["owner_id"] = new_owner
        if changes:
            self._event(principal, "record.updated", record, changes=changes, version=record["version"])
        if new_owner:
            self._event(
                principal,
                "record.owner_changed",
                record,
                old_owner_id=old_owner,
                new_owner_id=new_owner,
                version=record["version"],
            )
        return dict(record)

    def move_to_pool(
        self, principal: Principal, record_id: str, pool_id: str, reason: str, data: Mapping[str, Any]
    ) -> dict[str, Any]:
        with self._lock:
            record = self.records[record_id]
            old_owner = record.get("owner_id")
            record.update(owner_id=None, pool_id=pool_id, pool_reason=reason)
            record["data"].update(dict(data))
            record["version"] += 1
        self._event(
            principal, "record.owner_changed", record, old_owner_id=old_owner, new_owner_id=None, pool_id=pool_id,
            pool_action="returned", version=record["version"],
        )  # fmt: skip
        return dict(record)

    def count(self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None) -> int:
        """Records of a form matching an and-tree of `eq` leaves (owner_id or a data field; relations by id)."""
        tree = dict(filter_tree or {})
        leaves = [leaf for leaf in tree.get("and") or [tree] if isinstance(leaf, Mapping) and leaf.get("field")]

        def holds(record: Mapping[str, Any], leaf: Mapping[str, Any]) -> bool:
            field = str(leaf["field"])
            value = record.get(field) if field == "owner_id" else record["data"].get(field)
            if isinstance(value, Mapping):
                value = value.get("id")
            return bool(value == leaf.get("value"))

        return sum(
            1
            for r in self.records.values()
            if r["form_id"] == form_id and r["tenant_id"] == principal.tenant_id and all(holds(r, x) for x in leaves)
        )

    def page(
        self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None, cursor: str, size: int
    ) -> tuple[list[dict[str, Any]], str]:
        """Matching records in creation order after the cursor (the last record's number), as the planner pages."""
        tree = dict(filter_tree or {})
        leaves = [leaf for leaf in tree.get("and") or [tree] if isinstance(leaf, Mapping) and leaf.get("field")]

        def holds(record: Mapping[str, Any], leaf: Mapping[str, Any]) -> bool:
            field = str(leaf["field"])
            value = record.get(field) if field == "owner_id" else record["data"].get(field)
            return bool((value.get("id") if isinstance(value, Mapping) else value) == leaf.get("value"))

        after = int(cursor or 0)
        rows = [
            dict(r)
            for r in sorted(self.records.values(), key=lambda r: int(r["id"][1:]))
            if r["form_id"] == form_id
            and r["tenant_id"] == principal.tenant_id
            and int(r["id"][1:]) > after
            and all(holds(r, x) for x in leaves)
        ]
        chunk = rows[:size]
        return chunk, (chunk[-1]["id"][1:] if len(rows) > size else "")

    # the approval gate (RecordService SetRecordLock, ClearRecordLock, SetFieldGuards, ResolveHeldChange)

    def _gate(self, name: str, target: str, details: Any) -> None:
        with self._lock:
            if self.gate_down > 0:
                self.gate_down -= 1
                raise Unavailable("record service down")
            self.gate_calls.append((name, target, details))

    def set_lock(self, principal: Principal, record_id: str, lock: Mapping[str, Any]) -> dict[str, Any]:
        self._gate("set_lock", record_id, dict(lock))
        record = self.records.get(record_id)
        if record is None or record["tenant_id"] != principal.tenant_id:
            raise NotFound(record_id)
        current = record.get("lock")
        if current and current["id"] != lock["id"]:
            raise Conflict(f"locked by {current.get('name')}", lock=dict(current))
        record["lock"] = current or {"id": lock["id"], "name": lock.get("name"), "by": principal.on_behalf}
        return dict(record["lock"])

    def clear_lock(self, principal: Principal, record_id: str, lock_id: str) -> None:
        self._gate("clear_lock", record_id, lock_id)
        record = self.records.get(record_id)
        if record is None:
            raise NotFound(record_id)
        if (record.get("lock") or {}).get("id") == lock_id:
            record.pop("lock")

    def set_guards(self, principal: Principal, form_id: str, owner: str, guards: Any) -> int:
        self._gate("set_guards", form_id, (owner, list(guards)))
        self.guards[(form_id, owner)] = list(guards)
        return len(self.guards[(form_id, owner)])

    def hold_change(
        self, tenant_id: str, record_id: str, fields: Mapping[str, Any], guard_owner: str
    ) -> dict[str, Any]:
        """A user's update meeting a guard: the fields kept as the pending change; returns record.change_held."""
        record = self.records[record_id]
        change_id = f"chg{next(self._ids)}"
        changes = {k: {"old": record["data"].get(k), "new": v} for k, v in fields.items()}
        record["pending_change"] = {"id": change_id, "fields": dict(fields)}
        user = Principal(tenant_id=tenant_id, user_id="u-requester")
        self._event(
            user, "record.change_held", record, change_id=change_id, guard_id="g", guard_owner=guard_owner,
            changes=changes, requested_by=record.get("owner_id") or "u-requester", version=record["version"],
        )  # fmt: skip
        return self.events[-1]

    def resolve_change(
        self, principal: Principal, record_id: str, change_id: str, approve: bool, reason: str = ""
    ) -> dict[str, Any]:
        self._gate("resolve_change", record_id, (change_id, approve, reason))
        record = self.records[record_id]
        pending = record.get("pending_change")
        if not pending or pending["id"] != change_id:
            raise Conflict(f"no pending change {change_id}")
        record.pop("pending_change")
        if approve:
            return self.update(principal, record_id, pending["fields"], record["version"])
        self._event(principal, "record.change_dropped", record, change_id=change_id, reason=reason)
        return dict(record)


class FakeForms:
    """FormPort (and the handover's FormLister) over the unit tests' forms."""

    def published(self, principal: Principal, form_ref: str) -> FormInfo | None:
        return FORMS.get(form_ref)

    def list_published(self, principal: Principal) -> list[dict[str, Any]]:
        unique = {f.id: f for f in FORMS.values()}
        return [{"id": f.id, "key": f.key, "fields": list(f.fields.values())} for f in unique.values()]
