"""Rendering: stored records -> the API JSON a caller sees (relations displayed, lookups, rollups, retired values).

The caller's hidden fields are left out of every output; a related record's
name (and a lookup through it) is shown only when the caller may see that
record and its field, otherwise the relation shows its id only. Rollups read
every related record, so they are computed for one record (GetRecord, the
result of a write) and never for list pages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import crm_schema
from crm_runtime import access
from crm_runtime.principal import Principal
from record_service.domain.access import FormAccess
from record_service.domain.context import RecordContext
from record_service.domain.core import Loaded, RecordCore, iso
from record_service.domain.forms import FormSchema
from record_service.domain.query import STREAM_BATCH

Doc = dict[str, Any]


class Renderer:
    """Renders records of one form for one caller."""

    def __init__(self, core: RecordCore) -> None:
        self.core = core

    def render_one(self, principal: Principal, loaded: Loaded, ctx: RecordContext, *, computed: bool = True) -> Doc:
        """The API JSON of one record (`computed`: also rollups and retired_data), without hidden fields."""
        fa = loaded.access or self.core.access(principal, loaded.form, ctx)
        out = self.render(principal, loaded.form, [loaded.doc], ctx, fa)[0]
        if computed:
            out["data"].update(self.rollups(principal, loaded.form, loaded.doc, ctx, fa))
            retired = fa.strip(self.retired_data(principal, loaded.form, loaded.doc, ctx))
            if retired:
                out["retired_data"] = retired
        return out

    def render(
        self,
        principal: Principal,
        form: FormSchema,
        docs: Sequence[Doc],
        ctx: RecordContext,
        fa: FormAccess | None = None,
    ) -> list[Doc]:
        """API JSON of records of one form: relations as {id, display}, lookups from one batch read per page.

        The caller's hidden fields of the form are left out; a related record's
        name (and a lookup through it) is shown only when the caller may see
        that record and its field, otherwise the relation shows its id only.
        """
        fa = fa or self.core.access(principal, form, ctx)
        hidden = fa.hidden
        relation_fields = [f for f in form.of_type("relation") if f["key"] not in hidden]
        related = self._related_docs(principal, relation_fields, docs)
        lookups = [f for f in form.of_type("lookup") if f["key"] not in hidden]
        relation_forms: dict[str, FormAccess | None] = {}

        def target_access(definition: Doc) -> FormAccess | None:
            ref = str((definition.get("relation") or {}).get("form_id") or "")
            if ref not in relation_forms:
                try:
                    target = self.core.forms.get_published(principal.tenant_id, ref)
                except Exception:  # noqa: BLE001 - a deleted/unpublished target form shows ids only
                    relation_forms[ref] = None
                else:
                    relation_forms[ref] = self.core.access(principal, target, ctx)
            return relation_forms[ref]

        def display(definition: Doc, rid: str) -> Doc:
            target = related.get(rid)
            ta = target_access(definition)
            name = ta.title_of(target, rid) if target is not None and ta is not None else rid
            return {"id": rid, "display": name}

        result = []
        for doc in docs:
            stored = doc.get("data") or {}
            data: Doc = {}
            for f in form.fields:
                key = f["key"]
                ftype = f.get("type")
                if key in hidden:
                    continue
                if ftype == "relation":
                    value = stored.get(key)
                    if isinstance(value, list):
                        data[key] = [display(f, v) for v in value]
                    elif value:
                        data[key] = display(f, str(value))
                    elif key in stored:
                        data[key] = None
                elif ftype in ("lookup", "rollup"):
                    continue
                elif key in stored:
                    data[key] = crm_schema.to_output(f, stored[key], ctx=ctx)
            for f in lookups:
                data[f["key"]] = self._lookup(form, f, stored, related, target_access, ctx)
            result.append(self._envelope(doc, data))
        return result

    def _envelope(self, doc: Mapping[str, Any], data: Doc) -> Doc:
        out = self._base(doc, data)
        lock = doc.get("lock")
        if lock:
            # in approval: the fields are read-only until it ends (domain/approval_gate.py)
            out["lock"] = {
                "id": lock.get("id"),
                "kind": lock.get("kind"),
                "name": lock.get("name"),
                "at": iso(lock.get("at")),
            }
        if doc.get("pool_id"):
            out["pool_id"] = doc.get("pool_id")
            out["pool_entered_at"] = iso(doc.get("pool_entered_at"))
        pending = doc.get("pending_change")
        if pending:
            out["pending_change"] = {
                "id": pending.get("id"),
                "fields": sorted((pending.get("fields") or {}).keys()),
                "requested_by": pending.get("requested_by"),
                "at": iso(pending.get("at")),
            }
        return out

    @staticmethod
    def _base(doc: Mapping[str, Any], data: Doc) -> Doc:
        return {
            "id": doc["_id"],
            "form_id": doc.get("form_id"),
            "form_version": doc.get("form_version"),
            "data": data,
            "owner_id": doc.get("owner_id"),
            "department_id": doc.get("department_id"),
            "shares": list(doc.get("shares") or []),
            "created_by": doc.get("created_by"),
            "updated_by": doc.get("updated_by"),
            "created_at": iso(doc.get("created_at")),
            "updated_at": iso(doc.get("updated_at")),
            "last_activity_at": iso(doc.get("last_activity_at")),
            "version": doc.get("version"),
            "deleted": bool(doc.get("deleted")),
            "deleted_at": iso(doc.get("deleted_at")),
            "deleted_by": doc.get("deleted_by"),
        }

    def _related_docs(self, principal: Principal, relation_fields: list[Doc], docs: Sequence[Doc]) -> dict[str, Doc]:
        ids: set[str] = set()
        for doc in docs:
            stored = doc.get("data") or {}
            for f in relation_fields:
                value = stored.get(f["key"])
                for v in value if isinstance(value, list) else [value]:
                    if isinstance(v, str) and v:
                        ids.add(v)
        if not ids:
            return {}
        # whole records: the visibility check may read any stored path (role conditions)
        found = self.core.repo.get_many(sorted(ids))
        return {d["_id"]: d for d in found if d.get("tenant_id") == principal.tenant_id}

    def _lookup(
        self,
        form: FormSchema,
        definition: Doc,
        stored: Mapping[str, Any],
        related: Mapping[str, Doc],
        target_access: Callable[[Doc], FormAccess | None],
        ctx: RecordContext,
    ) -> Any:
        spec = definition.get("lookup") or {}
        relation = form.field(str(spec.get("relation_field") or ""))
        if relation is None or relation.get("type") != "relation":
            return None
        ta = target_access(relation)
        target_field = ta.form.field(str(spec.get("field") or "")) if ta is not None else None
        if ta is None or target_field is None or target_field["key"] in ta.hidden:
            return None
        value = stored.get(relation["key"])

        def one(rid: Any) -> Any:
            target = related.get(rid) if isinstance(rid, str) else None
            if target is None or not ta.allows(target):
                return None
            raw = (target.get("data") or {}).get(target_field["key"])
            return crm_schema.to_output(target_field, raw, ctx=ctx) if raw is not None else None

        if isinstance(value, list):
            return [one(v) for v in value]
        return one(value)

    def rollups(
        self,
        principal: Principal,
        form: FormSchema,
        doc: Mapping[str, Any],
        ctx: RecordContext,
        fa: FormAccess | None = None,
    ) -> Doc:
        """Rollup fields of one record, each one indexed query on the related form's relation field.

        Computed on GetRecord only (not on list pages): a rollup reads every
        related record. Counted over the tenant's live related records,
        whatever the caller's data scope; a rollup the caller may not see
        (hidden here, or aggregating a field hidden from them in the related
        form) is left out or null.
        """
        hidden = fa.hidden if fa is not None else frozenset()
        out: Doc = {}
        for f in form.of_type("rollup"):
            if f["key"] in hidden:
                continue
            spec = f.get("rollup") or {}
            try:
                target = self.core.form(principal, str(spec.get("form_id") or ""))
            except Exception:  # noqa: BLE001 - an unpublished target form rolls up to nothing
                out[f["key"]] = None
                continue
            relation_key = str(spec.get("relation_field") or "")
            agg = str(spec.get("agg") or "count")
            value_field = target.field(str(spec.get("field") or ""))
            predicate = {
                "tenant_id": principal.tenant_id,
                "form_id": target.id,
                "deleted": False,
                f"data.{relation_key}": doc["_id"],
            }
            if agg == "count":
                out[f["key"]] = self.core.repo.count(predicate)
                continue
            if value_field is None or value_field["key"] in access.hidden_fields(principal.policy, target.key):
                out[f["key"]] = None
                continue
            numbers = [
                v
                for row in self.core.repo.find(
                    predicate, projection={f"data.{value_field['key']}": 1}, batch_size=STREAM_BATCH
                )
                for v in [(row.get("data") or {}).get(value_field["key"])]
                if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            out[f["key"]] = _aggregate(agg, numbers, value_field, ctx)
        return out

    def retired_data(self, principal: Principal, form: FormSchema, doc: Mapping[str, Any], ctx: RecordContext) -> Doc:
        """Stored values of fields the current form no longer has, rendered with the version that had them."""
        stored = doc.get("data") or {}
        retired = {k: v for k, v in stored.items() if form.field(k) is None}
        if not retired:
            return {}
        old_form: FormSchema | None = None
        version = int(doc.get("form_version") or 0)
        if version and version != form.version:
            try:
                old_form = self.core.forms.get_published(principal.tenant_id, form.id, version)
            except Exception:  # noqa: BLE001 - without the old definition the raw value is shown
                old_form = None
        out: Doc = {}
        for key, value in retired.items():
            definition = old_form.field(key) if old_form is not None else None
            if definition is not None and definition.get("type") not in ("relation",):
                out[key] = crm_schema.to_output(definition, value, ctx=ctx)
            else:
                out[key] = value if not isinstance(value, datetime) else iso(value)
        return out


def _aggregate(agg: str, numbers: list[Any], field: Doc, ctx: RecordContext) -> Any:
    if not numbers:
        return 0 if agg == "sum" else None
    if agg == "sum":
        value: Any = sum(numbers)
    elif agg == "min":
        value = min(numbers)
    elif agg == "max":
        value = max(numbers)
    elif agg == "avg":
        value = sum(numbers) / len(numbers)
        if field.get("type") == "money":
            value = round(value)
    else:
        return None
    return crm_schema.to_output(field, value, ctx=ctx)
