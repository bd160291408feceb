"""The pool API's use cases: public pools per form (versioned, admins only), each save published to the
record service as `pool.updated` (or `pool.deleted`) through the workflow's outbox, in the same transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from crm_runtime.envelope import make_envelope
from crm_runtime.principal import Principal
from workflow_service.domain import errors as werr
from workflow_service.domain.common import FormsFor, iso, new_definition, require_admin
from workflow_service.domain.pools import parse_pool, replica
from workflow_service.domain.ports import Doc, FormPort

SOURCE = "workflow"


class PoolStore(Protocol):
    """What the pool use cases need of the store (store/repository.py)."""

    def save_pool(self, doc: Doc, event: Doc, *, expected_version: int = 0) -> bool:
        """Insert or compare-and-set a pool with its outbox event."""
        ...

    def get_pool(self, tenant_id: str, pool_id: str) -> Doc | None:
        """One pool."""
        ...

    def list_pools(self, tenant_id: str, form_id: str = "") -> list[Doc]:
        """Live pools."""
        ...

    def template_pool(self, tenant_id: str, template_key: str) -> Doc | None:
        """A template's pool."""
        ...


def _event(event_type: str, doc: Mapping[str, Any], actor: str) -> Doc:
    envelope = make_envelope(
        event_type, str(doc["tenant_id"]), replica({**doc, "id": doc["_id"]}), source=SOURCE, actor=actor
    )
    return {"_id": envelope["id"], "tenant_id": envelope["tenant_id"], "event": envelope, "published": False}


def public(doc: Mapping[str, Any]) -> Doc:
    """The API form of a pool."""
    return {k: iso(v) for k, v in doc.items() if k not in ("_id", "watch_forms", "deleted")}


class PoolUseCases:
    """CreatePool, UpdatePool, GetPool, ListPools, DeletePool."""

    def __init__(self, store: PoolStore, forms: FormPort, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.forms = forms
        self.clock = clock or (lambda: datetime.now(UTC))

    def _found(self, principal: Principal, pool_id: str) -> Doc:
        doc = self.store.get_pool(principal.tenant_id, pool_id) if pool_id else None
        if doc is None or doc.get("deleted"):
            raise werr.pool_not_found(pool_id, principal.locale)
        return doc

    def create(self, principal: Principal, spec: Any, *, template_key: str = "") -> Doc:
        """Check and store a new pool (version 1) and tell the record service."""
        require_admin(principal)
        parsed = parse_pool(spec, FormsFor(self.forms, principal), locale=principal.locale)
        now = self.clock()
        doc = new_definition(principal, parsed, now, template_key)
        self.store.save_pool(doc, _event("pool.updated", doc, principal.user_id))
        return public(self._found(principal, doc["_id"]))

    def update(self, principal: Principal, pool_id: str, patch: Any, expected_version: int) -> Doc:
        """Change a pool (optimistic on expected_version)."""
        require_admin(principal)
        if not expected_version or expected_version < 1:
            raise werr.invalid("expected_version", "required", principal.locale)
        current = self._found(principal, pool_id)
        if int(current.get("version") or 0) != expected_version:
            raise werr.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        parsed = parse_pool(patch, FormsFor(self.forms, principal), locale=principal.locale, current=current)
        doc = {k: v for k, v in current.items() if k != "id"}
        doc.update(parsed, _id=pool_id, version=expected_version + 1, updated_at=self.clock())
        if not self.store.save_pool(
            doc, _event("pool.updated", doc, principal.user_id), expected_version=expected_version
        ):
            latest = self._found(principal, pool_id)
            raise werr.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
        return public(self._found(principal, pool_id))

    def get(self, principal: Principal, pool_id: str) -> Doc:
        """One pool (any user of the tenant may read its definition: who is a member, the caps)."""
        return public(self._found(principal, pool_id))

    def list_pools(self, principal: Principal, form_ref: str = "") -> list[Doc]:
        """The pools of a form, or of the tenant."""
        form_id = ""
        if form_ref:
            form = self.forms.published(principal, form_ref)
            if form is None:
                return []
            form_id = form.id
        return [public(d) for d in self.store.list_pools(principal.tenant_id, form_id)]

    def delete(self, principal: Principal, pool_id: str, expected_version: int) -> None:
        """Delete a pool; its records keep no owner until an admin assigns them (the record service drops it)."""
        require_admin(principal)
        current = self._found(principal, pool_id)
        if int(current.get("version") or 0) != expected_version:
            raise werr.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        doc = {k: v for k, v in current.items() if k != "id"}
        doc.update(_id=pool_id, deleted=True, enabled=False, version=expected_version + 1, updated_at=self.clock())
        doc.pop("template_key", None)
        if not self.store.save_pool(
            doc, _event("pool.deleted", doc, principal.user_id), expected_version=expected_version
        ):
            latest = self._found(principal, pool_id)
            raise werr.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
