"""Records under approval: locks, guarded changes and their outcome.

The workflow service runs approvals; the record service keeps what they mean
for a record, so that every writer meets the same rule:

* a lock (`lock` on the record: {id, kind, name, by, at}) makes the record's
  fields read-only while an approval is pending: a user's update, delete or
  merge is refused with 423 naming the approval. Only a service (the workflow,
  writing the outcome) writes a locked record. `SetRecordLock` / `ClearRecordLock`.
* a guard names a field change that needs approval first (商机.销售阶段 to 商务谈判,
  a 折扣 above 20 %): {id, field, condition (a filter tree on the record as it
  would be after the change), name}. When a user's update makes a guard hold, the
  guarded fields are not written: they are kept on the record as its
  `pending_change` {id, guard_id, fields, requested_by, at} and a
  `record.change_held` event tells the workflow, which starts the approval; the
  rest of the update is written as usual. While a change is held the record
  takes no second one on the same fields (423). `SetFieldGuards` replaces the
  guards one owner (an approval process) keeps on a form.
* the outcome: `ResolveHeldChange` applies the held fields (validated again,
  written by the workflow with an update) or drops them with the reason
  (`record.change_dropped`); either way the change leaves the record.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import crm_schema
from crm_runtime.errors import Conflict, Forbidden, Locked
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import Loaded, RecordCore
from record_service.domain.repository import Transaction
from record_service.events import RECORD_CHANGE_DROPPED, RECORD_CHANGE_HELD

Doc = dict[str, Any]
MAX_GUARDS = 50
__all__ = ["RECORD_CHANGE_DROPPED", "RECORD_CHANGE_HELD", "ApprovalGate", "refuse_if_locked"]


def _service_only(principal: Principal) -> None:
    if principal.kind != "service":
        raise Forbidden(rerr.message("service_only", principal.locale), rule="service_only")


def refuse_if_locked(principal: Principal, doc: Mapping[str, Any], *, fields: Sequence[str] = ()) -> None:
    """423 for a user writing a locked record, or a field of its held change; services pass."""
    if principal.kind == "service":
        return
    lock = doc.get("lock")
    if lock:
        raise Locked(
            rerr.message("record_locked", principal.locale, name=lock.get("name") or lock.get("id")),
            record_id=str(doc.get("_id")),
            lock=dict(lock),
        )
    pending = doc.get("pending_change")
    if pending and set(fields) & set((pending.get("fields") or {}).keys()):
        raise Locked(
            rerr.message("change_pending", principal.locale, fields=", ".join(sorted(pending["fields"]))),
            record_id=str(doc.get("_id")),
            pending_change={"id": pending.get("id"), "fields": sorted(pending["fields"])},
        )


class ApprovalGate:
    """Locks, guards and held changes (see the module docstring)."""

    def __init__(self, core: RecordCore) -> None:
        self.core = core

    # ------------------------------------------------------------ locks

    def lock(self, principal: Principal, record_id: str, lock: Mapping[str, Any]) -> Doc:
        """Lock a record for an approval ({id, kind, name}); the same lock again is a no-op."""
        _service_only(principal)
        lock_id = str(lock.get("id") or "")
        if not lock_id:
            raise rerr.invalid("lock.id", "required", principal.locale)
        loaded = self.core.load(principal, record_id)
        current = loaded.doc.get("lock")
        if current and current.get("id") != lock_id:
            raise Conflict(
                rerr.message("record_locked", principal.locale, name=current.get("name") or current.get("id")),
                lock=dict(current),
            )
        if current:
            return {"record_id": record_id, "lock": current}
        value = {
            "id": lock_id,
            "kind": str(lock.get("kind") or "approval"),
            "name": str(lock.get("name") or "")[:200],
            "by": principal.on_behalf or principal.user_id,
            "at": self.core.clock(),
        }
        self._set(loaded, {"lock": value})
        return {"record_id": record_id, "lock": value}

    def unlock(self, principal: Principal, record_id: str, lock_id: str) -> Doc:
        """Clear a record's lock if it is `lock_id` (a lock another approval holds stays)."""
        _service_only(principal)
        loaded = self.core.load(principal, record_id)
        current = loaded.doc.get("lock")
        if current and current.get("id") == lock_id:
            self._set(loaded, {"lock": None})
        return {"record_id": record_id, "lock": None}

    def _set(self, loaded: Loaded, fields: Doc) -> None:
        """A state change of the record that is not a data change: no version, no event."""
        version = int(loaded.doc.get("version") or 0)
        record_id = str(loaded.doc["_id"])

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, version, fields)

        self.core.versioned_write(
            txn, Principal.service(loaded.doc["tenant_id"], "record"), loaded.form, record_id, version
        )

    # ------------------------------------------------------------ guards

    def set_guards(self, principal: Principal, form_ref: str, owner: str, guards: Any) -> int:
        """Replace the guards `owner` keeps on a form; each is checked against the form now."""
        _service_only(principal)
        form = self.core.form(principal, form_ref)
        if not isinstance(guards, list) or len(guards) > MAX_GUARDS:
            raise rerr.invalid("guards_json", "invalid_limit", principal.locale, max=MAX_GUARDS)
        ctx = self.core.context(principal)
        matcher = self.core.matcher(form, ctx)
        parsed: list[Doc] = []
        for index, guard in enumerate(guards):
            if not isinstance(guard, Mapping) or form.field(str(guard.get("field") or "")) is None:
                ref = guard.get("field") if isinstance(guard, Mapping) else guard
                raise rerr.invalid(f"guards[{index}].field", "unknown_field", principal.locale, field=ref)
            condition = guard.get("condition") or None
            if condition is not None and matcher.node(condition) is None:
                raise rerr.invalid(f"guards[{index}].condition", "invalid_filter", principal.locale)
            parsed.append(
                {
                    "id": str(guard.get("id") or uuid.uuid4().hex),
                    "field": str(guard["field"]),
                    "condition": condition,
                    "name": str(guard.get("name") or "")[:200],
                    "owner": owner,
                }
            )
        self.core.repo.replace_guards(principal.tenant_id, form.id, owner, parsed)
        return len(parsed)

    def held(
        self, principal: Principal, loaded: Loaded, changed: Mapping[str, Any], new_data: Mapping[str, Any]
    ) -> Doc | None:
        """The guard a user's change meets, as the pending change to keep ({id, guard, fields}), or None."""
        if principal.kind == "service" or not changed:
            return None
        guards = self.core.repo.guards(principal.tenant_id, loaded.form.id)
        if not guards:
            return None
        after = {**loaded.doc, "data": dict(new_data)}
        matcher = self.core.matcher(loaded.form, self.core.context(principal))
        for guard in guards:
            if guard.get("field") not in changed:
                continue
            condition = guard.get("condition")
            if condition and not matcher(condition, after):
                continue
            fields = {guard["field"]: changed[guard["field"]]}
            return {"id": uuid.uuid4().hex, "guard": guard, "fields": fields}
        return None

    def resolve(
        self, principal: Principal, records: Any, record_id: str, change_id: str, approve: bool, reason: str = ""
    ) -> Doc:
        """Apply (approve) or drop a held change; returns the record. `records` is the Records use case."""
        _service_only(principal)
        loaded = self.core.load(principal, record_id)
        doc, form = loaded.doc, loaded.form
        pending = doc.get("pending_change")
        if not pending or pending.get("id") != change_id:
            raise Conflict(rerr.message("no_pending_change", principal.locale, id=change_id), change_id=change_id)
        version = int(doc.get("version") or 0)
        now = self.core.clock()
        ctx = self.core.context(principal, now).with_role("")
        outputs = {
            key: crm_schema.to_output(form.field(key) or {"key": key}, value, ctx=ctx)
            for key, value in (pending.get("fields") or {}).items()
            if form.field(key) is not None
        }
        dropped = [] if approve else [{"field": k, "old": None, "new": v} for k, v in outputs.items()]
        entry = self.core.history_entry(
            RECORD_CHANGE_DROPPED,
            principal,
            {**doc, "version": version + 1},
            now,
            dropped,
            {"version": version + 1, "change_id": change_id, "reason": reason[:500], "changes": outputs},
        ) if not approve else None  # fmt: skip

        def txn(tx: Transaction) -> None:
            tx.update_record(
                record_id, version, {"pending_change": None, **({} if approve else {"version": version + 1})}
            )
            if entry is not None:
                tx.insert_history([entry])

        self.core.versioned_write(txn, principal, form, record_id, version)
        if approve and outputs:
            return records.update(principal, record_id, outputs, version)  # type: ignore[no-any-return]
        return records.get(principal, record_id)  # type: ignore[no-any-return]
