"""The 360° view of a record: the record, every record that relates to it (two levels), and a timeline.

Generic over the tenant's forms: a group is a (form, relation field) pair whose
field points at the record's form (level 1: 联系人/商机/合同 → 客户), or at the
form of a level-1 group (level 2: 回款 → 合同 → 客户). Each group is read with
the per-field list index (tenant_id, form_id, deleted, data.<key>) and nothing
else in the predicate, so SecantusDB's planner uses it; the caller's access to
each group's form (crm_runtime.access visibility, with role conditions) is
checked in Python on each match, and every form shown leaves out its own hidden
fields (items, timeline changes, display names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.access import FormAccess, visible_changes
from record_service.domain.context import RecordContext
from record_service.domain.core import RecordCore, field_label, iso
from record_service.domain.forms import FormCatalog, FormSchema, Reference, references_to
from record_service.domain.rendering import Renderer
from record_service.domain.repository import HistoryReader

Doc = dict[str, Any]
IN_CHUNK = 200
DEFAULT_PER_FORM = 20
MAX_PER_FORM = 200
GROUP_CAP = 1000  # matches counted per group; more shows as total_capped
TIMELINE_LIMIT = 100
TIMELINE_RELATED_ACTIONS = ("created", "updated")
_LIGHT = {"owner_id": 1, "department_id": 1, "created_at": 1, "acl": 1}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VERBS = {
    "zh-CN": {
        "created": "新建",
        "updated": "更新",
        "deleted": "删除",
        "restored": "恢复",
        "owner_changed": "转移负责人",
        "merged": "合并",
        "shared": "共享",
        "unshared": "取消共享",
    },
    "en": {
        "created": "Created",
        "updated": "Updated",
        "deleted": "Deleted",
        "restored": "Restored",
        "owner_changed": "Changed the owner of",
        "merged": "Merged",
        "shared": "Shared",
        "unshared": "Stopped sharing",
    },
}


def localised(text: Mapping[str, str] | str | None, locale: str, fallback: str = "") -> str:
    """A {"zh-CN", "en"} text in `locale` (zh-CN, then en, then `fallback`)."""
    if isinstance(text, Mapping):
        return str(text.get(locale) or text.get("zh-CN") or text.get("en") or fallback)
    return str(text or fallback)


@dataclass
class Group:
    """The visible records of one form relating through one field path."""

    ref: Reference
    via: str
    level: int
    through: Reference | None = None
    matches: list[Doc] = field(default_factory=list)  # light docs, newest first
    capped: bool = False

    @property
    def ids(self) -> list[str]:
        """Ids of the visible matches."""
        return [str(d["_id"]) for d in self.matches]


class Record360:
    """Builds the 360° view."""

    def __init__(
        self,
        core: RecordCore,
        renderer: Renderer,
        catalog: FormCatalog,
        history: HistoryReader,
        *,
        group_cap: int = GROUP_CAP,
        timeline_limit: int = TIMELINE_LIMIT,
    ) -> None:
        self._core = core
        self._renderer = renderer
        self._catalog = catalog
        self._history = history
        self._cap = group_cap
        self._timeline_limit = timeline_limit

    def view(self, principal: Principal, record_id: str, per_form_limit: int = 0) -> Doc:
        """{record, form, related: [group], timeline: [entry]} for a visible live record."""
        limit = per_form_limit or DEFAULT_PER_FORM
        if not 1 <= limit <= MAX_PER_FORM:
            raise rerr.invalid("per_form_limit", "invalid_limit", principal.locale, max=MAX_PER_FORM)
        core = self._core
        loaded = core.load(principal, record_id)
        ctx = core.context(principal)
        record = self._renderer.render_one(principal, loaded, ctx)
        forms = self._catalog.published_forms(principal)
        accesses: dict[str, FormAccess] = {loaded.form.id: loaded.access or core.access(principal, loaded.form, ctx)}

        def access_of(form: FormSchema) -> FormAccess:
            if form.id not in accesses:
                accesses[form.id] = core.access(principal, form, ctx)
            return accesses[form.id]

        groups: list[Group] = []
        for ref in references_to(forms, loaded.form):
            group = Group(ref, ref.key, 1)
            self._fill(principal, access_of(ref.form), group, [record_id], exclude=set())
            groups.append(group)
        shown: dict[str, set[str]] = {}
        for group in groups:
            shown.setdefault(group.ref.form.id, set()).update(group.ids)
        second: list[Group] = []
        for first in groups:
            if not first.matches:
                continue
            for ref in references_to(forms, first.ref.form):
                group = Group(ref, f"{ref.key}.{first.via}", 2, through=first.ref)
                exclude = {record_id} | shown.get(ref.form.id, set())
                self._fill(principal, access_of(ref.form), group, first.ids, exclude=exclude)
                if group.matches:
                    second.append(group)
        groups += second
        return {
            "record": record,
            "form": self._form_json(loaded.form, principal.locale),
            "related": [self._group_json(principal, g, limit, ctx, access_of(g.ref.form)) for g in groups],
            "timeline": self._timeline(principal, loaded.form, record_id, groups, access_of),
        }

    # ------------------------------------------------------------ groups

    def _fill(
        self, principal: Principal, fa: FormAccess, group: Group, targets: Sequence[str], exclude: set[str]
    ) -> None:
        """The visible records of the group's form whose relation field holds one of `targets`."""
        form = group.ref.form
        self._core.repo.ensure_form_indexes(form)
        path = f"data.{group.ref.key}"
        projection = None if not fa.exact and not fa.unrestricted else _LIGHT  # conditions read data
        found: dict[str, Doc] = {}
        for start in range(0, len(targets), IN_CHUNK):
            chunk = list(targets[start : start + IN_CHUNK])
            predicate: Doc = {
                "tenant_id": principal.tenant_id,
                "form_id": form.id,
                "deleted": False,
                path: chunk[0] if len(chunk) == 1 else {"$in": chunk},
            }
            for doc in self._core.repo.find(predicate, projection=projection, batch_size=1000):
                rid = str(doc["_id"])
                if rid in exclude or rid in found or not fa.allows(doc):
                    continue
                found[rid] = doc
                if len(found) > self._cap:
                    break
            if len(found) > self._cap:
                break
        matches = sorted(found.values(), key=lambda d: (d.get("created_at") or _EPOCH, d["_id"]), reverse=True)
        group.capped = len(matches) > self._cap
        group.matches = matches[: self._cap]

    def _group_json(self, principal: Principal, group: Group, limit: int, ctx: RecordContext, fa: FormAccess) -> Doc:
        form = group.ref.form
        top = group.ids[:limit]
        by_id = {d["_id"]: d for d in self._core.repo.get_many(top)} if top else {}
        docs = [by_id[i] for i in top if i in by_id]
        out: Doc = {
            "form_id": form.id,
            "form_key": form.key,
            "form_name": localised(form.name, principal.locale, form.key),
            "via": group.via,
            "via_label": field_label(group.ref.field, principal.locale),
            "level": group.level,
            "total": len(group.matches),
            "total_capped": group.capped,
            "items": self._renderer.render(principal, form, docs, ctx, fa),
        }
        if group.through is not None:
            out["through"] = {"form_id": group.through.form.id, "form_key": group.through.form.key}
        return out

    @staticmethod
    def _form_json(form: FormSchema, locale: str) -> Doc:
        return {"id": form.id, "key": form.key, "name": localised(form.name, locale, form.key)}

    # ------------------------------------------------------------ timeline

    def _timeline(
        self,
        principal: Principal,
        form: FormSchema,
        record_id: str,
        groups: list[Group],
        access_of: Callable[[FormSchema], FormAccess],
    ) -> list[Doc]:
        """The record's own history and the created/updated entries of its related records, newest first.

        Each entry shows the changes and the display name its own form lets the caller see.
        """
        limit = self._timeline_limit
        own = self._history.recent(principal.tenant_id, [record_id], limit)
        forms_of: dict[str, FormSchema] = {record_id: form}
        related: list[str] = []
        for group in groups:
            for rid in group.ids:
                if rid not in forms_of:
                    forms_of[rid] = group.ref.form
                    related.append(rid)
        rows = list(own)
        if related:
            rows += [
                r
                for r in self._history.recent(principal.tenant_id, related, limit * 2)
                if r.get("action") in TIMELINE_RELATED_ACTIONS
            ]
        rows.sort(key=lambda r: (r["at"], r["_id"]), reverse=True)
        rows = rows[:limit]
        titles = self._titles(forms_of, {str(r["record_id"]) for r in rows}, access_of)
        out = []
        for r in rows:
            row_form = forms_of.get(str(r["record_id"]), form)
            out.append(self._entry(principal, r, row_form, titles, access_of(row_form).hidden))
        return out

    def _titles(
        self, forms_of: Mapping[str, FormSchema], ids: set[str], access_of: Callable[[FormSchema], FormAccess]
    ) -> dict[str, str]:
        docs = self._core.repo.get_many(sorted(ids)) if ids else []
        return {str(d["_id"]): access_of(forms_of[str(d["_id"])]).title_of(d, str(d["_id"])) for d in docs}

    @staticmethod
    def _entry(
        principal: Principal, row: Doc, form: FormSchema, titles: Mapping[str, str], hidden: frozenset[str]
    ) -> Doc:
        loc = principal.locale
        rid = str(row["record_id"])
        action = str(row.get("action") or "")
        form_name = localised(form.name, loc, form.key)
        display = titles.get(rid, rid)
        changes = []
        for change in visible_changes(row.get("changes") or [], hidden):
            definition = form.field(str(change.get("field")))
            changes.append({**change, "label": field_label(definition, loc) if definition else None})
        verbs = _VERBS.get(loc, _VERBS["zh-CN"])
        verb = verbs.get(action, action)
        summary = f"{verb}{form_name}「{display}」" if loc == "zh-CN" else f"{verb} {form_name} {display}"
        if action == "updated":
            labels = [c["label"] or c.get("field") for c in changes][:5]
            if labels:
                summary += ("：" if loc == "zh-CN" else ": ") + ("、" if loc == "zh-CN" else ", ").join(
                    str(label) for label in labels
                )
        return {
            "id": row["_id"],
            "at": iso(row.get("at")),
            "form_id": form.id,
            "form_key": form.key,
            "record_id": rid,
            "display": display,
            "action": action,
            "event_type": f"record.{action}",
            "actor": row.get("actor"),
            "actor_name": row.get("actor_name") or "",
            "summary": summary,
            "changes": changes,
        }
