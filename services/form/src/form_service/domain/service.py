"""The use cases of the form engine (FormEngine): apps, drafts, publication, templates.

Every method takes the calling (verified) Principal: all reads and writes are
scoped to its tenant. Rights come from crm_runtime.access (docs/security.md):

* creating apps and forms and installing templates: tenant administration;
* changing or publishing an existing form: tenant administration or the
  `manage` action on that form;
* drafts (ListForms, GetForm): whoever may `view` or `manage` the form; a form
  the caller cannot view is left out of lists and is "not found" to it;
* published versions, apps and field types: any valid principal;
* a service principal (`kind == "service"`) reads everything of its tenant.

Nothing here knows about gRPC or MongoDB; storage comes in as a FormRepository.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from crm_runtime.access import can
from crm_runtime.errors import Conflict, FieldError, ValidationFailed
from crm_runtime.principal import Principal
from form_service.domain import rules
from form_service.domain.errors import conflict, field_error, forbidden, invalid, not_found
from form_service.domain.models import FORM_PUBLISHED, App, Form, FormEvent, FormVersion
from form_service.domain.repository import FormRepository, KeyTaken
from form_service.domain.schema import definition_errors


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FormEngine:
    """Apps, forms, drafts and published versions of every tenant."""

    def __init__(
        self,
        repository: FormRepository,
        *,
        clock: Callable[[], datetime] = _utc_now,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self._repo = repository
        self._now = clock
        self._new_id = new_id or _object_id

    # ----------------------------------------------------------------- apps

    def create_app(self, principal: Principal, name: Any, key: str = "", description: str = "") -> App:
        """Create an app (应用) in the caller's tenant."""
        self._require_admin(principal)
        loc = principal.locale
        text = rules.local_text(name)
        if not text:
            raise invalid("name", "name_required", loc)
        key = key.strip() or rules.new_key("a")
        if not rules.is_valid_key(key):
            raise invalid("key", "invalid_key", loc, key=key)
        app = App(
            id=self._new_id(),
            tenant_id=principal.tenant_id,
            key=key,
            name=text,
            description=description,
            created_at=self._now(),
            created_by=principal.user_id,
        )
        try:
            self._repo.insert_app(app)
        except KeyTaken:
            raise conflict("app_key_taken", loc, key=key) from None
        return app

    def list_apps(self, principal: Principal) -> list[App]:
        """Every app of the caller's tenant."""
        return self._repo.list_apps(principal.tenant_id)

    def get_app(self, principal: Principal, ref: str) -> App:
        """One app by id or key."""
        app = self._repo.get_app(principal.tenant_id, ref)
        if app is None:
            raise not_found("app_not_found", principal.locale, ref=ref)
        return app

    # ---------------------------------------------------------------- forms

    def create_form(self, principal: Principal, app_ref: str, spec: dict[str, Any]) -> Form:
        """Create a form draft in an app: spec is {key?, name, fields?, title_field?}."""
        self._require_admin(principal)
        loc = principal.locale
        app = self.get_app(principal, app_ref)
        name = rules.local_text(spec.get("name"))
        if not name:
            raise invalid("name", "name_required", loc)
        key = str(spec.get("key") or "").strip() or rules.new_key("f")
        if not rules.is_valid_key(key):
            raise invalid("key", "invalid_key", loc, key=key)
        raw_fields = spec.get("fields", [])
        shape = rules.field_shape_errors(raw_fields, loc)
        if shape:
            raise ValidationFailed(shape)
        fields = rules.with_field_keys(raw_fields)
        title_field = self._title_field(spec.get("title_field"), fields, "", loc)
        now = self._now()
        form = Form(
            id=self._new_id(),
            tenant_id=principal.tenant_id,
            app_id=app.id,
            key=key,
            name=name,
            title_field=title_field,
            fields=fields,
            revision=1,
            published_version=0,
            created_at=now,
            updated_at=now,
            created_by=principal.user_id,
            updated_by=principal.user_id,
        )
        try:
            self._repo.insert_form(form)
        except KeyTaken:
            raise conflict("form_key_taken", loc, key=key) from None
        return form

    def list_forms(self, principal: Principal, app_ref: str = "") -> list[Form]:
        """The forms the caller may view, of one app (by id or key) or of the whole tenant when `app_ref` is empty."""
        if not app_ref:
            forms = self._repo.list_forms(principal.tenant_id, None)
        else:
            app = self.get_app(principal, app_ref)
            forms = self._repo.list_forms(principal.tenant_id, app.id)
        return [f for f in forms if self._may_view(principal, f.key)]

    def get_form(self, principal: Principal, ref: str) -> Form:
        """One form draft (with its revision and published version number) by id or key.

        A form the caller may neither view nor manage is "not found", like a
        form of another tenant: its existence is not revealed.
        """
        form = self._load_form(principal, ref)
        if not self._may_view(principal, form.key):
            raise not_found("form_not_found", principal.locale, ref=ref)
        return form

    def update_form(self, principal: Principal, ref: str, patch: dict[str, Any], expected_revision: int = 0) -> Form:
        """Change the draft: name, the whole field list, title_field. Optimistic on `revision`.

        A field key that was ever published keeps its type; changing it is a
        validation error naming the field (remove it and add a new key instead).
        """
        loc = principal.locale
        form = self._managed_form(principal, ref)
        if expected_revision and expected_revision != form.revision:
            raise conflict("stale_revision", loc, current=form.revision, expected=expected_revision)
        name = form.name
        if "name" in patch:
            name = rules.local_text(patch["name"])
            if not name:
                raise invalid("name", "name_required", loc)
        fields = form.fields
        if "fields" in patch:
            shape = rules.field_shape_errors(patch["fields"], loc)
            if shape:
                raise ValidationFailed(shape)
            fields = rules.with_field_keys(patch["fields"])
            errors = rules.type_changes(fields, form.locked_types, loc)
            if errors:
                raise ValidationFailed(errors)
        title_field = self._title_field(patch.get("title_field"), fields, form.title_field, loc)
        updated = replace(
            form,
            name=name,
            fields=fields,
            title_field=title_field,
            revision=form.revision + 1,
            updated_at=self._now(),
            updated_by=principal.user_id,
        )
        if not self._repo.save_draft(updated, form.revision):
            current = self._repo.get_form(principal.tenant_id, form.id)
            now_rev = current.revision if current else form.revision
            raise conflict("stale_revision", loc, current=now_rev, expected=expected_revision or form.revision)
        return updated

    # ---------------------------------------------------------- publication

    def publish_form(self, principal: Principal, ref: str) -> FormVersion:
        """Validate the draft and store it as the next immutable version, with a form.published event.

        Relation and rollup targets may be given as form keys; the version
        holds their ids. The version and its event are written atomically.
        """
        loc = principal.locale
        form = self._managed_form(principal, ref)
        fields = copy.deepcopy(form.fields)
        errors = rules.type_changes(fields, form.locked_types, loc)
        errors += definition_errors(fields, loc)
        errors += self._resolve_references(principal, form, fields)
        title_field = form.title_field or rules.default_title_field(fields)
        if title_field and title_field not in {f.get("key") for f in fields}:
            errors.append(field_error("title_field", "title_field_unknown", loc, field=title_field))
        if errors:
            raise ValidationFailed(errors)
        now = self._now()
        version = FormVersion(
            form_id=form.id,
            tenant_id=form.tenant_id,
            app_id=form.app_id,
            key=form.key,
            name=dict(form.name),
            version=form.published_version + 1,
            title_field=title_field,
            fields=fields,
            published_at=now,
            published_by=principal.user_id,
        )
        published = replace(
            form,
            published_version=version.version,
            locked_types={**form.locked_types, **rules.field_types(fields)},
        )
        event = FormEvent(
            type=FORM_PUBLISHED,
            tenant_id=form.tenant_id,
            actor=principal.user_id,
            data={
                "form_id": form.id,
                "key": form.key,
                "app_id": form.app_id,
                "version": version.version,
                "title_field": title_field,
                "fields": copy.deepcopy(fields),
            },
        )
        if not self._repo.publish(published, version, event):
            raise conflict("publish_conflict", loc)
        return version

    def get_published(self, principal: Principal, ref: str, version: int = 0) -> FormVersion:
        """A published version of a form (by id or key); version 0 is the latest."""
        loc = principal.locale
        form = self._load_form(principal, ref)
        if form.published_version == 0:
            raise not_found("not_published", loc, ref=ref)
        number = version or form.published_version
        found = self._repo.get_version(principal.tenant_id, form.id, number)
        if found is None:
            raise not_found("version_not_found", loc, ref=ref, version=number)
        return found

    # ------------------------------------------------------------ templates

    def install_template(self, principal: Principal, template: dict[str, Any]) -> tuple[App, bool]:
        """Install an app template (an app and its forms, as data) and publish every form.

        Idempotent and resumable, and it upgrades an earlier install: an
        existing app (by key) is reused and `created` is False; missing forms
        are created, unpublished ones published; a published form gets the
        template fields it lacks (`_add_template_fields`) as a new version.
        Fields a user changed, added or removed are left as they are. The forms
        go through the same create/update/publish use cases a user calls.
        A template form whose key another app's form holds is left out and,
        once the rest is done, reported as a conflict.
        """
        self._require_admin(principal)
        spec = template["app"]
        app = self._repo.get_app(principal.tenant_id, spec["key"])
        created = False
        if app is None:
            try:
                app = self.create_app(principal, spec["name"], spec["key"], spec.get("description", ""))
                created = True
            except Conflict:  # a concurrent install created it first
                app = self.get_app(principal, spec["key"])
        forms: list[tuple[Form, dict[str, Any]]] = []
        taken: list[str] = []
        for form_spec in template["forms"]:
            form = self._repo.get_form(principal.tenant_id, form_spec["key"])
            if form is None:
                try:
                    form = self.create_form(principal, app.id, form_spec)
                except Conflict:
                    form = self._load_form(principal, form_spec["key"])
            if form.app_id != app.id:
                taken.append(form.key)
            else:
                forms.append((form, form_spec))
        # a form relating to a left-out one would relate to the other app's form of that key
        forms = [(f, spec) for f, spec in forms if not _references(spec.get("fields", [])) & set(taken)]
        for form, _spec in forms:
            if form.published_version == 0:
                try:
                    self.publish_form(principal, form.id)
                except Conflict:  # a concurrent install published it
                    pass
        for form, form_spec in forms:
            self._add_template_fields(principal, form.id, form_spec)
        if taken:
            raise conflict("form_key_taken", principal.locale, key=", ".join(taken))
        return app, created

    def _add_template_fields(self, principal: Principal, form_id: str, form_spec: dict[str, Any]) -> None:
        """Add to a published form the template fields it never had, and publish that as the next version.

        A field key the form has, or ever published (`locked_types`: a user
        removed it), is not touched. Only a draft equal to its latest version
        is upgraded: a user's unpublished changes are never published for
        them; such a form is upgraded by a later install, after they publish.
        """
        form = self._repo.get_form(principal.tenant_id, form_id)
        if form is None or form.published_version == 0:
            return
        fields = _with_template_fields(form.fields, form.locked_types, form_spec.get("fields", []))
        if fields is None or not self._draft_is_published(principal, form):
            return
        # the user's own changes may not fit the new fields (e.g. a formula naming a field they removed): then
        # the form is left as it is rather than given a draft that cannot be published
        if definition_errors(fields, principal.locale) or self._resolve_references(
            principal, form, copy.deepcopy(fields)
        ):
            return
        try:
            self.update_form(principal, form.id, {"fields": fields}, expected_revision=form.revision)
            self.publish_form(principal, form.id)
        except Conflict:  # a user or a concurrent install changed it meanwhile: the next install looks again
            pass

    def _draft_is_published(self, principal: Principal, form: Form) -> bool:
        """True when the draft holds nothing unpublished (same name, title field and fields as its latest version)."""
        version = self._repo.get_version(principal.tenant_id, form.id, form.published_version)
        if version is None:
            return False
        fields = copy.deepcopy(form.fields)
        self._resolve_references(principal, form, fields)  # the version holds target ids where the draft has keys
        title_field = form.title_field or rules.default_title_field(form.fields)
        return (version.name, version.title_field, version.fields) == (form.name, title_field, fields)

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _require_admin(principal: Principal) -> None:
        if not principal.is_admin:
            raise forbidden(principal.locale)

    @staticmethod
    def _may_manage(principal: Principal, form_key: str) -> bool:
        return principal.is_admin or can(principal.policy, form_key, "manage")

    def _may_view(self, principal: Principal, form_key: str) -> bool:
        return (
            principal.kind == "service"
            or self._may_manage(principal, form_key)
            or can(principal.policy, form_key, "view")
        )

    def _load_form(self, principal: Principal, ref: str) -> Form:
        """A form of the caller's tenant by id or key, without any rights check."""
        form = self._repo.get_form(principal.tenant_id, ref)
        if form is None:
            raise not_found("form_not_found", principal.locale, ref=ref)
        return form

    def _managed_form(self, principal: Principal, ref: str) -> Form:
        """A form the caller may change: 403 if it may only view it, 404 if it may not even see it."""
        form = self._load_form(principal, ref)
        if self._may_manage(principal, form.key):
            return form
        if self._may_view(principal, form.key):
            raise forbidden(principal.locale)
        raise not_found("form_not_found", principal.locale, ref=ref)

    @staticmethod
    def _title_field(given: Any, fields: list[dict[str, Any]], current: str, loc: str) -> str:
        keys = {f.get("key") for f in fields}
        if given:
            if given not in keys:
                raise invalid("title_field", "title_field_unknown", loc, field=str(given))
            return str(given)
        if current and current in keys:
            return current
        return rules.default_title_field(fields)

    def _resolve_references(self, principal: Principal, form: Form, fields: list[dict[str, Any]]) -> list[FieldError]:
        """Resolve relation/rollup targets (id or key) to form ids in place; errors for missing ones."""
        loc = principal.locale
        errors: list[FieldError] = []
        for path, field in rules.walk_fields(fields):
            relation = field.get("relation")
            if field.get("type") == "relation" and isinstance(relation, dict) and relation.get("form_id"):
                target = self._target(principal, form, str(relation["form_id"]))
                if target is None:
                    errors.append(
                        field_error(path, "relation_target_missing", loc, field=path, target=relation["form_id"])
                    )
                else:
                    relation["form_id"] = target.id
            rollup = field.get("rollup")
            if field.get("type") == "rollup" and isinstance(rollup, dict) and rollup.get("form_id"):
                errors += self._resolve_rollup(principal, form, path, rollup)
        return errors

    def _resolve_rollup(self, principal: Principal, form: Form, path: str, rollup: dict[str, Any]) -> list[FieldError]:
        loc = principal.locale
        ref = str(rollup["form_id"])
        target = self._target(principal, form, ref)
        if target is None:
            return [field_error(path, "rollup_target_missing", loc, field=path, target=ref)]
        rollup["form_id"] = target.id
        target_fields = {str(f.get("key")): f for f in target.fields}
        if target.published_version:
            published = self._repo.get_version(principal.tenant_id, target.id, target.published_version)
            if published is not None:
                target_fields = {str(f.get("key")): f for f in published.fields} | target_fields
        relation_key = str(rollup.get("relation_field", ""))
        link = target_fields.get(relation_key)
        link_target = (link or {}).get("relation") or {}
        if not link or link.get("type") != "relation" or link_target.get("form_id") not in (form.id, form.key):
            return [
                field_error(path, "rollup_relation_invalid", loc, field=path, target=target.key, relation=relation_key)
            ]
        source = rollup.get("field")
        if source and source not in target_fields:
            return [field_error(path, "rollup_field_missing", loc, field=path, target=target.key, source=source)]
        return []

    def _target(self, principal: Principal, form: Form, ref: str) -> Form | None:
        if ref in (form.id, form.key):
            return form
        return self._repo.get_form(principal.tenant_id, ref)


def _with_template_fields(
    draft: list[dict[str, Any]], locked: dict[str, str], template_fields: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """`draft` plus the template fields whose key it neither has nor ever published, or None when there are none.

    Each added field goes right after the template field before it (where the
    draft still has that one), else at the end.
    """
    fields = copy.deepcopy(draft)
    keys = {f.get("key") for f in fields}
    previous = ""
    added = False
    for spec in template_fields:
        key = spec.get("key")
        if key not in keys and key not in locked:
            at = next((i + 1 for i, f in enumerate(fields) if previous and f.get("key") == previous), len(fields))
            fields.insert(at, copy.deepcopy(spec))
            keys.add(key)
            added = True
        if key in keys:
            previous = str(key)
    return fields if added else None


def _references(fields: list[dict[str, Any]]) -> set[str]:
    """The form ids or keys that relation and rollup fields (sub-table ones too) name."""
    out = set()
    for _path, field in rules.walk_fields(fields):
        for prop in ("relation", "rollup"):
            target = field.get(prop)
            if isinstance(target, dict) and target.get("form_id"):
                out.add(str(target["form_id"]))
    return out


def _object_id() -> str:
    """A 24-hex id that sorts by creation time, like a MongoDB ObjectId (no bson in the domain)."""
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"
