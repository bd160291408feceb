"""MongoFormRepository on a real SecantusDB: publication is one transaction."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from form_service.domain.models import FORM_PUBLISHED, Form, FormEvent, FormVersion
from form_service.server import FormServer
from form_service.store.documents import FormDocument, FormVersionDocument, OutboxDocument
from form_service.store.repository import MongoFormRepository

pytestmark = pytest.mark.integration


def _form(tenant: str) -> Form:
    now = datetime.now(UTC)
    return Form(
        id=uuid.uuid4().hex[:24],
        tenant_id=tenant,
        app_id="app",
        key="f_" + uuid.uuid4().hex[:8],
        name={"zh-CN": "x", "en": "x"},
        title_field="",
        fields=[{"key": "a", "type": "text"}],
        revision=1,
        published_version=0,
        created_at=now,
        updated_at=now,
        created_by="u",
        updated_by="u",
    )


def _version(form: Form, n: int) -> FormVersion:
    return FormVersion(
        form.id, form.tenant_id, form.app_id, form.key, form.name, n, "a", form.fields, form.updated_at, "u"
    )


def test_publish_writes_version_form_and_outbox_together_or_not_at_all(form_server: FormServer, tenant: str) -> None:
    db: Any = OutboxDocument._get_collection().database
    repo = MongoFormRepository(db)
    form = _form(tenant)
    repo.insert_form(form)
    event = FormEvent(FORM_PUBLISHED, tenant, "u", {"form_id": form.id, "version": 1})
    published = replace(form, published_version=1, locked_types={"a": "text"})
    assert repo.publish(published, _version(form, 1), event) is True
    assert FormVersionDocument.objects(tenant_id=tenant, form_id=form.id).count() == 1
    assert repo.get_form(tenant, form.id).published_version == 1  # type: ignore[union-attr]
    assert repo.get_form(tenant, form.id).locked_types == {"a": "text"}  # type: ignore[union-attr]
    assert OutboxDocument.objects(tenant_id=tenant).count() == 1

    # version 1 again: the duplicate aborts the transaction, so no second envelope and no form change
    again = replace(form, published_version=1, locked_types={"a": "number"})
    assert repo.publish(again, _version(form, 1), FormEvent(FORM_PUBLISHED, tenant, "u", {})) is False
    assert OutboxDocument.objects(tenant_id=tenant).count() == 1
    assert FormDocument.objects(id=form.id).first().locked_types == [{"path": "a", "type": "text"}]


def test_save_draft_is_conditional_on_the_revision(form_server: FormServer, tenant: str) -> None:
    repo = MongoFormRepository(OutboxDocument._get_collection().database)
    form = _form(tenant)
    repo.insert_form(form)
    assert repo.save_draft(replace(form, revision=2, title_field="a"), 1) is True
    assert repo.save_draft(replace(form, revision=2, title_field="b"), 1) is False
    stored = repo.get_form(tenant, form.key)
    assert stored is not None and (stored.revision, stored.title_field) == (2, "a")
    assert repo.get_form("someone-else", form.id) is None
