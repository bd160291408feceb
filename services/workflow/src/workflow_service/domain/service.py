"""The workflow API's use cases: automations (versioned), their runs, dead letters and replay, notifications,
and the template of a tenant.

Managing automations, reading runs and replaying dead letters is for the
tenant's administrators (and the platform's own services); every user reads
and marks their own notifications. Everything is scoped to the caller's
tenant: an id of another tenant is "not found".
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crm_runtime.errors import Conflict, ValidationFailed
from crm_runtime.principal import Principal
from workflow_service.domain import errors as werr
from workflow_service.domain.common import iso, new_definition
from workflow_service.domain.definitions import FormInfo, parse_automation
from workflow_service.domain.engine import Engine
from workflow_service.domain.ports import AdminStore, Doc, FormPort

DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_MARK = 1000


class _Forms:
    """definitions.FormLookup for one principal."""

    def __init__(self, forms: FormPort, principal: Principal, approvals: Any = None) -> None:
        self._forms = forms
        self._principal = principal
        if approvals is not None:
            # the start_approval action's process is checked at save (definitions._start_approval)
            self.approval_process: Callable[[str], Any] = lambda ref: approvals.lookup(principal, ref)

    def published(self, form_ref: str) -> FormInfo | None:
        return self._forms.published(self._principal, form_ref)


def _page_size(size: int, locale: str) -> int:
    if size == 0:
        return DEFAULT_PAGE
    if not 1 <= size <= MAX_PAGE:
        raise werr.invalid("page_size", "invalid_page_size", locale, max=MAX_PAGE)
    return size


def encode_cursor(moment: Any) -> str:
    """The opaque cursor after a row: its time."""
    if not isinstance(moment, datetime):
        return ""
    return base64.urlsafe_b64encode(moment.astimezone(UTC).isoformat().encode()).decode().rstrip("=")


def decode_cursor(cursor: str, locale: str) -> datetime | None:
    """The time a cursor stands for; a 422 when it is not one of ours."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment = datetime.fromisoformat(text)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise werr.invalid("cursor", "invalid_cursor", locale) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bind(value: Any, bindings: Mapping[str, Mapping[str, str]], missing: list[str]) -> Any:
    """A template value with its "$department:<name>" / "$user:<username>" placeholders filled in."""
    if isinstance(value, str) and value.startswith("$") and ":" in value:
        kind, _, name = value[1:].partition(":")
        table = bindings.get(f"{kind}s") or {}
        if name in table:
            return table[name]
        missing.append(value)
        return value
    if isinstance(value, list):
        return [_bind(v, bindings, missing) for v in value]
    if isinstance(value, Mapping):
        return {k: _bind(v, bindings, missing) for k, v in value.items()}
    return value


