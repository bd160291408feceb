"""RecordService: the record use cases (create, bulk create, get, update, delete, restore, list, history,
share, explain access).

Pure orchestration over our own interfaces (FormSource, RecordRepository,
Cipher, Directory) and crm_schema's value rules. Every write is one store transaction
that writes the record, its unique-value claims, its counters and one history
entry per event (the history entry is the outbox document).

Access control (docs/security.md) is decided by crm_runtime.access over the
caller's compiled policy (domain/access.py): every read checks the record's
visibility (out of sight: 404), every write the action (refused: 403), every
output leaves the caller's hidden fields out, and every record carries `acl`
(owner, owner's department, shares) so that lists push `acl $in [tokens]`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import crm_schema
from crm_runtime import access
from crm_runtime.errors import FieldError, NotFound, ValidationFailed
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.access import ConditionMatcher, FormAccess, forbidden, forbidden_assign, input_errors
from record_service.domain.context import RecordContext
from record_service.domain.directory import Directory, EmptyDirectory
from record_service.domain.files import attachment_ids
from record_service.domain.forms import FormSchema, FormSource
from record_service.domain.query import (
    AXIS_OF_TYPE,
    KEYWORD_PARTITIONS,
    ORDER_PATH,
    STREAM_BATCH,
    QueryPlan,
    axis_of,
    encode_cursor,
    from_axis,
    keyword_partition,
    normalise_text,
    pick_token,
    plan_query,
    select_page,
    select_partitioned_page,
    select_value_page,
    select_window_page,
    to_axis,
)
from record_service.domain.repository import (
    AttachmentLookup,
    Cipher,
    RecordRepository,
    StaleVersion,
    Transaction,
    UniqueTaken,
    no_attachments,
)
from record_service.events import (
    BATCH_ENTRY,
    RECORD_CREATED,
    RECORD_DELETED,
    RECORD_OWNER_CHANGED,
    RECORD_RESTORED,
    RECORD_SHARED,
    RECORD_UNSHARED,
    RECORD_UPDATED,
    batch_document,
    entries_of,
    history_document,
)

Doc = dict[str, Any]
MAX_BULK_ROWS = 10_000
BULK_CHUNK = 1_000  # records per transaction of a bulk create; a multiple of events.BATCH_ENTRY
COUNT_CAP = 10_000
KEYWORD_PROBES = 6  # tokens of a long keyword sampled to pick the rarest
KEYWORD_PROBE_LIMIT = 200
COUNT_CAPPED, COUNT_EXACT, COUNT_NONE = "capped", "exact", "none"
IN_CHUNK = 200
SYSTEM_KEYS = ("owner_id", "department_id", "created_by", "updated_by")
SHARE_KINDS = ("user", "department")
SHARE_ACCESS = ("read", "edit")


def utc_now() -> datetime:
    """Now in UTC, truncated to milliseconds (what the store keeps), so returned times equal stored ones."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def iso(value: datetime | None) -> str | None:
    """API form of a time: ISO 8601 UTC with Z."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_record_id() -> str:
    """An ObjectId-shaped id (24 hex: 4 bytes of seconds, 8 random bytes): unique and roughly time ordered."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def unique_key(tenant_id: str, form_id: str, field_key: str, normalised: str) -> str:
    """_id of a claim in the `uniques` collection."""
    return f"{tenant_id}|{form_id}|{field_key}|{normalised}"


@dataclass
class ListPage:
    """One page of ListRecords."""

    records: list[Doc]
    next_cursor: str
    total: int
    total_capped: bool
    plan: QueryPlan


@dataclass
class Loaded:
    """A stored record the principal may see, with the latest published version of its form."""

    doc: Doc
    form: FormSchema
    access: FormAccess | None = None


