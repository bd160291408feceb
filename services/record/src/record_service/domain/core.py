"""RecordCore: what every record use case shares — forms, access checks, loading, writing, the record's shape.

The use cases (records.py, bulk.py, listing.py, history.py, sharing.py,
rendering.py, merge.py, duplicates.py, view360.py, attachments.py) each get
one RecordCore injected and use only its public methods:

    form / refreshed        a published form version (its indexes ensured once per process)
    context                 crm_schema's ValidationContext of one call (RecordContext)
    access / require / ...  the caller's access (domain/access.py over crm_runtime.access)
    load                    a record the caller may see (404) or change (403)
    write / versioned_write one store transaction; a unique clash is a 409, a stale version a 409
    new_doc / search_fields / unique_claims / auto_numbers / history_entry   the stored shape

Every write is one store transaction that writes the record, its unique-value
claims, its counters and one history entry per event (the history entry is the
outbox document). Access control (docs/security.md) is decided by
crm_runtime.access over the caller's compiled policy: every read checks the
record's visibility (out of sight: 404), every write the action (refused: 403),
and every record carries `acl` (owner, owner's department, shares) so that
lists push `acl $in [tokens]`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import crm_schema
from crm_runtime import access
from crm_runtime.errors import FieldError, NotFound
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.access import ConditionMatcher, FormAccess, forbidden, forbidden_assign
from record_service.domain.context import RecordContext
from record_service.domain.directory import Directory, EmptyDirectory
from record_service.domain.files import attachment_ids
from record_service.domain.forms import FormSchema, FormSource
from record_service.domain.query import facets_of, keyword_partition, normalise_text
from record_service.domain.repository import (
    AttachmentLookup,
    Cipher,
    RecordRepository,
    StaleVersion,
    Transaction,
    UniqueTaken,
    no_attachments,
)
from record_service.domain.times import iso, utc_now
from record_service.events import history_document

__all__ = ["Loaded", "RecordCore", "field_label", "iso", "new_record_id", "unique_key", "utc_now"]

Doc = dict[str, Any]


def new_record_id() -> str:
    """An ObjectId-shaped id (24 hex: 4 bytes of seconds, 8 random bytes): unique and roughly time ordered."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def unique_key(tenant_id: str, form_id: str, field_key: str, normalised: str) -> str:
    """_id of a claim in the `uniques` collection."""
    return f"{tenant_id}|{form_id}|{field_key}|{normalised}"


def field_label(field: Mapping[str, Any] | None, locale: str) -> str:
    """A field's label in `locale` (falls back to zh-CN, then the key)."""
    if not field:
        return ""
    label = field.get("label")
    if isinstance(label, Mapping):
        return str(label.get(locale) or label.get("zh-CN") or label.get("en") or field.get("key") or "")
    return str(label or field.get("key") or "")


@dataclass
class Loaded:
    """A stored record the principal may see, with the latest published version of its form."""

    doc: Doc
    form: FormSchema
    access: FormAccess | None = None


