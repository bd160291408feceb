"""The record use cases: create, get, update, delete, restore, explain access — where a record is validated.

Input is checked in two steps: what the caller may write at all
(domain/access.py input_errors: hidden and read-only fields, 422/403 named by
field), then crm_schema.validate_data against the published form (types,
required, ranges, options, relations the caller can see, attachments they may
use). An unknown field asks the form service once more for a newer version
(RecordCore.refreshed) before it is an error. Unique values are claimed in the
same transaction as the write (409 naming the field and, when visible, the
holder); auto numbers come from gap-free counters in that transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import crm_schema
from crm_runtime import access
from crm_runtime.errors import ValidationFailed
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.access import input_errors
from record_service.domain.approval_gate import RECORD_CHANGE_HELD, ApprovalGate, refuse_if_locked
from record_service.domain.core import Loaded, RecordCore, unique_key
from record_service.domain.files import attachment_ids
from record_service.domain.pool import PublicPool
from record_service.domain.rendering import Renderer
from record_service.domain.repository import RecordQueries, Transaction, UniqueTaken
from record_service.events import RECORD_CREATED, RECORD_DELETED, RECORD_OWNER_CHANGED, RECORD_RESTORED, RECORD_UPDATED

Doc = dict[str, Any]


IDEMPOTENCY_FIELD = "~idempotency"  # the claim namespace of idempotency keys (no field key starts with "~")
MAX_IDEMPOTENCY_KEY = 200


class Records:
    """CreateRecord, GetRecord, UpdateRecord, DeleteRecord, RestoreRecord, ExplainAccess."""

    def __init__(self, core: RecordCore, renderer: Renderer, queries: RecordQueries) -> None:
        self.core = core
        self.renderer = renderer
        self.queries = queries
        self.gate = ApprovalGate(core)
        self.pool = PublicPool(core, self)

    def create(
        self, principal: Principal, form_ref: str, data: Any, owner_id: str = "", idempotency_key: str = ""
    ) -> Doc:
        """Validate and store one record with its history/outbox entry; returns the API record.

        With an `idempotency_key`, a create repeated with the same key (a retry, an event delivered
        again) returns the record the first one made instead of a second record: the key is claimed
        in the same transaction as the record, like a unique value.
        """
        form = self.core.form(principal, form_ref)
        self.core.require(principal, form, "create")
        idem = ""
        if idempotency_key:
            if len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
                raise rerr.invalid(
                    "idempotency_key", "idempotency_key_too_long", principal.locale, max_length=MAX_IDEMPOTENCY_KEY
                )
            idem = unique_key(principal.tenant_id, form.id, IDEMPOTENCY_FIELD, idempotency_key)
            holder = self.core.repo.unique_holder(idem)
            if holder:
                return self.get(principal, holder)
        now = self.core.clock()
        ctx = self.core.context(principal, now)
        if not isinstance(data, Mapping):
            raise rerr.invalid("data_json", "not_object", principal.locale)
        fa = self.core.access(principal, form, ctx)
        refused, allowed = input_errors(form, fa, data, principal.locale)
        result = crm_schema.validate_data(
            list(form.fields), allowed, existing=None, ctx=ctx, allow_read_only=principal.kind == "service"
        )
        if result.errors and (newer := self.core.refreshed(principal, form, result.errors)) is not None:
            form = newer
            fa = self.core.access(principal, form, ctx)
            refused, allowed = input_errors(form, fa, data, principal.locale)
            result = crm_schema.validate_data(
                list(form.fields), allowed, existing=None, ctx=ctx, allow_read_only=principal.kind == "service"
            )
        if refused or result.errors:
            raise ValidationFailed(refused + list(result.errors))
        owner = self.core.owner_of(principal, form, owner_id)
        record_id = self.core.new_id()
        masked = ctx.with_role("")
        has_auto = bool(form.of_type("auto_number"))
        seq = self.core.repo.reserve_order(principal.tenant_id, form.id)

        def txn(tx: Transaction) -> Doc:
            values = dict(result.values)
            if has_auto:
                for key, numbers in self.core.auto_numbers(tx, form, principal.tenant_id, now, 1)[0].items():
                    values[key] = numbers[0]
            doc = self.core.new_doc(principal, form, record_id, values, owner, now, seq)
            doc.update(self.core.search_fields(form, values))
            claims = self.core.unique_claims(form, principal.tenant_id, record_id, values)
            if idem:
                claims.append((idem, record_id))
            if claims:
                tx.claim_uniques(claims)
            tx.insert_records([doc])
            out = self.core.outputs(form, values, masked)
            entry = self.core.history_entry(
                RECORD_CREATED,
                principal,
                doc,
                now,
                [{"field": k, "old": None, "new": v} for k, v in out.items()],
                {"form_version": form.version, "owner_id": doc["owner_id"], "data": out},
            )
            tx.insert_history([entry])
            return doc

        try:
            doc = self.core.repo.transaction(txn)
        except UniqueTaken as taken:
            holder = self.core.repo.unique_holder(idem) if idem and taken.key == idem else None
            if holder:
                # the same key created it a moment ago (a concurrent retry)
                return self.get(principal, holder)
            raise self.core.unique_conflict(principal, form, taken) from None
        self.queries.written(principal.tenant_id, form, [doc["data"]])
        return self.renderer.render_one(principal, Loaded(doc, form), ctx, computed=False)

    def get(self, principal: Principal, record_id: str) -> Doc:
        """One live record with relations displayed, lookups and rollups computed, retired values apart.

        A record in a public pool is readable by the pool's members too (domain/pool.py).
        """
        loaded = self.pool.load(principal, record_id)
        return self.renderer.render_one(principal, loaded, self.core.context(principal), computed=True)

    def update(self, principal: Principal, record_id: str, data: Any, expected_version: int, owner_id: str = "") -> Doc:
        """Partial update with optimistic concurrency; an owner change is its own event."""
        loc = principal.locale
        if not expected_version or expected_version < 1:
            raise rerr.invalid("expected_version", "required", loc)
        if not isinstance(data, Mapping):
            raise rerr.invalid("data_json", "not_object", loc)
        loaded = self.core.load(principal, record_id, edit=True)
        doc, form = loaded.doc, loaded.form
        refuse_if_locked(principal, doc, fields=[str(k) for k in data])
        if int(doc.get("version") or 0) != expected_version:
            raise rerr.version_conflict(record_id, int(doc.get("version") or 0), expected_version, loc)
        now = self.core.clock()
        ctx = self.core.context(principal, now)
        stored: Doc = dict(doc.get("data") or {})
        current = {k: v for k, v in stored.items() if form.field(k) is not None}
        fa = self.core.access(principal, form, ctx)
        refused, allowed = input_errors(form, fa, data, loc)
        result = crm_schema.validate_data(
            list(form.fields), allowed, existing=current, ctx=ctx, allow_read_only=principal.kind == "service"
        )
        if result.errors and (newer := self.core.refreshed(principal, form, result.errors)) is not None:
            form = newer
            fa = self.core.access(principal, form, ctx)
            loaded = Loaded(doc, form, fa)
            current = {k: v for k, v in stored.items() if form.field(k) is not None}
            refused, allowed = input_errors(form, fa, data, loc)
            result = crm_schema.validate_data(
                list(form.fields), allowed, existing=current, ctx=ctx, allow_read_only=principal.kind == "service"
            )
        if refused or result.errors:
            raise ValidationFailed(refused + list(result.errors))
        changed = {k: v for k, v in result.values.items() if k not in stored or stored[k] != v}
        held = self.gate.held(principal, loaded, changed, {**stored, **changed})
        if held is not None:
            # the guarded fields wait for their approval; the rest of the change is written now
            changed = {k: v for k, v in changed.items() if k not in held["fields"]}
        new_owner = owner_id if owner_id and owner_id != doc.get("owner_id") else ""
        new_department = str(doc.get("department_id") or "")
        if new_owner:
            new_owner, new_department = self.core.owner_of(principal, form, new_owner)
        if not changed and not new_owner and held is None:
            return self.renderer.render_one(principal, loaded, ctx)
        new_data = {**stored, **changed}
        version = expected_version + 1
        set_fields: Doc = {f"data.{k}": v for k, v in changed.items()}
        set_fields.update(
            {
                "version": version,
                "form_version": form.version,
                "updated_by": principal.user_id,
                "updated_at": now,
                "last_activity_at": now,
            }
        )
        if changed:
            set_fields.update(self.core.search_fields(form, new_data))
            set_fields["files"] = attachment_ids(new_data)
        if new_owner:
            set_fields["owner_id"] = new_owner
            set_fields["department_id"] = new_department
            set_fields["acl"] = access.record_acl(new_owner, new_department, doc.get("shares") or [])
        masked = ctx.with_role("")
        if held is not None:
            set_fields["pending_change"] = {
                "id": held["id"],
                "guard_id": held["guard"]["id"],
                "owner": held["guard"].get("owner"),
                "fields": held["fields"],
                "requested_by": principal.user_id,
                "at": now,
            }
        old_claims = dict(self.core.unique_claims(form, principal.tenant_id, record_id, current))
        new_claims = dict(self.core.unique_claims(form, principal.tenant_id, record_id, new_data))
        release = [k for k in old_claims if k not in new_claims]
        claim = [(k, record_id) for k in new_claims if k not in old_claims]
        after = {
            **doc,
            "version": version,
            "owner_id": new_owner or doc.get("owner_id"),
            "department_id": new_department,
        }
        entries: list[Doc] = []
        if changed:
            changes = []
            for key, new in changed.items():
                definition = form.field(key) or {"key": key}
                old_out = crm_schema.to_output(definition, stored[key], ctx=masked) if key in stored else None
                new_out = crm_schema.to_output(definition, new, ctx=masked)
                changes.append({"field": key, "old": old_out, "new": new_out})
            entries.append(
                self.core.history_entry(
                    RECORD_UPDATED,
                    principal,
                    after,
                    now,
                    changes,
                    {"version": version, "changes": {c["field"]: {"old": c["old"], "new": c["new"]} for c in changes}},
                )
            )
        if held is not None:
            held_out = {}
            for key, new in held["fields"].items():
                definition = form.field(key) or {"key": key}
                old_out = crm_schema.to_output(definition, stored[key], ctx=masked) if key in stored else None
                held_out[key] = {"old": old_out, "new": crm_schema.to_output(definition, new, ctx=masked)}
            entries.append(
                self.core.history_entry(
                    RECORD_CHANGE_HELD,
                    principal,
                    after,
                    now,
                    [{"field": k, "old": c["old"], "new": c["new"]} for k, c in held_out.items()],
                    {
                        "version": version,
                        "change_id": held["id"],
                        "guard_id": held["guard"]["id"],
                        "guard_owner": held["guard"].get("owner") or "",
                        "changes": held_out,
                        "requested_by": principal.user_id,
                    },
                )
            )
        if new_owner:
            entries.append(
                self.core.history_entry(
                    RECORD_OWNER_CHANGED,
                    principal,
                    after,
                    now,
                    [{"field": "owner_id", "old": doc.get("owner_id"), "new": new_owner}],
                    {"version": version, "old_owner_id": doc.get("owner_id"), "new_owner_id": new_owner},
                )
            )

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, expected_version, set_fields)
            if release:
                tx.release_uniques(release, record_id)
            if claim:
                tx.claim_uniques(claim)
            tx.insert_history(entries)

        self.core.versioned_write(txn, principal, form, record_id, expected_version)
        if changed:
            self.queries.written(principal.tenant_id, form, [changed])
        fresh = {**doc, "data": new_data, **{k: v for k, v in set_fields.items() if not k.startswith("data.")}}
        return self.renderer.render_one(principal, Loaded(fresh, form), ctx)

    def delete(self, principal: Principal, record_id: str, expected_version: int = 0) -> Doc:
        """Soft delete (to the recycle bin); releases unique values; history is kept.

        Needs the `delete` action with a grant covering the record (a share is not enough).
        """
        loaded = self.core.load(principal, record_id)
        self.core.require_on(principal, loaded, "delete")
        doc, form = loaded.doc, loaded.form
        refuse_if_locked(principal, doc)
        version = int(doc.get("version") or 0)
        if expected_version and expected_version != version:
            raise rerr.version_conflict(record_id, version, expected_version, principal.locale)
        now = self.core.clock()
        set_fields: Doc = {"deleted": True, "deleted_at": now, "deleted_by": principal.user_id, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id})
        release = [k for k, _ in self.core.unique_claims(form, principal.tenant_id, record_id, doc.get("data") or {})]
        after = {**doc, **set_fields}
        entry = self.core.history_entry(
            RECORD_DELETED,
            principal,
            after,
            now,
            [{"field": "deleted", "old": False, "new": True}],
            {"version": version + 1},
        )

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, version, set_fields)
            if release:
                tx.release_uniques(release, record_id)
            tx.insert_history([entry])

        self.core.versioned_write(txn, principal, form, record_id, version)
        return self.renderer.render_one(principal, Loaded(after, form), self.core.context(principal, now))

    def restore(self, principal: Principal, record_id: str) -> Doc:
        """Bring a record back from the recycle bin; its unique values must still be free (else 409).

        Needs `delete` on the record, as deleting it did; a record merged into another one stays merged (409).
        """
        loaded = self.core.load(principal, record_id, deleted=True)
        self.core.require_on(principal, loaded, "delete", shown="restore")
        doc, form = loaded.doc, loaded.form
        if doc.get("merged_into"):
            raise rerr.merged_away(record_id, str(doc["merged_into"]), principal.locale)
        version = int(doc.get("version") or 0)
        now = self.core.clock()
        set_fields: Doc = {"deleted": False, "deleted_at": None, "deleted_by": None, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id, "last_activity_at": now})
        claims = self.core.unique_claims(form, principal.tenant_id, record_id, doc.get("data") or {})
        after = {**doc, **set_fields}
        entry = self.core.history_entry(
            RECORD_RESTORED,
            principal,
            after,
            now,
            [{"field": "deleted", "old": True, "new": False}],
            {"version": version + 1},
        )

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, version, set_fields)
            if claims:
                tx.claim_uniques(claims)
            tx.insert_history([entry])

        self.core.versioned_write(txn, principal, form, record_id, version)
        return self.renderer.render_one(principal, Loaded(after, form), self.core.context(principal, now))

    def explain_access(self, principal: Principal, form_ref: str, record_id: str, action: str) -> Doc:
        """crm_runtime.access.explain for the caller: {allowed, reasons, hidden_fields, readonly_fields}.

        With a record id the record must be in the caller's tenant (else 404),
        whether or not they may see it: the answer says why.
        """
        loc = principal.locale
        if action not in access.ACTIONS:
            raise rerr.invalid("action", "unknown_action", loc, action=action)
        doc: Doc | None = None
        if record_id:
            doc = self.core.repo.get(record_id)
            if doc is None or doc.get("tenant_id") != principal.tenant_id:
                raise rerr.record_not_found(record_id, loc)
            form = self.core.form(principal, str(doc["form_id"]))
        else:
            form = self.core.form(principal, form_ref)
        matcher = self.core.matcher(form, self.core.context(principal))
        result = access.explain(principal.policy, form.key, principal.subject, action, doc, matcher)
        hidden = access.hidden_fields(principal.policy, form.key)
        result["hidden_fields"] = sorted(hidden)
        result["readonly_fields"] = sorted(access.readonly_fields(principal.policy, form.key) - hidden)
        return result
