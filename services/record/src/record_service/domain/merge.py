"""MergeRecords: fold a duplicate (the loser) into the record that stays (the winner), in one transaction.

The winner keeps its values, takes the loser's where its own are empty, or
follows `field_choices` ({"key": "winner"|"loser"}). In the same transaction
the loser is soft-deleted with `merged_into`, its unique claims move to the
winner, every relation (to-one or to-many, in any form of the tenant) that
pointed at the loser points at the winner, and history entries are written:
they are the outbox, so the events go out exactly when the merge commits.

    winner    action "merged"   envelope record.merged  {winner_id, loser_id, form_id, repointed, changes, ...}
    loser     action "merged"   envelope record.deleted {record_id, merged_into, ...} (read models drop it)
    re-pointed records  action "updated"  envelope record.updated {changes: {key: {old, new}}, merged_from}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import crm_schema
from crm_runtime.errors import FieldError, ValidationFailed
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.core import Loaded, RecordCore
from record_service.domain.forms import FormCatalog, FormSchema, Reference, references_to
from record_service.domain.rendering import Renderer
from record_service.domain.repository import StaleVersion, Transaction
from record_service.events import ENVELOPE_FIELD, RECORD_DELETED, RECORD_UPDATED

Doc = dict[str, Any]
RECORD_MERGED = "record.merged"
MERGED_ACTION = "merged"
WINNER, LOSER = "winner", "loser"
# Types whose value the merge computes or keeps, never takes from a side.
NOT_CHOSEN = frozenset({"lookup", "rollup", "formula", "auto_number", "approval_status"})


def is_empty(value: Any) -> bool:
    """No value: None, "", [] or {}."""
    return value is None or value == "" or value == [] or value == {}


def check_choices(form: FormSchema, choices: Any, locale: str, hidden: frozenset[str] = frozenset()) -> dict[str, str]:
    """Validate {"field_key": "winner"|"loser"} against the form (422 naming each bad entry).

    A field hidden from the caller is refused exactly like an unknown one.
    """
    if choices is None:
        return {}
    if not isinstance(choices, Mapping):
        raise rerr.invalid("field_choices_json", "not_object", locale)
    errors: list[FieldError] = []
    for key, side in choices.items():
        where = f"field_choices.{key}"
        definition = form.field(str(key)) if str(key) not in hidden else None
        if definition is None:
            errors.append(FieldError(where, "unknown_field", rerr.message("unknown_field", locale, field=key)))
        elif definition.get("type") in NOT_CHOSEN:
            errors.append(FieldError(where, "not_mergeable", rerr.message("not_mergeable", locale, field=key)))
        elif side not in (WINNER, LOSER):
            errors.append(FieldError(where, "invalid_choice", rerr.message("invalid_choice", locale)))
    if errors:
        raise ValidationFailed(errors)
    return {str(k): str(v) for k, v in choices.items()}


def merge_values(
    form: FormSchema, winner: Mapping[str, Any], loser: Mapping[str, Any], choices: Mapping[str, str], ids: set[str]
) -> Doc:
    """The winner's new stored data (before formulas).

    Fields the form no longer has keep the winner's stored values. A relation
    of the form to itself never ends up pointing at either merged record (`ids`).
    """
    merged: Doc = dict(winner)
    for definition in form.fields:
        key = str(definition["key"])
        if definition.get("type") in NOT_CHOSEN:
            continue
        choice = choices.get(key)
        if choice == LOSER:
            value = loser.get(key)
        elif choice == WINNER:
            value = winner.get(key)
        else:
            value = winner.get(key) if not is_empty(winner.get(key)) else loser.get(key)
        if definition.get("type") == "relation" and (definition.get("relation") or {}).get("form_id") in (
            form.id,
            form.key,
        ):
            value = [v for v in value if v not in ids] if isinstance(value, list) else value
            value = None if isinstance(value, str) and value in ids else value
        if is_empty(value):
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def repointed_value(value: Any, loser_id: str, winner_id: str) -> Any:
    """A relation value with the loser replaced by the winner (a list keeps its order, without repeats)."""
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            item = winner_id if item == loser_id else item
            if item not in out:
                out.append(item)
        return out
    return winner_id if value == loser_id else value


@dataclass
class Repoint:
    """One record whose relation fields name the loser."""

    doc: Doc
    form: FormSchema
    refs: list[Reference] = field(default_factory=list)


class RecordMerger:
    """MergeRecords."""

    def __init__(self, core: RecordCore, renderer: Renderer, catalog: FormCatalog) -> None:
        self._core = core
        self._renderer = renderer
        self._catalog = catalog

    def merge(self, principal: Principal, winner_id: str, loser_id: str, choices: Any) -> Doc:
        """Merge and return the winner as GetRecord renders it."""
        loc = principal.locale
        core = self._core
        if not winner_id:
            raise rerr.invalid("winner_id", "required", loc)
        if not loser_id:
            raise rerr.invalid("loser_id", "required", loc)
        if winner_id == loser_id:
            raise rerr.invalid("loser_id", "same_record", loc)
        win = core.load(principal, winner_id)
        lose = core.load(principal, loser_id)
        if win.doc.get("form_id") != lose.doc.get("form_id"):
            raise rerr.invalid("loser_id", "different_forms", loc)
        form = win.form
        # the winner is changed (edit), the loser goes to the recycle bin (delete)
        core.require(principal, form, "edit", "delete")
        win = core.load(principal, winner_id, edit=True)
        core.require_on(principal, lose, "delete", shown="merge")
        hidden = win.access.hidden if win.access is not None else frozenset()
        chosen = check_choices(form, choices, loc, hidden)
        now = core.clock()
        ctx = core.context(principal, now)
        masked = ctx.with_role("")
        w_data: Doc = dict(win.doc.get("data") or {})
        l_data: Doc = dict(lose.doc.get("data") or {})
        merged = merge_values(form, w_data, l_data, chosen, {winner_id, loser_id})
        if form.of_type("formula"):
            merged.update(crm_schema.compute_formulas(list(form.fields), merged, ctx))
            merged = {k: v for k, v in merged.items() if not is_empty(v) or k in w_data}
        for key, side in chosen.items():
            definition = form.field(key) or {}
            if side == LOSER and definition.get("required") and is_empty(merged.get(key)):
                raise rerr.invalid(f"field_choices.{key}", "required", loc)

        tenant = principal.tenant_id
        w_version, l_version = int(win.doc.get("version") or 0), int(lose.doc.get("version") or 0)
        changed = {k: v for k, v in merged.items() if k not in w_data or w_data[k] != v}
        removed = [k for k in w_data if k not in merged]
        changes = [
            {
                "field": key,
                "old": self._out(form, key, w_data.get(key), masked),
                "new": self._out(form, key, merged.get(key), masked),
            }
            for key in [*changed, *removed]
        ]
        repoints = self._repoints(principal, form, winner_id, loser_id)

        winner_set: Doc = {f"data.{k}": v for k, v in changed.items()}
        winner_set.update(core.search_fields(form, merged))
        winner_set.update(
            {
                "version": w_version + 1,
                "form_version": form.version,
                "updated_by": principal.user_id,
                "updated_at": now,
                "last_activity_at": now,
            }
        )
        loser_set: Doc = {
            "deleted": True,
            "deleted_at": now,
            "deleted_by": principal.user_id,
            "merged_into": winner_id,
            "version": l_version + 1,
            "updated_at": now,
            "updated_by": principal.user_id,
        }
        loser_keys = [k for k, _ in core.unique_claims(form, tenant, loser_id, l_data)]
        old_claims = dict(core.unique_claims(form, tenant, winner_id, w_data))
        new_claims = dict(core.unique_claims(form, tenant, winner_id, merged))
        release = [k for k in old_claims if k not in new_claims]
        claim = [(k, winner_id) for k in new_claims if k not in old_claims]

        winner_after = {**win.doc, **winner_set, "data": merged}
        loser_after = {**lose.doc, **loser_set}
        entries = [
            self._merged_entry(principal, winner_after, now, changes, loser_id, len(repoints)),
            self._loser_entry(principal, loser_after, now, winner_id),
        ]
        updates: list[tuple[str, int, Doc]] = []
        for rp in repoints:
            version = int(rp.doc.get("version") or 0)
            stored = rp.doc.get("data") or {}
            set_fields: Doc = {}
            rp_changes = []
            for ref in rp.refs:
                new = repointed_value(stored.get(ref.key), loser_id, winner_id)
                set_fields[f"data.{ref.key}"] = new
                rp_changes.append({"field": ref.key, "old": stored.get(ref.key), "new": new})
            set_fields.update({"version": version + 1, "updated_by": principal.user_id, "updated_at": now})
            updates.append((str(rp.doc["_id"]), version, set_fields))
            entries.append(
                core.history_entry(
                    RECORD_UPDATED,
                    principal,
                    {**rp.doc, "version": version + 1},
                    now,
                    rp_changes,
                    {
                        "version": version + 1,
                        "changes": {c["field"]: {"old": c["old"], "new": c["new"]} for c in rp_changes},
                        "merged_from": loser_id,
                        "merged_into": winner_id,
                    },
                )
            )

        def txn(tx: Transaction) -> None:
            if loser_keys:
                tx.release_uniques(loser_keys, loser_id)
            tx.update_record(loser_id, l_version, loser_set)
            tx.update_record(winner_id, w_version, winner_set, [f"data.{k}" for k in removed])
            if release:
                tx.release_uniques(release, winner_id)
            if claim:
                tx.claim_uniques(claim)
            for record_id, version, set_fields in updates:
                tx.update_record(record_id, version, set_fields)
            tx.insert_history(entries)

        try:
            core.write(txn, principal, form)
        except StaleVersion:
            raise rerr.merge_conflict("merge_changed", loc) from None
        return self._renderer.render_one(principal, Loaded(winner_after, form), ctx)

    @staticmethod
    def _out(form: FormSchema, key: str, value: Any, ctx: Any) -> Any:
        definition = form.field(key)
        if value is None or definition is None:
            return value
        return crm_schema.to_output(definition, value, ctx=ctx)

    def _repoints(self, principal: Principal, form: FormSchema, winner_id: str, loser_id: str) -> list[Repoint]:
        """Every record of the tenant (live or in the recycle bin) with a relation naming the loser."""
        found: dict[str, Repoint] = {}
        repo = self._core.repo
        for ref in references_to(self._catalog.published_forms(principal), form):
            repo.ensure_form_indexes(ref.form)
            for deleted in (False, True):
                predicate = {
                    "tenant_id": principal.tenant_id,
                    "form_id": ref.form.id,
                    "deleted": deleted,
                    f"data.{ref.key}": loser_id,
                }
                for doc in repo.find(predicate, batch_size=1000):
                    rid = str(doc["_id"])
                    if rid in (winner_id, loser_id):
                        continue  # the merged pair itself is handled by merge_values
                    found.setdefault(rid, Repoint(doc, ref.form)).refs.append(ref)
        return list(found.values())

    def _merged_entry(
        self, principal: Principal, after: Doc, at: datetime, changes: list[Doc], loser_id: str, repointed: int
    ) -> Doc:
        entry = self._core.history_entry(
            RECORD_UPDATED,
            principal,
            after,
            at,
            [*changes, {"field": "merged_from", "old": None, "new": loser_id}],
            {
                "winner_id": after["_id"],
                "loser_id": loser_id,
                "repointed": repointed,
                "version": after["version"],
                "changes": {c["field"]: {"old": c["old"], "new": c["new"]} for c in changes},
            },
        )
        # events.ACTIONS has no "merged" yet: the entry is built as an update, then named for what it is
        entry["action"] = MERGED_ACTION
        entry[ENVELOPE_FIELD]["type"] = RECORD_MERGED
        return entry

    def _loser_entry(self, principal: Principal, after: Doc, at: datetime, winner_id: str) -> Doc:
        entry = self._core.history_entry(
            RECORD_DELETED,
            principal,
            after,
            at,
            [
                {"field": "deleted", "old": False, "new": True},
                {"field": "merged_into", "old": None, "new": winner_id},
            ],
            {"version": after["version"], "merged_into": winner_id},
        )
        entry["action"] = MERGED_ACTION
        return entry