class RecordCore:
    """The shared building blocks of the record use cases; thread-safe (no per-call state on the instance)."""

    def __init__(
        self,
        repo: RecordRepository,
        forms: FormSource,
        cipher: Cipher,
        *,
        tz: ZoneInfo | None = None,
        clock: Callable[[], datetime] = utc_now,
        attachments: AttachmentLookup = no_attachments,
        new_id: Callable[[], str] | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.repo = repo
        self.directory: Directory = directory or EmptyDirectory()
        self.forms = forms
        self._cipher = cipher
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.clock = clock
        self.attachments = attachments
        self.new_id = new_id or new_record_id
        self._indexed: set[tuple[str, str, int]] = set()

    def context(self, principal: Principal, now: datetime | None = None) -> RecordContext:
        """crm_schema's ValidationContext for this principal's call (relations: visible records only)."""
        targets: dict[str, FormAccess | None] = {}

        def can_see(form_ref: str, doc: Mapping[str, Any]) -> bool:
            if form_ref not in targets:
                try:
                    target = self.forms.get_published(principal.tenant_id, form_ref)
                except NotFound:
                    targets[form_ref] = None
                else:
                    targets[form_ref] = self.access(principal, target, ctx)
            fa = targets[form_ref]
            return fa is not None and fa.allows(doc)

        ctx = RecordContext(
            tenant_id=principal.tenant_id,
            locale=principal.locale,
            tz=self.tz,
            now=now or self.clock(),
            role=principal.role,
            repo=self.repo,
            forms=self.forms,
            cipher=self._cipher,
            attachments=self.attachments,
            can_see=can_see,
            may_use_file=lambda file_id, uploader: self.may_read_file(principal, file_id, uploader),
        )
        return ctx

    def may_read_file(self, principal: Principal, file_id: str, uploaded_by: Any) -> bool:
        """May the caller read (download, attach) an uploaded file of their tenant?

        Yes when they see a record (live or in the recycle bin) holding it in a
        field not hidden from them; for a file no record holds yet, when they
        uploaded it.
        """
        holders = self.repo.holding_file(principal.tenant_id, file_id)
        if not holders:
            return uploaded_by is None or uploaded_by == principal.user_id
        for doc in holders:
            fa = self.sees(principal, doc)
            if fa is not None and file_id in attachment_ids(fa.strip(doc.get("data") or {})):
                return True
        return False

    def matcher(self, form: FormSchema, ctx: RecordContext) -> ConditionMatcher:
        """Role conditions of `form` evaluated with the planner's own filter parsing."""
        return ConditionMatcher(
            form,
            ctx,
            lambda definition, op, value: crm_schema.filter_value(definition, op, value, ctx=ctx),
            crm_schema.filter_path,
        )

    def access(
        self, principal: Principal, form: FormSchema, ctx: RecordContext | None = None, *, edit: bool = False
    ) -> FormAccess:
        """The principal's access to the records of `form` (view, or change with edit=True)."""
        return FormAccess.of(principal, form, self.matcher(form, ctx or self.context(principal)), edit=edit)

    def require(self, principal: Principal, form: FormSchema, *actions: str) -> None:
        """403 unless the policy grants every action on the form."""
        for action in actions:
            if not access.can(principal.policy, form.key, action):
                raise forbidden(action, form, principal.locale)

    def require_on(self, principal: Principal, loaded: Loaded, action: str, shown: str = "") -> None:
        """403 unless a grant of the policy covers `action` on this (visible) record (crm_runtime.access.explain)."""
        fa = loaded.access or self.access(principal, loaded.form)
        decision = access.explain(principal.policy, loaded.form.key, principal.subject, action, loaded.doc, fa.matcher)
        if not decision["allowed"]:
            raise forbidden(shown or action, loaded.form, principal.locale, record_id=str(loaded.doc["_id"]))

    def sees(self, principal: Principal, doc: Mapping[str, Any]) -> FormAccess | None:
        """The caller's access to the form of a stored record when they may see it, else None."""
        if doc.get("tenant_id") != principal.tenant_id:
            return None
        try:
            form = self.forms.get_published(principal.tenant_id, str(doc.get("form_id") or ""))
        except NotFound:
            return None
        fa = self.access(principal, form)
        return fa if fa.allows(doc) else None

    def owner_of(self, principal: Principal, form: FormSchema, owner_id: str) -> tuple[str, str]:
        """(owner, department) of a new or reassigned record.

        The caller themself: their own department. Anyone else must be an
        active user of the tenant in the directory (else 422 owner_invalid) that
        the caller may assign to (crm_runtime.access.may_assign_to, else 403);
        the record's department is the owner's. A service creating a record
        without naming an owner (a web-form lead, an import for the pool) leaves
        it without one: no user owns it until it is assigned or claimed.
        """
        loc = principal.locale
        if not owner_id and principal.kind == "service":
            return "", ""
        if not owner_id or owner_id == principal.user_id:
            return principal.user_id, principal.department_id
        user = self.directory.user(principal.tenant_id, owner_id)
        if user is None or not user.active or user.tenant_id != principal.tenant_id:
            raise rerr.invalid("owner_id", "owner_invalid", loc, owner=owner_id)
        if not access.may_assign_to(principal.policy, form.key, principal.subject, owner_id, user.department_id):
            raise forbidden_assign(owner_id, form, loc)
        return owner_id, user.department_id

    def form(self, principal: Principal, ref: str, version: int = 0) -> FormSchema:
        """A published form version; its indexes are ensured the first time it is seen."""
        if not ref:
            raise rerr.invalid("form_id", "required", principal.locale)
        form = self.forms.get_published(principal.tenant_id, ref, version)
        marker = (form.tenant_id, form.id, form.version)
        if marker not in self._indexed:
            self.repo.ensure_form_indexes(form)
            self._indexed.add(marker)
        return form

    def refreshed(self, principal: Principal, form: FormSchema, errors: Sequence[FieldError]) -> FormSchema | None:
        """A newer published version when the input names fields the cached version lacks, else None.

        The form cache is invalidated by `form.published` events, which take a
        moment to arrive; asking the form service again on an unknown field
        closes that window, so a field added and published a moment ago is
        accepted at once. Costs one call, only on that error path.
        """
        invalidate = getattr(self.forms, "invalidate", None)
        if invalidate is None or not any(e.rule == "unknown_field" for e in errors):
            return None
        invalidate(principal.tenant_id, form.id, form.key)
        fresh = self.form(principal, form.id)
        return fresh if fresh.version != form.version else None

    def load(self, principal: Principal, record_id: str, *, deleted: bool | None = False, edit: bool = False) -> Loaded:
        """A record by id that the principal may see, else 404; with edit=True one they may change, else 403.

        deleted=False: live records only; True: recycle bin only; None: either.
        """
        doc = self.repo.get(record_id) if record_id else None
        if (
            doc is None
            or doc.get("tenant_id") != principal.tenant_id
            or (deleted is not None and bool(doc.get("deleted")) != deleted)
        ):
            raise rerr.record_not_found(record_id, principal.locale)
        form = self.form(principal, str(doc["form_id"]))
        ctx = self.context(principal)
        fa = self.access(principal, form, ctx)
        if not fa.allows(doc):
            raise rerr.record_not_found(record_id, principal.locale)
        if edit and not self.access(principal, form, ctx, edit=True).allows(doc):
            raise forbidden("edit", form, principal.locale, record_id=record_id)
        return Loaded(doc, form, fa)

    def search_fields(self, form: FormSchema, data: Mapping[str, Any]) -> Doc:
        """The fields derived from a record's data for the store: {kw, search, dedupe, facets}.

        `facets` names the per-value counts the record is in (see query.facets_of); the store moves
        them when a record is written with them.
        """
        text = crm_schema.search_text(list(form.fields), dict(data))
        return {
            "kw": crm_schema.search_tokens(text) if text else [],
            "search": normalise_text(text) if text else "",
            "dedupe": crm_schema.dedupe_keys(list(form.fields), dict(data)),
            "facets": facets_of(form.fields, data),
        }

    def unique_claims(self, form: FormSchema, tenant_id: str, record_id: str, data: Mapping[str, Any]) -> list:
        """(unique key, record id) claims for the unique fields that have a value."""
        claims: list[tuple[str, str]] = []
        for f in form.unique_fields:
            value = data.get(f["key"])
            if value is None or value == "":
                continue
            normalised = crm_schema.normalise_unique(f, value)
            if normalised:
                claims.append((unique_key(tenant_id, form.id, f["key"], normalised), record_id))
        return claims

    def outputs(self, form: FormSchema, data: Mapping[str, Any], ctx: RecordContext) -> Doc:
        """API outputs of stored values of the form's current fields (relations as plain ids)."""
        out: Doc = {}
        for key, value in data.items():
            definition = form.field(key)
            if definition is not None:
                out[key] = crm_schema.to_output(definition, value, ctx=ctx)
        return out

    def history_entry(
        self,
        event_type: str,
        principal: Principal,
        doc: Mapping[str, Any],
        at: datetime,
        changes: list[Doc],
        data: Doc,
    ) -> Doc:
        """A history/outbox document for one event on `doc`."""
        payload = {"record_id": doc["_id"], "form_id": doc["form_id"], **data}
        payload.setdefault("owner_id", doc.get("owner_id"))
        payload.setdefault("department_id", doc.get("department_id"))
        if principal.kind == "service" and principal.on_behalf:
            # what a service acted for (e.g. "automation:<id>:<depth>"): the workflow cuts loops by it
            payload["via"] = principal.on_behalf
        return history_document(
            event_type,
            tenant_id=principal.tenant_id,
            record_id=str(doc["_id"]),
            form_id=str(doc["form_id"]),
            actor=principal.user_id,
            actor_name=principal.user_name,
            at=at,
            changes=changes,
            data=payload,
        )

    def write(self, fn: Callable[[Transaction], Any], principal: Principal, form: FormSchema) -> Any:
        """Run a write transaction; a unique clash becomes 409 naming the field and the holder."""
        try:
            return self.repo.transaction(fn)
        except UniqueTaken as taken:
            raise self.unique_conflict(principal, form, taken) from None

    def unique_conflict(self, principal: Principal, form: FormSchema, taken: UniqueTaken) -> Exception:
        """409 naming the holder (id and name) only when the caller may see it; otherwise only "exists"."""
        _tenant, _form, field_key, value = taken.key.split("|", 3)
        holder = self.repo.unique_holder(taken.key) or ""
        display = ""
        if holder:
            existing = self.repo.get(holder)
            fa = self.sees(principal, existing) if existing is not None else None
            if fa is None:
                holder = ""
            else:
                display = fa.title_of(existing or {}, holder)
        definition = form.field(field_key) or {"key": field_key}
        label = field_label(definition, principal.locale)
        return rerr.unique_conflict(field_key, label, value, holder, display, principal.locale, row=taken.position)

    def versioned_write(
        self, fn: Callable[[Transaction], Any], principal: Principal, form: FormSchema, record_id: str, expected: int
    ) -> Any:
        """`write` of an update that named `expected`; a stale version is a 409 naming the current one."""
        try:
            return self.write(fn, principal, form)
        except StaleVersion:
            current = self.repo.get(record_id) or {}
            raise rerr.version_conflict(
                record_id, int(current.get("version") or 0), expected, principal.locale
            ) from None

    def auto_numbers(
        self, tx: Transaction, form: FormSchema, tenant_id: str, now: datetime, count: int
    ) -> tuple[Doc, dict[str, int]]:
        """Values of the form's auto_number fields for `count` new records ({key: [values]}), and
        the counters' new values ({counter key: last})."""
        local = now.astimezone(self.tz)
        out: Doc = {}
        counters: dict[str, int] = {}
        for f in form.of_type("auto_number"):
            pattern = str(f.get("pattern") or "{0000}")
            period = crm_schema.sequence_scope(pattern, local)
            counter = f"{tenant_id}|{form.id}|{f['key']}|{period}"
            last = tx.next_sequence(counter, count)
            counters[counter] = last
            out[f["key"]] = [
                crm_schema.render_auto_number(pattern, seq, local) for seq in range(last - count + 1, last + 1)
            ]
        return out, counters

    def new_doc(
        self,
        principal: Principal,
        form: FormSchema,
        record_id: str,
        data: Doc,
        owner: tuple[str, str],
        now: datetime,
        seq: int,
    ) -> Doc:
        """The stored document of a new record (data already validated; search fields added by the caller)."""
        owner_id, department_id = owner
        doc: Doc = {
            "_id": record_id,
            "tenant_id": principal.tenant_id,
            "form_id": form.id,
            "form_version": form.version,
            "data": data,
            "owner_id": owner_id,
            "department_id": department_id,
            "acl": access.record_acl(owner_id, department_id),
            "shares": [],
            "files": attachment_ids(data),
            "created_by": principal.user_id,
            "updated_by": principal.user_id,
            "created_at": now,
            "updated_at": now,
            "last_activity_at": now,
            "version": 1,
            "seq": seq,
            "kp": keyword_partition(record_id),
            "deleted": False,
            "deleted_at": None,
            "deleted_by": None,
        }
        return doc