class RecordService:
    """The record use cases for one process; thread-safe (no per-call state on the instance)."""

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
        self._clock = clock
        self.attachments = attachments
        self._new_id = new_id or new_record_id
        self._indexed: set[tuple[str, str, int]] = set()
        # (tenant, form, key) -> (low, high) this process knows the store holds (read-window sizing only)
        self._bounds: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    # ------------------------------------------------------------ building blocks (also for extras)

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
            now=now or self._clock(),
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
        the record's department is the owner's.
        """
        loc = principal.locale
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
        """The derived search and dedupe fields of a record's data: {kw, search, dedupe}."""
        text = crm_schema.search_text(list(form.fields), dict(data))
        return {
            "kw": crm_schema.search_tokens(text) if text else [],
            "search": normalise_text(text) if text else "",
            "dedupe": crm_schema.dedupe_keys(list(form.fields), dict(data)),
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
            raise self._unique_conflict(principal, form, taken) from None

    def _unique_conflict(self, principal: Principal, form: FormSchema, taken: UniqueTaken) -> Exception:
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
        label = crm_schema_label(definition, principal.locale)
        return rerr.unique_conflict(field_key, label, value, holder, display, principal.locale, row=taken.position)

    # ------------------------------------------------------------ create

    def _auto_number(
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

    def _new_doc(
        self,
        principal: Principal,
        form: FormSchema,
        record_id: str,
        data: Doc,
        owner: tuple[str, str],
        now: datetime,
        seq: int,
    ) -> Doc:
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

    def create(self, principal: Principal, form_ref: str, data: Any, owner_id: str = "") -> Doc:
        """Validate and store one record with its history/outbox entry; returns the API record."""
        form = self.form(principal, form_ref)
        self.require(principal, form, "create")
        now = self._clock()
        ctx = self.context(principal, now)
        if not isinstance(data, Mapping):
            raise rerr.invalid("data_json", "not_object", principal.locale)
        fa = self.access(principal, form, ctx)
        refused, allowed = input_errors(form, fa, data, principal.locale)
        result = crm_schema.validate_data(list(form.fields), allowed, existing=None, ctx=ctx)
        if result.errors and (newer := self.refreshed(principal, form, result.errors)) is not None:
            form = newer
            fa = self.access(principal, form, ctx)
            refused, allowed = input_errors(form, fa, data, principal.locale)
            result = crm_schema.validate_data(list(form.fields), allowed, existing=None, ctx=ctx)
        if refused or result.errors:
            raise ValidationFailed(refused + list(result.errors))
        owner = self.owner_of(principal, form, owner_id)
        record_id = self._new_id()
        masked = ctx.with_role("")
        has_auto = bool(form.of_type("auto_number"))
        seq = self.repo.reserve_order(principal.tenant_id, form.id)

        def txn(tx: Transaction) -> Doc:
            values = dict(result.values)
            if has_auto:
                for key, numbers in self._auto_number(tx, form, principal.tenant_id, now, 1)[0].items():
                    values[key] = numbers[0]
            doc = self._new_doc(principal, form, record_id, values, owner, now, seq)
            doc.update(self.search_fields(form, values))
            claims = self.unique_claims(form, principal.tenant_id, record_id, values)
            if claims:
                tx.claim_uniques(claims)
            tx.insert_records([doc])
            out = self.outputs(form, values, masked)
            entry = self.history_entry(
                RECORD_CREATED,
                principal,
                doc,
                now,
                [{"field": k, "old": None, "new": v} for k, v in out.items()],
                {"form_version": form.version, "owner_id": doc["owner_id"], "data": out},
            )
            tx.insert_history([entry])
            return doc

        doc = self.write(txn, principal, form)
        self._widen_bounds(principal.tenant_id, form, [doc["data"]])
        return self.render_one(principal, Loaded(doc, form), ctx, computed=False)

    def bulk_create(self, principal: Principal, form_ref: str, rows: Any) -> list[str]:
        """All or nothing: validate every row, check uniques in the batch and the store, write in one transaction."""
        loc = principal.locale
        if not isinstance(rows, list):
            raise rerr.invalid("records_json", "not_array", loc)
        if not rows:
            raise rerr.invalid("records_json", "empty_batch", loc)
        if len(rows) > MAX_BULK_ROWS:
            raise rerr.invalid("records_json", "too_many_rows", loc, max=MAX_BULK_ROWS, count=len(rows))
        form = self.form(principal, form_ref)
        self.require(principal, form, "create", "import")
        now = self._clock()
        ctx = self.context(principal, now)
        self._prefetch_relations(form, rows, ctx)
        fa = self.access(principal, form, ctx)
        errors, values_list = self._validate_rows(form, rows, ctx, fa)
        if errors and (newer := self.refreshed(principal, form, errors)) is not None:
            form = newer
            fa = self.access(principal, form, ctx)
            errors, values_list = self._validate_rows(form, rows, ctx, fa)
        if errors:
            raise ValidationFailed(errors)
        owner = self.owner_of(principal, form, "")
        ids = [self._new_id() for _ in values_list]
        masked = ctx.with_role("")
        auto_fields = form.of_type("auto_number")
        self._check_batch_uniques(principal, form, values_list, auto_fields)
        numbers: Doc = {}
        counters: dict[str, int] = {}
        if auto_fields:
            # reserved up front in one small transaction: every chunk then knows its numbers
            numbers, counters = self.repo.transaction(
                lambda tx: self._auto_number(tx, form, principal.tenant_id, now, len(values_list))
            )
        docs: list[Doc] = []
        payloads: list[tuple[str, Doc]] = []
        claims: list[tuple[str, str]] = []
        positions: list[int] = []
        hold = f"bulk:{ids[0]}"
        first_seq = self.repo.reserve_order(principal.tenant_id, form.id, len(values_list)) - len(values_list) + 1
        for i, values in enumerate(values_list):
            data = dict(values)
            for key, seq in numbers.items():
                data[key] = seq[i]
            doc = self._new_doc(principal, form, ids[i], data, owner, now, first_seq + i)
            doc.update(self.search_fields(form, data))
            docs.append(doc)
            row_claims = self.unique_claims(form, principal.tenant_id, ids[i], data)
            claims += row_claims
            positions += [i] * len(row_claims)
            payloads.append((ids[i], {"data": self.outputs(form, data, masked)}))
        common = {"form_id": form.id, "form_version": form.version, "owner_id": owner[0], "department_id": owner[1]}
        entries: list[Doc] = []
        for start in range(0, len(payloads), BATCH_ENTRY):
            entry = batch_document(
                RECORD_CREATED,
                tenant_id=principal.tenant_id,
                form_id=form.id,
                actor=principal.user_id,
                actor_name=principal.user_name,
                at=now,
                common=common,
                items=payloads[start : start + BATCH_ENTRY],
            )
            # held back from the relay until every chunk is written (see _write_chunks)
            entry["published"] = hold
            entries.append(entry)
        try:
            held = self.repo.unique_holders([k for k, _ in claims]) if claims else {}
            if held:
                first = next(n for n, (k, _) in enumerate(claims) if k in held)
                raise UniqueTaken(claims[first][0], positions[first])
            self._write_chunks(docs, entries, claims)
        except UniqueTaken as taken:
            self._give_back(counters, len(values_list))
            raise self._unique_conflict(principal, form, taken) from None
        except BaseException:
            self._give_back(counters, len(values_list))
            raise
        self.repo.release_held(hold)
        self._widen_bounds(principal.tenant_id, form, [d["data"] for d in docs])
        return ids

    def _write_chunks(self, docs: list[Doc], entries: list[Doc], claims: list[tuple[str, str]]) -> None:
        """Write in transactions of BULK_CHUNK records; on a failure, delete what earlier chunks wrote.

        One transaction for 10,000 records stalls SecantusDB, so a batch is
        split; all-or-nothing is kept by compensation, and the outbox entries
        are held (`published` = a hold tag) until the last chunk commits, so no
        event of a compensated batch is ever published.
        """
        by_record: dict[str, list[tuple[str, str]]] = {}
        for key, rid in claims:
            by_record.setdefault(rid, []).append((key, rid))
        done = 0
        try:
            for start in range(0, len(docs), BULK_CHUNK):
                chunk_docs = docs[start : start + BULK_CHUNK]
                # the batch entries of these records (BULK_CHUNK is a multiple of BATCH_ENTRY)
                chunk_entries = entries[start // BATCH_ENTRY : (start + BULK_CHUNK) // BATCH_ENTRY]
                chunk_claims = [c for d in chunk_docs for c in by_record.get(d["_id"], [])]

                def txn(
                    tx: Transaction,
                    cd: list[Doc] = chunk_docs,
                    ce: list[Doc] = chunk_entries,
                    cc: list[tuple[str, str]] = chunk_claims,
                ) -> None:
                    if cc:
                        try:
                            tx.claim_uniques(cc)
                        except UniqueTaken as taken:
                            raise UniqueTaken(taken.key, _row_of(docs, cc, taken)) from None
                    tx.insert_records(cd)
                    tx.insert_history(ce)

                self.repo.transaction(txn)
                done = start + len(chunk_docs)
        except BaseException:
            if done:
                written = {d["_id"] for d in docs[:done]}
                self.repo.discard(
                    [d["_id"] for d in docs[:done]],
                    [e["_id"] for e in entries[: done // BATCH_ENTRY + 1] if set(e["record_id"]) & written],
                    [k for k, rid in claims if rid in written],
                )
            raise

    def _validate_rows(
        self, form: FormSchema, rows: Sequence[Any], ctx: RecordContext, fa: FormAccess
    ) -> tuple[list[FieldError], list[Doc]]:
        """Validate every row of a bulk call; errors are named `rows[i].field`."""
        loc = ctx.locale
        fields = list(form.fields)
        errors: list[FieldError] = []
        values_list: list[Doc] = []
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                errors.append(FieldError(f"rows[{i}]", "not_object", rerr.message("not_object", loc)))
                continue
            refused, allowed = input_errors(form, fa, row, loc, prefix=f"rows[{i}].")
            errors += refused
            result = crm_schema.validate_data(fields, allowed, existing=None, ctx=ctx)
            for err in result.errors:
                errors.append(FieldError(f"rows[{i}].{err.field}", err.rule, err.message, err.params))
            values_list.append(result.values)
        return errors, values_list

    def _give_back(self, counters: dict[str, int], count: int) -> None:
        """Return reserved auto numbers of a failed bulk when nobody took a later one."""
        for key, last in counters.items():
            self.repo.return_sequence(key, last, count)

    def _prefetch_relations(self, form: FormSchema, rows: Sequence[Any], ctx: RecordContext) -> None:
        """Check every relation id of the batch with a few reads instead of one per row."""
        for f in form.of_type("relation"):
            target = str((f.get("relation") or {}).get("form_id") or "")
            ids: set[str] = set()
            for row in rows:
                if not isinstance(row, Mapping):
                    continue
                value = row.get(f["key"])
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, Mapping):
                        item = item.get("id")
                    if isinstance(item, str) and item:
                        ids.add(item.strip())
            if target and ids:
                ctx.prefetch_relations(target, ids)

    def _check_batch_uniques(
        self, principal: Principal, form: FormSchema, values_list: Sequence[Doc], auto_fields: list[Doc]
    ) -> None:
        """A unique value may appear once per batch (409 naming both rows)."""
        errors: list[FieldError] = []
        for f in form.unique_fields:
            if f in auto_fields:
                continue
            seen: dict[str, int] = {}
            for i, values in enumerate(values_list):
                value = values.get(f["key"])
                if value is None or value == "":
                    continue
                normalised = crm_schema.normalise_unique(f, value)
                if not normalised:
                    continue
                if normalised in seen:
                    label = crm_schema_label(f, principal.locale)
                    text = rerr.message(
                        "unique_in_batch", principal.locale, label=label, value=value, other=seen[normalised]
                    )
                    errors.append(FieldError(f"rows[{i}].{f['key']}", "unique", text, {"row": seen[normalised]}))
                else:
                    seen[normalised] = i
        if errors:
            from crm_runtime.errors import Conflict

            raise Conflict(
                "; ".join(e.message for e in errors[:5]),
                reason="unique_in_batch",
                errors=[e.to_dict() for e in errors],
            )

    # ------------------------------------------------------------ update, delete, restore

    def update(self, principal: Principal, record_id: str, data: Any, expected_version: int, owner_id: str = "") -> Doc:
        """Partial update with optimistic concurrency; an owner change is its own event."""
        loc = principal.locale
        if not expected_version or expected_version < 1:
            raise rerr.invalid("expected_version", "required", loc)
        if not isinstance(data, Mapping):
            raise rerr.invalid("data_json", "not_object", loc)
        loaded = self.load(principal, record_id, edit=True)
        doc, form = loaded.doc, loaded.form
        if int(doc.get("version") or 0) != expected_version:
            raise rerr.version_conflict(record_id, int(doc.get("version") or 0), expected_version, loc)
        now = self._clock()
        ctx = self.context(principal, now)
        stored: Doc = dict(doc.get("data") or {})
        current = {k: v for k, v in stored.items() if form.field(k) is not None}
        fa = self.access(principal, form, ctx)
        refused, allowed = input_errors(form, fa, data, loc)
        result = crm_schema.validate_data(list(form.fields), allowed, existing=current, ctx=ctx)
        if result.errors and (newer := self.refreshed(principal, form, result.errors)) is not None:
            form = newer
            fa = self.access(principal, form, ctx)
            loaded = Loaded(doc, form, fa)
            current = {k: v for k, v in stored.items() if form.field(k) is not None}
            refused, allowed = input_errors(form, fa, data, loc)
            result = crm_schema.validate_data(list(form.fields), allowed, existing=current, ctx=ctx)
        if refused or result.errors:
            raise ValidationFailed(refused + list(result.errors))
        changed = {k: v for k, v in result.values.items() if k not in stored or stored[k] != v}
        new_owner = owner_id if owner_id and owner_id != doc.get("owner_id") else ""
        new_department = str(doc.get("department_id") or "")
        if new_owner:
            new_owner, new_department = self.owner_of(principal, form, new_owner)
        if not changed and not new_owner:
            return self.render_one(principal, loaded, ctx)
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
            set_fields.update(self.search_fields(form, new_data))
            set_fields["files"] = attachment_ids(new_data)
        if new_owner:
            set_fields["owner_id"] = new_owner
            set_fields["department_id"] = new_department
            set_fields["acl"] = access.record_acl(new_owner, new_department, doc.get("shares") or [])
        masked = ctx.with_role("")
        old_claims = dict(self.unique_claims(form, principal.tenant_id, record_id, current))
        new_claims = dict(self.unique_claims(form, principal.tenant_id, record_id, new_data))
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
                self.history_entry(
                    RECORD_UPDATED,
                    principal,
                    after,
                    now,
                    changes,
                    {"version": version, "changes": {c["field"]: {"old": c["old"], "new": c["new"]} for c in changes}},
                )
            )
        if new_owner:
            entries.append(
                self.history_entry(
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

        self._versioned_write(txn, principal, form, record_id, expected_version)
        if changed:
            self._widen_bounds(principal.tenant_id, form, [changed])
        fresh = {**doc, "data": new_data, **{k: v for k, v in set_fields.items() if not k.startswith("data.")}}
        return self.render_one(principal, Loaded(fresh, form), ctx)

    def _versioned_write(
        self, fn: Callable[[Transaction], Any], principal: Principal, form: FormSchema, record_id: str, expected: int
    ) -> Any:
        try:
            return self.write(fn, principal, form)
        except StaleVersion:
            current = self.repo.get(record_id) or {}
            raise rerr.version_conflict(
                record_id, int(current.get("version") or 0), expected, principal.locale
            ) from None

    def delete(self, principal: Principal, record_id: str, expected_version: int = 0) -> Doc:
        """Soft delete (to the recycle bin); releases unique values; history is kept.

        Needs the `delete` action with a grant covering the record (a share is not enough).
        """
        loaded = self.load(principal, record_id)
        self.require_on(principal, loaded, "delete")
        doc, form = loaded.doc, loaded.form
        version = int(doc.get("version") or 0)
        if expected_version and expected_version != version:
            raise rerr.version_conflict(record_id, version, expected_version, principal.locale)
        now = self._clock()
        set_fields: Doc = {"deleted": True, "deleted_at": now, "deleted_by": principal.user_id, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id})
        release = [k for k, _ in self.unique_claims(form, principal.tenant_id, record_id, doc.get("data") or {})]
        after = {**doc, **set_fields}
        entry = self.history_entry(
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

        self._versioned_write(txn, principal, form, record_id, version)
        return self.render_one(principal, Loaded(after, form), self.context(principal, now))

    def restore(self, principal: Principal, record_id: str) -> Doc:
        """Bring a record back from the recycle bin; its unique values must still be free (else 409).

        Needs `delete` on the record, as deleting it did; a record merged into another one stays merged (409).
        """
        loaded = self.load(principal, record_id, deleted=True)
        self.require_on(principal, loaded, "delete", shown="restore")
        doc, form = loaded.doc, loaded.form
        if doc.get("merged_into"):
            raise rerr.merged_away(record_id, str(doc["merged_into"]), principal.locale)
        version = int(doc.get("version") or 0)
        now = self._clock()
        set_fields: Doc = {"deleted": False, "deleted_at": None, "deleted_by": None, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id, "last_activity_at": now})
        claims = self.unique_claims(form, principal.tenant_id, record_id, doc.get("data") or {})
        after = {**doc, **set_fields}
        entry = self.history_entry(
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

        self._versioned_write(txn, principal, form, record_id, version)
        return self.render_one(principal, Loaded(after, form), self.context(principal, now))

    # ------------------------------------------------------------ sharing and explanations

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
            return self.render_one(principal, loaded, self.context(principal))
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
        loaded = self.load(principal, record_id)
        ctx = self.context(principal)
        if not self.access(principal, loaded.form, ctx, edit=True).allows(loaded.doc):
            self.require_on(principal, loaded, "assign", shown="share")
        if check_target and kind == "user":
            user = self.directory.user(principal.tenant_id, target_id)
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
        now = self._clock()
        acl = access.record_acl(str(doc.get("owner_id") or ""), str(doc.get("department_id") or ""), shares)
        set_fields: Doc = {"shares": shares, "acl": acl, "version": version + 1}
        set_fields.update({"updated_at": now, "updated_by": principal.user_id})
        after = {**doc, **set_fields}
        label = f"{share['kind']}:{share['id']}"
        new_level = share.get("access")
        change = {"field": "shares", "old": (old or {}).get("access") if old else None, "new": new_level}
        entry = self.history_entry(
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

        self._versioned_write(txn, principal, form, record_id, version)
        return self.render_one(principal, Loaded(after, form), self.context(principal, now))

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
            doc = self.repo.get(record_id)
            if doc is None or doc.get("tenant_id") != principal.tenant_id:
                raise rerr.record_not_found(record_id, loc)
            form = self.form(principal, str(doc["form_id"]))
        else:
            form = self.form(principal, form_ref)
        ctx = self.context(principal)
        result = access.explain(principal.policy, form.key, principal.subject, action, doc, self.matcher(form, ctx))
        hidden = access.hidden_fields(principal.policy, form.key)
        result["hidden_fields"] = sorted(hidden)
        result["readonly_fields"] = sorted(access.readonly_fields(principal.policy, form.key) - hidden)
        return result

    # ------------------------------------------------------------ reads

    def get(self, principal: Principal, record_id: str) -> Doc:
        """One live record with relations displayed, lookups and rollups computed, retired values apart."""
        loaded = self.load(principal, record_id)
        return self.render_one(principal, loaded, self.context(principal), computed=True)

    def render_one(self, principal: Principal, loaded: Loaded, ctx: RecordContext, *, computed: bool = True) -> Doc:
        """The API JSON of one record (`computed`: also rollups and retired_data), without hidden fields."""
        fa = loaded.access or self.access(principal, loaded.form, ctx)
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
        fa = fa or self.access(principal, form, ctx)
        hidden = fa.hidden
        relation_fields = [f for f in form.of_type("relation") if f["key"] not in hidden]
        related = self._related_docs(principal, relation_fields, docs)
        lookups = [f for f in form.of_type("lookup") if f["key"] not in hidden]
        relation_forms: dict[str, FormAccess | None] = {}

        def target_access(definition: Doc) -> FormAccess | None:
            ref = str((definition.get("relation") or {}).get("form_id") or "")
            if ref not in relation_forms:
                try:
                    target = self.forms.get_published(principal.tenant_id, ref)
                except Exception:  # noqa: BLE001 - a deleted/unpublished target form shows ids only
                    relation_forms[ref] = None
                else:
                    relation_forms[ref] = self.access(principal, target, ctx)
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
        found = self.repo.get_many(sorted(ids))
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
                target = self.form(principal, str(spec.get("form_id") or ""))
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
                out[f["key"]] = self.repo.count(predicate)
                continue
            if value_field is None or value_field["key"] in access.hidden_fields(principal.policy, target.key):
                out[f["key"]] = None
                continue
            numbers = [
                v
                for row in self.repo.find(
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
                old_form = self.forms.get_published(principal.tenant_id, form.id, version)
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

    def list_records(
        self,
        principal: Principal,
        form_ref: str,
        *,
        tree: Any = None,
        sort: Any = None,
        cursor: str = "",
        page_size: int = 0,
        count_mode: str = COUNT_CAPPED,
        keyword: str = "",
        deleted: bool = False,
    ) -> ListPage:
        """One page of records: planned (see domain/query.py), rendered, counted as asked.

        Only records the caller may see: `acl $in [tokens]` is a pushdown
        candidate and the exact rule a residual condition, so the page, the
        count and a keyword search agree. Hidden fields cannot be filtered,
        sorted or keyword-searched on.
        """
        form = self.form(principal, form_ref)
        ctx = self.context(principal)
        fa = self.access(principal, form, ctx)
        keyword_text: Callable[[Mapping[str, Any]], str] | None = None
        if fa.hidden & set(form.by_key):
            shown = [f for f in form.fields if f["key"] not in fa.hidden]

            def keyword_text(doc: Mapping[str, Any]) -> str:
                return normalise_text(crm_schema.search_text(shown, dict(doc.get("data") or {})))

        plan = plan_query(
            form,
            principal.tenant_id,
            ctx=ctx,
            coerce=lambda definition, op, value: crm_schema.filter_value(definition, op, value, ctx=ctx),
            tokenize=crm_schema.query_tokens,
            subpath=crm_schema.filter_path,
            access=None if fa.unrestricted else fa,
            hidden=fa.hidden,
            keyword_text=keyword_text,
            tree=tree,
            sort=sort,
            keyword=keyword,
            cursor=cursor,
            page_size=page_size,
            deleted=deleted,
            choose_token=self._rarest_token,
        )
        count_plan = plan
        axis = axis_of(form, plan.sort)
        last = self.repo.last_order(principal.tenant_id, form.id) if plan.sort.in_order or axis else 0
        density = 1.0
        # a filter matching many records is cheaper checked on the rows read in sort order
        # (about page / selectivity rows) than pushed (every match, sorted in memory)
        common = plan.pushed_kind in ("none", "access")
        if (plan.sort.in_order or axis) and plan.pushed_kind.startswith("field:data."):
            matches = self._estimate(plan)
            common = matches * matches > (plan.page_size + 1) * max(last, 1)
            density = max(matches / max(last, 1), 1 / 256)
        if plan.sort.in_order and common:
            plan = plan.in_order()
        valued = self._value_page(plan.by_value(axis), max(1, int(last * density))) if axis and common else None
        sort_spec = plan.sort.mongo()
        page: list[Doc]
        if valued is not None:
            page, more = valued
        elif plan.windowed:
            selected, more, _ = select_window_page(
                plan, lambda lo, hi: self.repo.find(_window(plan, lo, hi)), last, density
            )
            page = [dict(d) for d in selected]
        elif plan.partitioned:
            selected, more, _ = select_partitioned_page(
                plan, lambda lo, hi: self.repo.find({**plan.pushed, "kp": {"$gte": lo, "$lt": hi}})
            )
            page = [dict(d) for d in selected]
        elif plan.push_limit:
            rows = list(self.repo.find(plan.find_filter(), sort=sort_spec, limit=plan.page_size + 1))
            page = rows[: plan.page_size]
            more = len(rows) > plan.page_size
        else:
            stream = self.repo.find(plan.find_filter(), sort=sort_spec, batch_size=STREAM_BATCH)
            try:
                selected, more = select_page(plan, stream)
                page = [dict(d) for d in selected]
            finally:
                _close(stream)
        next_cursor = encode_cursor(plan.sort, page[-1]) if more and page else ""
        total, capped = self._count(count_plan, count_mode)
        return ListPage(self.render(principal, form, page, ctx, fa), next_cursor, total, capped, plan)

    def _rarest_token(self, base: Doc, tokens: Sequence[str]) -> str:
        """The keyword token with the fewest matches in one sample partition (kp 0).

        "华信恒通" has the tokens 华信, 信恒, 恒通; asking the store for the rarest
        one means reading its few matches rather than every record with a common
        bigram. Ties keep pick_token's preference (longer, then earlier).
        """
        whole = [t for t in tokens if not crm_schema.is_prefix(t)]
        if not whole:  # prefix tokens only: each probe would read its whole range
            return pick_token(tokens)
        preferred = sorted(whole, key=lambda t: -len(t))[:KEYWORD_PROBES]
        counts = {t: self.repo.count({**base, "kw": t, "kp": 0}, KEYWORD_PROBE_LIMIT) for t in preferred}
        return min(preferred, key=lambda t: (counts[t], preferred.index(t)))

    def _widen_bounds(self, tenant_id: str, form: FormSchema, datas: Sequence[Mapping[str, Any]]) -> None:
        """Report the values written to the form's windowable fields whose bounds they pass (rarely a write)."""
        for key in form.indexed_keys:
            axis = AXIS_OF_TYPE.get(str((form.field(key) or {}).get("type")), "")
            values = [d[key] for d in datas if to_axis(axis, d.get(key)) is not None] if axis else []
            if not values:
                continue
            low, high = min(values), max(values)
            known = self._bounds.get((tenant_id, form.id, key))
            try:
                if known is not None and known[0] <= low and high <= known[1]:
                    continue
            except TypeError:  # bounds of another type (the field's type changed): widen anew
                pass
            self._bounds[(tenant_id, form.id, key)] = self.repo.widen_bounds(tenant_id, form.id, key, low, high)

    def _value_page(self, plan: QueryPlan, rows: int) -> tuple[list[Doc], bool] | None:
        """A page sorted by a date/number field, in windows of its values; None when its bounds are unknown.

        `rows`: how many records are expected to pass the plan (sizes the first window)."""
        key = plan.sort.field
        bounds = self.repo.value_bounds(str(plan.base["tenant_id"]), str(plan.base["form_id"]), key)
        low = to_axis(plan.axis, bounds[0]) if bounds else None
        high = to_axis(plan.axis, bounds[1]) if bounds else None
        if low is None or high is None:
            return None
        path = plan.sort.path
        floor = from_axis(plan.axis, float("-inf"))

        def fetch(lo: Any, hi: Any, hi_inclusive: bool) -> Iterator[Doc]:
            cond: Doc = {"$gte": floor if lo is None else lo}
            if hi is not None:
                cond["$lte" if hi_inclusive else "$lt"] = hi
            return self.repo.find({**plan.pushed, path: cond})

        selected, more, _ = select_value_page(
            plan, fetch, lambda: self.repo.find({**plan.pushed, path: None}), (low, high), rows
        )
        return [dict(d) for d in selected], more

    def _estimate(self, plan: QueryPlan) -> int:
        """Matches of the pushed field condition, from one partition of its (field, kp) index (x 256)."""
        return self.repo.count({**plan.pushed, "kp": 0}) * KEYWORD_PARTITIONS

    def _sampled(self, plan: QueryPlan, partitions: int) -> int:
        """Rows passing the plan among the records of partitions [0, partitions)."""
        predicate = {**plan.pushed, "kp": {"$lt": partitions}}
        if not plan.residual:
            return self.repo.count(predicate)
        stream = self.repo.find(predicate, projection=plan.residual_projection(), batch_size=2000)
        try:
            return sum(1 for doc in stream if plan.matches(doc))
        finally:
            _close(stream)

    def _over_cap(self, plan: QueryPlan) -> bool | None:
        """Whether more than COUNT_CAP records pass, from a sample of partitions; None when a sample cannot tell.

        `kp` is a uniform hash of the id, so the passing records of k of the 256
        partitions are a binomial sample: c - 4 sqrt(c) of them scaled by 256/k
        is a lower bound of the total (wrong about once in 30,000). The samples
        grow until the bound clears the cap or the upper bound falls below it.
        """
        if not (plan.pushed_kind in ("none", "keyword") or plan.pushed_kind.startswith("field:data.")):
            return None  # the acl and time indexes have no partition key
        for k in (1, 4, 16):
            c = self._sampled(plan, k)
            scale = KEYWORD_PARTITIONS / k
            if (c - 4 * c**0.5) * scale > COUNT_CAP:
                return True
            if (c + 4 * c**0.5 + 4) * scale <= COUNT_CAP:
                return False
        return None

    def _count(self, plan: QueryPlan, mode: str) -> tuple[int, bool]:
        if mode == COUNT_NONE:
            return -1, False
        limit = COUNT_CAP + 1 if mode == COUNT_CAPPED else 0
        if limit and self._over_cap(plan):
            return COUNT_CAP, True
        if not plan.residual:
            total = self.repo.count(plan.pushed, limit)
        else:
            total = 0
            stream = self.repo.find(plan.pushed, projection=plan.residual_projection(), batch_size=2000)
            try:
                for doc in stream:
                    if plan.matches(doc):
                        total += 1
                        if limit and total >= limit:
                            break
            finally:
                _close(stream)
        if limit and total > COUNT_CAP:
            return COUNT_CAP, True
        return total, False

    def history(self, principal: Principal, record_id: str, cursor: str = "", page_size: int = 0) -> tuple[list, str]:
        """History entries of a visible (live or deleted) record, newest first; (entries, next_cursor)."""
        loaded = self.load(principal, record_id, deleted=None)
        size = page_size or 50
        if not 1 <= size <= 200:
            raise rerr.invalid("page_size", "invalid_page_size", principal.locale, max=200)
        before: tuple[datetime, str] | None = None
        if cursor:
            before = _decode_history_cursor(cursor, principal.locale)
        stored = self.repo.history_page(principal.tenant_id, record_id, before[0] if before else None, size + 50)
        rows = [e for doc in stored for e in entries_of(doc, [record_id])]
        rows.sort(key=lambda r: (r["at"], r["_id"]), reverse=True)
        if before is not None:
            rows = [r for r in rows if (r["at"], r["_id"]) < before]
        page, more = rows[:size], len(rows) > size
        form = loaded.form
        hidden = loaded.access.hidden if loaded.access is not None else frozenset()
        entries = []
        for row in page:
            changes = []
            for change in row.get("changes") or []:
                if str(change.get("field")) in hidden:
                    continue  # a hidden field's old and new values are not shown
                definition = form.field(str(change.get("field")))
                label = crm_schema_label(definition, principal.locale) if definition else None
                changes.append({**change, "label": label})
            entries.append(
                {
                    "id": row["_id"],
                    "record_id": row["record_id"],
                    "form_id": row.get("form_id"),
                    "action": row["action"],
                    "actor": row.get("actor"),
                    "actor_name": row.get("actor_name") or "",
                    "at": iso(row.get("at")),
                    "changes": changes,
                    "event_type": f"record.{row['action']}",
                }
            )
        next_cursor = _encode_history_cursor(page[-1]["at"], page[-1]["_id"]) if more and page else ""
        return entries, next_cursor


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


def _row_of(docs: Sequence[Doc], chunk_claims: Sequence[tuple[str, str]], taken: UniqueTaken) -> int | None:
    """The batch row whose claim clashed."""
    if taken.position is None or taken.position >= len(chunk_claims):
        return None
    rid = chunk_claims[taken.position][1]
    return next((i for i, d in enumerate(docs) if d["_id"] == rid), None)


def crm_schema_label(field: Mapping[str, Any] | None, locale: str) -> str:
    """A field's label in `locale` (falls back to zh-CN, then the key)."""
    if not field:
        return ""
    label = field.get("label")
    if isinstance(label, Mapping):
        return str(label.get(locale) or label.get("zh-CN") or label.get("en") or field.get("key") or "")
    return str(label or field.get("key") or "")


def _window(plan: QueryPlan, lo: int | None, hi: int | None) -> Doc:
    """The pushed predicate of a plan with lo <= seq < hi (None: unbounded)."""
    bound: Doc = {}
    if lo is not None:
        bound["$gte"] = lo
    if hi is not None:
        bound["$lt"] = hi
    return {**plan.pushed, ORDER_PATH: bound} if bound else dict(plan.pushed)


def _close(stream: Iterator[Any]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def _encode_history_cursor(at: datetime, entry_id: str) -> str:
    import base64
    import json

    raw = json.dumps([iso(at), entry_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_history_cursor(text: str, locale: str) -> tuple[datetime, str]:
    import base64
    import binascii
    import json

    try:
        at, entry_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return datetime.fromisoformat(str(at).replace("Z", "+00:00")), str(entry_id)
    except (ValueError, TypeError, binascii.Error):
        raise rerr.invalid("cursor", "invalid_cursor", locale) from None