class WorkflowUseCases:
    """The WorkflowService RPCs as plain methods over the store, the form port and the engine."""

    def __init__(
        self,
        store: AdminStore,
        forms: FormPort,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        templates: Callable[[str], Mapping[str, Any] | None] | None = None,
        pools: Any = None,
        approvals: Any = None,
    ) -> None:
        self.store = store
        self.approvals = approvals  # ApprovalUseCases: a template's approval processes, the start_approval check
        self.pools = pools  # PoolUseCases: a template's pools are installed with its automations
        self.forms = forms
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))
        self.templates = templates or (lambda _name: None)

    # ------------------------------------------------------------ access

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not (principal.is_admin or principal.kind == "service"):
            raise werr.manage_forbidden(principal.locale)

    def _found(self, principal: Principal, automation_id: str) -> Doc:
        doc = self.store.get_automation(principal.tenant_id, automation_id) if automation_id else None
        if doc is None or doc.get("deleted"):
            raise werr.automation_not_found(automation_id, principal.locale)
        return doc

    # ------------------------------------------------------------ automations

    def create(self, principal: Principal, spec: Any, *, template_key: str = "") -> Doc:
        """Check and store a new automation (version 1); a scheduled one gets its first firing armed."""
        self._require_admin(principal)
        normalised = parse_automation(spec, _Forms(self.forms, principal, self.approvals), locale=principal.locale)
        now = self.clock()
        doc = new_definition(principal, normalised, now, template_key)
        created = self.store.insert_automation(doc)
        if created.get("enabled"):
            self.engine.arm_schedule(created)
        return _public(created)

    def update(self, principal: Principal, automation_id: str, patch: Any, expected_version: int) -> Doc:
        """Change an automation (optimistic on expected_version); the new version applies to runs from now on."""
        self._require_admin(principal)
        if not expected_version or expected_version < 1:
            raise werr.invalid("expected_version", "required", principal.locale)
        current = self._found(principal, automation_id)
        if int(current.get("version") or 0) != expected_version:
            raise werr.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        if (
            isinstance(patch, Mapping)
            and "form" in patch
            and patch["form"]
            not in (
                current.get("form_id"),
                current.get("form_key"),
            )
        ):
            raise werr.invalid("form", "unknown_key", principal.locale, key="form")
        normalised = parse_automation(
            patch,
            _Forms(self.forms, principal, self.approvals),
            locale=principal.locale,
            partial_of=_definition(current),
        )
        stored = {k: v for k, v in current.items() if k != "id"}
        stored.update(normalised, updated_at=self.clock(), updated_by=principal.user_id)
        if not self.store.replace_automation(principal.tenant_id, automation_id, expected_version, stored):
            latest = self._found(principal, automation_id)
            raise werr.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
        if not normalised["enabled"] or normalised["trigger"] != current.get("trigger"):
            # a disabled automation fires no old reminders later; a changed trigger re-arms from the next event
            self.store.disarm_automation(automation_id)
        updated = self._found(principal, automation_id)
        if updated.get("enabled"):
            self.engine.arm_schedule(updated)
        return _public(updated)

    def get(self, principal: Principal, automation_id: str) -> Doc:
        """One automation."""
        self._require_admin(principal)
        return _public(self._found(principal, automation_id))

    def list_automations(self, principal: Principal, form_ref: str = "") -> list[Doc]:
        """The automations of a form (id or key), or of the tenant."""
        self._require_admin(principal)
        form_id = ""
        if form_ref:
            form = self.forms.published(principal, form_ref)
            if form is None:
                return []
            form_id = form.id
        return [_public(d) for d in self.store.list_automations(principal.tenant_id, form_id)]

    def delete(self, principal: Principal, automation_id: str, expected_version: int) -> None:
        """Delete an automation (kept for the runs that name its versions); its timers are cancelled."""
        self._require_admin(principal)
        if not expected_version or expected_version < 1:
            raise werr.invalid("expected_version", "required", principal.locale)
        current = self._found(principal, automation_id)
        if int(current.get("version") or 0) != expected_version:
            raise werr.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        stored = {k: v for k, v in current.items() if k != "id"}
        stored.update(deleted=True, enabled=False, updated_at=self.clock(), updated_by=principal.user_id)
        stored.pop("template_key", None)  # a template may install it again
        if not self.store.replace_automation(principal.tenant_id, automation_id, expected_version, stored):
            latest = self._found(principal, automation_id)
            raise werr.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
        self.store.disarm_automation(automation_id)

    def run_manual(self, principal: Principal, automation_id: str, record_id: str, options: Sequence[str]) -> Doc:
        """Run a manual automation (a button such as 线索转化) on a record the caller may see and edit."""
        automation = self._found(principal, automation_id)
        if (automation.get("trigger") or {}).get("type") != "manual" or not automation.get("enabled"):
            raise werr.invalid("automation_id", "not_manual", principal.locale)
        record = self.engine.records.get(principal, record_id) if record_id else None
        if record is None or record.get("form_id") != automation.get("form_id"):
            raise werr.record_not_found(record_id, principal.locale)
        known = {str(a.get("optional")) for a in automation.get("actions") or [] if a.get("optional")}
        unknown = [o for o in options if o not in known]
        if unknown:
            raise werr.invalid("options", "unknown_key", principal.locale, key=", ".join(unknown))
        run = self.engine.run_manual(automation, record, by=principal.user_id, options=list(options))
        return _run(run) if run else {}

    # ------------------------------------------------------------ runs and dead letters

    def runs(
        self, principal: Principal, *, automation_id: str = "", record_id: str = "", cursor: str = "", size: int = 0
    ) -> tuple[list[Doc], str]:
        """Runs of an automation or of a record, newest first."""
        self._require_admin(principal)
        if not automation_id and not record_id:
            raise werr.invalid("automation_id", "required", principal.locale)
        if automation_id:
            self._found(principal, automation_id) if not record_id else None
        size = _page_size(size, principal.locale)
        before = decode_cursor(cursor, principal.locale)
        rows = self.store.list_runs(
            principal.tenant_id, automation_id=automation_id, record_id=record_id, before=before, size=size + 1
        )
        more = len(rows) > size
        rows = rows[:size]
        return [_run(r) for r in rows], encode_cursor(rows[-1]["started_at"]) if more and rows else ""

    def dead_letters(
        self, principal: Principal, *, cursor: str = "", size: int = 0, include_replayed: bool = False
    ) -> tuple[list[Doc], str]:
        """Actions that failed after their retries, newest first."""
        self._require_admin(principal)
        size = _page_size(size, principal.locale)
        before = decode_cursor(cursor, principal.locale)
        rows = self.store.list_dead_letters(
            principal.tenant_id, before=before, size=size + 1, replayed=include_replayed
        )
        more = len(rows) > size
        rows = rows[:size]
        return [_letter(r) for r in rows], encode_cursor(rows[-1]["created_at"]) if more and rows else ""

    def replay(self, principal: Principal, letter_id: str) -> Doc:
        """Run a dead letter's action (and the ones after it) again, once; returns the dead letter with the run."""
        self._require_admin(principal)
        letter = self.store.dead_letter(principal.tenant_id, letter_id) if letter_id else None
        if letter is None:
            raise werr.dead_letter_not_found(letter_id, principal.locale)
        if letter.get("replayed_at"):
            raise werr.already_replayed(letter["replayed_at"], principal.locale)
        if not self.store.mark_replayed(letter_id, self.clock(), principal.user_id):
            raise werr.already_replayed(self.clock(), principal.locale)
        out = _letter(self.store.dead_letter(principal.tenant_id, letter_id) or letter)
        if letter.get("kind") == "event":
            out["runs"] = self.engine.handle_event(letter.get("envelope") or {})
            return out
        # a fresh round of retries: a replay that fails again lands in the list again
        run = self.engine.resume(str(letter["run_id"]), int(letter["action_index"]), 0)
        out["run"] = _run(run) if run else None
        return out

    # ------------------------------------------------------------ notifications

    def notifications(
        self, principal: Principal, *, unread_only: bool = False, cursor: str = "", size: int = 0
    ) -> tuple[list[Doc], str, int]:
        """The caller's notifications, newest first, and their unread count."""
        size = _page_size(size, principal.locale)
        before = decode_cursor(cursor, principal.locale)
        rows = self.store.list_notifications(
            principal.tenant_id, principal.user_id, before=before, size=size + 1, unread_only=unread_only
        )
        more = len(rows) > size
        rows = rows[:size]
        next_cursor = encode_cursor(rows[-1]["created_at"]) if more and rows else ""
        return [_notification(r) for r in rows], next_cursor, self.store.unread(principal.tenant_id, principal.user_id)

    def mark_read(self, principal: Principal, ids: Sequence[str], every: bool) -> tuple[int, int]:
        """Mark some, or all, of the caller's notifications read; (how many changed, unread left)."""
        if not every and not ids:
            raise werr.invalid("notification_ids", "required", principal.locale)
        if len(ids) > MAX_MARK:
            raise werr.invalid("notification_ids", "too_many", principal.locale, max=MAX_MARK)
        marked = self.store.mark_read(principal.tenant_id, principal.user_id, None if every else list(ids))
        return marked, self.store.unread(principal.tenant_id, principal.user_id)

    # ------------------------------------------------------------ template

    def install_template(
        self, principal: Principal, name: str, bindings: Mapping[str, Mapping[str, str]]
    ) -> tuple[int, int]:
        """The template's automations for the tenant, each once (by its key); (created, already there).

        A template value naming organisation data ("$department:销售一组", "$user:cfo") is filled in from
        `bindings`; an automation whose organisation is missing is installed switched off, with a note.
        """
        self._require_admin(principal)
        template = self.templates(name or "crm")
        if template is None:
            raise werr.invalid("template", "template_not_found", principal.locale, ref=name)
        created = existing = 0
        for item in template.get("pools") or [] if self.pools is not None else []:
            key = str(item["key"])
            if self.pools.store.template_pool(principal.tenant_id, key) is not None:
                existing += 1
                continue
            unbound: list[str] = []
            spec = _bind(copy.deepcopy({k: v for k, v in item.items() if k != "key"}), bindings, unbound)
            if unbound:
                spec["enabled"] = False
            try:
                self.pools.create(principal, spec, template_key=key)
            except Conflict:
                existing += 1
                continue
            except ValidationFailed:
                if unbound:
                    continue
                raise
            created += 1
        if self.approvals is not None:
            # approval processes before automations: a start_approval action names its process by key
            sibling = self.templates(f"{name or 'crm'}_approvals") or {}
            processes = [*(template.get("approval_processes") or []), *(sibling.get("approval_processes") or [])]
            made, there = self.approvals.install_template(principal, processes, bindings, _bind)
            created, existing = created + made, existing + there
        for item in template.get("automations") or []:
            key = str(item["key"])
            if self.store.template_automation(principal.tenant_id, key) is not None:
                existing += 1
                continue
            missing: list[str] = []
            spec = _bind(copy.deepcopy({k: v for k, v in item.items() if k != "key"}), bindings, missing)
            if missing:
                spec["enabled"] = False
                spec["description"] = "missing organisation: " + ", ".join(sorted(set(missing)))
            try:
                self.create(principal, spec, template_key=key)
            except Conflict:
                existing += 1
                continue
            except ValidationFailed:
                if missing:
                    continue  # an unfilled placeholder may not even validate: left out, not failed
                raise
            created += 1
        return created, existing


