"""Plain in-memory fakes of the form service's own interfaces (FormRepository)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from crm_runtime.principal import Principal
from form_service.domain.models import App, Form, FormEvent, FormVersion
from form_service.domain.repository import KeyTaken
from form_service.domain.service import FormEngine


class FakeRepository:
    """FormRepository in dictionaries; `events` collects what would go to the outbox."""

    def __init__(self) -> None:
        self.apps: dict[str, App] = {}
        self.forms: dict[str, Form] = {}
        self.versions: dict[str, FormVersion] = {}
        self.events: list[FormEvent] = []

    def insert_app(self, app: App) -> None:
        if any(a.tenant_id == app.tenant_id and a.key == app.key for a in self.apps.values()):
            raise KeyTaken(app.key)
        self.apps[app.id] = app

    def get_app(self, tenant_id: str, ref: str) -> App | None:
        for app in self.apps.values():
            if app.tenant_id == tenant_id and ref in (app.id, app.key):
                return app
        return None

    def list_apps(self, tenant_id: str) -> list[App]:
        return [a for a in self.apps.values() if a.tenant_id == tenant_id]

    def insert_form(self, form: Form) -> None:
        if any(f.tenant_id == form.tenant_id and f.key == form.key for f in self.forms.values()):
            raise KeyTaken(form.key)
        self.forms[form.id] = copy.deepcopy(form)

    def get_form(self, tenant_id: str, ref: str) -> Form | None:
        for form in self.forms.values():
            if form.tenant_id == tenant_id and ref in (form.id, form.key):
                return copy.deepcopy(form)
        return None

    def list_forms(self, tenant_id: str, app_id: str | None) -> list[Form]:
        return [f for f in self.forms.values() if f.tenant_id == tenant_id and app_id in (None, f.app_id)]

    def save_draft(self, form: Form, expected_revision: int) -> bool:
        if self.forms[form.id].revision != expected_revision:
            return False
        self.forms[form.id] = copy.deepcopy(form)
        return True

    def get_version(self, tenant_id: str, form_id: str, version: int) -> FormVersion | None:
        found = self.versions.get(f"{form_id}:{version}")
        return found if found is not None and found.tenant_id == tenant_id else None

    def publish(self, form: Form, version: FormVersion, event: FormEvent) -> bool:
        if version.id in self.versions:
            return False
        self.versions[version.id] = version
        stored = self.forms[form.id]
        self.forms[form.id] = replace(
            stored, published_version=form.published_version, locked_types=dict(form.locked_types)
        )
        self.events.append(event)
        return True


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture()
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture()
def engine(repo: FakeRepository) -> FormEngine:
    return FormEngine(repo, clock=Clock())


@pytest.fixture()
def admin() -> Principal:
    return Principal(tenant_id="t1", user_id="u-admin", role="admin")


@pytest.fixture()
def admin_en() -> Principal:
    return Principal(tenant_id="t1", user_id="u-admin", role="admin", locale="en")


@pytest.fixture()
def sales() -> Principal:
    return Principal(tenant_id="t1", user_id="u-sales", role="sales")
