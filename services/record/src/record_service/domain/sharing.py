"""Sharing a record with a user or a department (read or edit), and taking a share back.

A share is part of the record (`shares`) and of its `acl` tokens, so lists
push it into the query like the owner and the department; each change is its
own history entry and event (record.shared / record.unshared).
"""

from __future__ import annotations

from typing import Any

from crm_runtime import access
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import Loaded, RecordCore
from record_service.domain.rendering import Renderer
from record_service.domain.repository import Transaction
from record_service.events import RECORD_SHARED, RECORD_UNSHARED

Doc = dict[str, Any]
SHARE_KINDS = ("user", "department")
SHARE_ACCESS = ("read", "edit")


class Sharing:
    """ShareRecord, UnshareRecord."""

    def __init__(self, core: RecordCore, renderer: Renderer) -> None:
        self.core = core
        self.renderer = renderer

    def share(self, principal: Principal, record_id: str, kind: str, target_id: str, level: str) -> Doc:
        """Share a record with a user or a department (read or edit); replaces an earlier share with them.

        The caller must be able to change the record (edit visibility), or hold
        `assign` with the record in scope. A user target must be an active user
        of the tenant in the directory. Writes `shares`, `acl` and a history
        entry (action "shared", event record.shared) in one transaction.
        """
        loc = principal.locale
        if level not in SHARE_ACCESS:
            raise rerr.invalid("access", "share_access_invalid", loc)
        loaded = self._sharable(principal, record_id, kind, target_id)
        shares = [s for s in loaded.doc.get("shares") or [] if (s.get("kind"), s.get("id")) != (kind, target_id)]
        share = {"kind": kind, "id": target_id, "access": level}
        return self._write_shares(principal, loaded, [*shares, share], RECORD_SHARED, share, None)

    def unshare(self, principal: Principal, record_id: str, kind: str, target_id: str) -> Doc:
        """Remove the share of a record with a user or a department (a no-op when there is none)."""
        loaded = self._sharable(principal, record_id, kind, target_id, check_target=False)
        before = list(loaded.doc.get("shares") or [])
        old = next((s for s in before if (s.get("kind"), s.get("id")) == (kind, target_id)), None)
        if old is None:
            return self.renderer.render_one(principal, loaded, self.core.context(principal))
        shares = [s for s in before if s is not old]
        return self._write_shares(principal, loaded, shares, RECORD_UNSHARED, {"kind": kind, "id": target_id}, old)

    def _sharable(
        self, principal: Principal, record_id: str, kind: str, target_id: str, *, check_target: bool = True
    ) -> Loaded:
        loc = principal.locale
        if kind not in SHARE_KINDS:
            raise rerr.invalid("target_kind", "share_kind_invalid", loc)
        if not target_id:
            raise rerr.invalid("target_id", "required", loc)
        loaded = self.core.load(principal, record_id)
        ctx = self.core.context(principal)
        if not self.core.access(principal, loaded.form, ctx, edit=True).allows(loaded.doc):
            self.core.require_on(principal, loaded, "assign", shown="share")
        if check_target and kind == "user":
            user = self.core.directory.user(principal.tenant_id, target_id)
            if user is None or not user.active or user.tenant_id != principal.tenant_id:
                raise rerr.invalid("target_id", "share_target_invalid", loc, target=target_id)
        return loaded

    def _write_shares(
        self,
        principal: Principal,
        loaded: Loaded,
        shares: list[Doc],
        event_type: str,
        share: Doc,
        old: Doc | None,
    ) -> Doc:
        doc, form = loaded.doc, loaded.form
        record_id = str(doc["_id"])
        version = int(doc.get("version") or 0)
        now = self.core.clock()
        acl = access.record_acl(str(doc.get("owner_id") or ""), str(doc.get("department_id") or ""), shares)
        set_fields: Doc = {"shares": shares, "acl": acl, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id})
        after = {**doc, **set_fields}
        label = f"{share['kind']}:{share['id']}"
        new_level = share.get("access")
        change = {"field": "shares", "old": (old or {}).get("access") if old else None, "new": new_level}
        entry = self.core.history_entry(
            event_type,
            principal,
            after,
            now,
            [{**change, "target": label}],
            {"version": version + 1, "share": share},
        )

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, version, set_fields)
            tx.insert_history([entry])

        self.core.versioned_write(txn, principal, form, record_id, version)
        return self.renderer.render_one(principal, Loaded(after, form), self.core.context(principal, now))
