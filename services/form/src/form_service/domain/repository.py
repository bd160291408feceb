"""The storage interface the form engine needs (implemented by store.repository)."""

from __future__ import annotations

from typing import Protocol

from form_service.domain.models import App, Form, FormEvent, FormVersion


class KeyTaken(Exception):
    """An app or form key is already used in the tenant (a unique index said so)."""


class FormRepository(Protocol):
    """Apps, forms and versions of every tenant; every method is tenant-scoped."""

    def insert_app(self, app: App) -> None:
        """Store a new app; raises KeyTaken when its key is used in the tenant."""
        ...

    def get_app(self, tenant_id: str, ref: str) -> App | None:
        """The app with id or key `ref` in the tenant."""
        ...

    def list_apps(self, tenant_id: str) -> list[App]:
        """The tenant's apps, oldest first."""
        ...

    def insert_form(self, form: Form) -> None:
        """Store a new form draft; raises KeyTaken when its key is used in the tenant."""
        ...

    def get_form(self, tenant_id: str, ref: str) -> Form | None:
        """The form with id or key `ref` in the tenant."""
        ...

    def list_forms(self, tenant_id: str, app_id: str | None) -> list[Form]:
        """The forms of one app (or of the whole tenant when `app_id` is None), oldest first."""
        ...

    def save_draft(self, form: Form, expected_revision: int) -> bool:
        """Replace the draft if its stored revision is still `expected_revision`; False if not."""
        ...

    def get_version(self, tenant_id: str, form_id: str, version: int) -> FormVersion | None:
        """One published version of a form."""
        ...

    def publish(self, form: Form, version: FormVersion, event: FormEvent) -> bool:
        """Atomically store `version`, the form's new publication state and `event` in the outbox.

        False when that version number already exists (a concurrent publish won).
        """
        ...
