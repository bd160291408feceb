"""Duplicate candidates of a record or of unsaved data, ranked by how many dedupe keys they share.

Every stored record carries `dedupe`: crm_schema.dedupe_keys of its data
("customer_name:北京华信恒通科技", "mobile:13800138000"). One query per key
through the (tenant_id, form_id, deleted, dedupe) list index finds the records
sharing it; the caller's visibility is checked in Python on each, keys of
fields hidden from the caller are not used (a match on them would reveal the
hidden value), and candidates leave the hidden fields out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import crm_schema
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import RecordCore, field_label
from record_service.domain.rendering import Renderer

Doc = dict[str, Any]
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
PER_KEY_CAP = 500  # records read per key: a key shared by more is noise, not a duplicate
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class DuplicateFinder:
    """FindDuplicates."""

    def __init__(self, core: RecordCore, renderer: Renderer, *, per_key_cap: int = PER_KEY_CAP) -> None:
        self._core = core
        self._renderer = renderer
        self._cap = per_key_cap

    def find(
        self, principal: Principal, form_ref: str, record_id: str = "", data: Any = None, limit: int = 0
    ) -> list[Doc]:
        """Candidates [{record, score, matched: [{field, label, value}]}], most matching keys first."""
        loc = principal.locale
        limit = limit or DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise rerr.invalid("limit", "invalid_limit", loc, max=MAX_LIMIT)
        core = self._core
        if record_id:
            loaded = core.load(principal, record_id)
            form = loaded.form
            if form_ref and form_ref not in (form.id, form.key):
                raise rerr.invalid("form_id", "form_mismatch", loc, form=form_ref)
            stored = loaded.doc.get("data") or {}
            keys = list(loaded.doc.get("dedupe") or core.search_fields(form, stored)["dedupe"])
        else:
            if not form_ref:
                raise rerr.invalid("form_id", "required", loc)
            form = core.form(principal, form_ref)
            if not isinstance(data, Mapping):
                raise rerr.invalid("data_json", "not_object", loc)
            keys = crm_schema.dedupe_keys(list(form.fields), dict(data))
        ctx = core.context(principal)
        fa = core.access(principal, form, ctx)
        keys = [k for k in keys if k.partition(":")[0] not in fa.hidden]
        matched: dict[str, list[str]] = {}
        docs: dict[str, Doc] = {}
        for key in keys:
            predicate = {"tenant_id": principal.tenant_id, "form_id": form.id, "deleted": False, "dedupe": key}
            for doc in core.repo.find(predicate, limit=self._cap + 1):
                rid = str(doc["_id"])
                if rid == record_id or not fa.allows(doc):
                    continue
                docs[rid] = doc
                matched.setdefault(rid, []).append(key)
        ranked = sorted(
            matched,
            key=lambda rid: (len(matched[rid]), docs[rid].get("updated_at") or _EPOCH, rid),
            reverse=True,
        )[:limit]
        if not ranked:
            return []
        rendered = self._renderer.render(principal, form, [docs[rid] for rid in ranked], ctx, fa)
        out = []
        for rid, record in zip(ranked, rendered, strict=True):
            reasons = []
            for key in matched[rid]:
                field_key, _, value = key.partition(":")
                definition = form.field(field_key)
                reasons.append(
                    {
                        "field": field_key,
                        "label": field_label(definition, loc) if definition else field_key,
                        "value": value,
                    }
                )
            out.append(
                {
                    "record": record,
                    "score": len(reasons),
                    "ratio": round(len(reasons) / len(keys), 3),
                    "matched": reasons,
                }
            )
        return out
