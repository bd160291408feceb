"""Bulk create: up to 10,000 rows, validated together, written in chunks, all or nothing.

Every row is validated first (errors named `rows[i].field`), relation ids are
checked with a few batched reads, unique values must not repeat inside the
batch (409 naming both rows) nor be held in the store. The records are then
written in transactions of BULK_CHUNK (one transaction of 10,000 stalls
SecantusDB); a failure deletes what earlier chunks wrote (compensation) and
gives back the reserved auto numbers. The batch's history is one entry per
BATCH_ENTRY records (events.batch_document), held back from the relay until
the last chunk commits, so no event of a compensated batch is ever published.
A caller that stopped waiting (its gRPC deadline passed: the gateway answered
504) gets nothing written either: the deadline is checked before each chunk
and before the batch is released, and a passed one is compensated like a
failure, so a client retrying after a timeout does not create the rows twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import crm_schema
from crm_runtime.calls import check_deadline
from crm_runtime.errors import Conflict, FieldError, ValidationFailed
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.access import FormAccess, input_errors
from record_service.domain.context import RecordContext
from record_service.domain.core import RecordCore, field_label
from record_service.domain.forms import FormSchema
from record_service.domain.repository import RecordQueries, Transaction, UniqueTaken
from record_service.events import BATCH_ENTRY, RECORD_CREATED, batch_document

Doc = dict[str, Any]
MAX_BULK_ROWS = 10_000
BULK_CHUNK = 1_000  # records per transaction of a bulk create; a multiple of events.BATCH_ENTRY


class BulkCreate:
    """BulkCreateRecords."""

    def __init__(self, core: RecordCore, queries: RecordQueries, *, chunk: int = BULK_CHUNK) -> None:
        if chunk % BATCH_ENTRY:
            raise ValueError(f"a bulk chunk is a multiple of {BATCH_ENTRY} records")
        self.core = core
        self.queries = queries
        self.chunk = chunk

    def create(self, principal: Principal, form_ref: str, rows: Any) -> list[str]:
        """All or nothing: validate every row, check uniques in the batch and the store, write in one transaction."""
        loc = principal.locale
        if not isinstance(rows, list):
            raise rerr.invalid("records_json", "not_array", loc)
        if not rows:
            raise rerr.invalid("records_json", "empty_batch", loc)
        if len(rows) > MAX_BULK_ROWS:
            raise rerr.invalid("records_json", "too_many_rows", loc, max=MAX_BULK_ROWS, count=len(rows))
        form = self.core.form(principal, form_ref)
        self.core.require(principal, form, "create", "import")
        now = self.core.clock()
        ctx = self.core.context(principal, now)
        self._prefetch_relations(form, rows, ctx)
        fa = self.core.access(principal, form, ctx)
        errors, values_list = self._validate_rows(form, rows, ctx, fa)
        if errors and (newer := self.core.refreshed(principal, form, errors)) is not None:
            form = newer
            fa = self.core.access(principal, form, ctx)
            errors, values_list = self._validate_rows(form, rows, ctx, fa)
        if errors:
            raise ValidationFailed(errors)
        owner = self.core.owner_of(principal, form, "")
        ids = [self.core.new_id() for _ in values_list]
        masked = ctx.with_role("")
        auto_fields = form.of_type("auto_number")
        self._check_batch_uniques(principal, form, values_list, auto_fields)
        numbers: Doc = {}
        counters: dict[str, int] = {}
        if auto_fields:
            # reserved up front in one small transaction: every chunk then knows its numbers
            numbers, counters = self.core.repo.transaction(
                lambda tx: self.core.auto_numbers(tx, form, principal.tenant_id, now, len(values_list))
            )
        docs: list[Doc] = []
        payloads: list[tuple[str, Doc]] = []
        claims: list[tuple[str, str]] = []
        positions: list[int] = []
        hold = f"bulk:{ids[0]}"
        first_seq = self.core.repo.reserve_order(principal.tenant_id, form.id, len(values_list)) - len(values_list) + 1
        for i, values in enumerate(values_list):
            data = dict(values)
            for key, seq in numbers.items():
                data[key] = seq[i]
            doc = self.core.new_doc(principal, form, ids[i], data, owner, now, first_seq + i)
            doc.update(self.core.search_fields(form, data))
            docs.append(doc)
            row_claims = self.core.unique_claims(form, principal.tenant_id, ids[i], data)
            claims += row_claims
            positions += [i] * len(row_claims)
            payloads.append((ids[i], {"data": self.core.outputs(form, data, masked)}))
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
            held = self.core.repo.unique_holders([k for k, _ in claims]) if claims else {}
            if held:
                first = next(n for n, (k, _) in enumerate(claims) if k in held)
                raise UniqueTaken(claims[first][0], positions[first])
            self._write_chunks(docs, entries, claims)
        except UniqueTaken as taken:
            self._give_back(counters, len(values_list))
            raise self.core.unique_conflict(principal, form, taken) from None
        except BaseException:
            self._give_back(counters, len(values_list))
            raise
        self.core.repo.release_held(hold)
        self.queries.written(principal.tenant_id, form, [d["data"] for d in docs])
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
            for start in range(0, len(docs), self.chunk):
                check_deadline(f"chunk {start // self.chunk + 1} of a bulk create")
                chunk_docs = docs[start : start + self.chunk]
                # the batch entries of these records (BULK_CHUNK is a multiple of BATCH_ENTRY)
                chunk_entries = entries[start // BATCH_ENTRY : (start + self.chunk) // BATCH_ENTRY]
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

                self.core.repo.transaction(txn)
                done = start + len(chunk_docs)
            # the last moment to undo: once released, the batch is visible to the relay
            check_deadline("a bulk create is released")
        except BaseException:
            if done:
                written = {d["_id"] for d in docs[:done]}
                self.core.repo.discard(
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
            self.core.repo.return_sequence(key, last, count)

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
                    label = field_label(f, principal.locale)
                    text = rerr.message(
                        "unique_in_batch", principal.locale, label=label, value=value, other=seen[normalised]
                    )
                    errors.append(FieldError(f"rows[{i}].{f['key']}", "unique", text, {"row": seen[normalised]}))
                else:
                    seen[normalised] = i
        if errors:
            raise Conflict(
                "; ".join(e.message for e in errors[:5]),
                reason="unique_in_batch",
                errors=[e.to_dict() for e in errors],
            )


def _row_of(docs: Sequence[Doc], chunk_claims: Sequence[tuple[str, str]], taken: UniqueTaken) -> int | None:
    """The batch row whose claim clashed."""
    if taken.position is None or taken.position >= len(chunk_claims):
        return None
    rid = chunk_claims[taken.position][1]
    return next((i for i, d in enumerate(docs) if d["_id"] == rid), None)