def _definition(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The user-facing definition of a stored automation (what a patch applies to)."""
    return {
        "name": doc.get("name"),
        "description": doc.get("description") or "",
        "form_id": doc.get("form_id"),
        "enabled": doc.get("enabled", True),
        "trigger": _user_trigger(doc.get("trigger") or {}),
        "condition": doc.get("condition"),
        "actions": doc.get("actions") or [],
    }


def _user_trigger(trigger: Mapping[str, Any]) -> dict[str, Any]:
    """A stored trigger as a user would write it (related form by id, durations in seconds)."""
    out = {k: v for k, v in trigger.items() if k not in ("related_form_id", "related_form_key")}
    if trigger.get("related_form_id"):
        out["related_form"] = trigger["related_form_id"]
    return out


def _public(doc: Mapping[str, Any]) -> Doc:
    keep = (
        "id", "tenant_id", "name", "description", "form_id", "form_key", "enabled", "version", "trigger",
        "condition", "actions", "template_key", "created_at", "updated_at", "created_by", "updated_by",
    )  # fmt: skip
    return {k: iso(doc.get(k)) for k in keep if k in doc}


def _run(doc: Mapping[str, Any]) -> Doc:
    out = {k: iso(v) for k, v in doc.items() if k not in ("_id", "record")}
    out["id"] = doc.get("_id")
    if isinstance(out.get("retry"), Mapping):
        out["retry"] = {k: iso(v) for k, v in out["retry"].items()}
    return out


def _letter(doc: Mapping[str, Any]) -> Doc:
    out = {k: iso(v) for k, v in doc.items() if k not in ("_id", "envelope")}
    out["id"] = doc.get("_id")
    return out


def _notification(doc: Mapping[str, Any]) -> Doc:
    out = {k: iso(v) for k, v in doc.items() if k not in ("_id", "tenant_id")}
    out["id"] = doc.get("_id")
    return out
