"""MongoFormRepository: the FormRepository over mongoengine documents in `crm_form`.

Converts between documents and domain objects; the publication write (version,
form state, outbox envelope) is one multi-document transaction.
"""

from __future__ import annotations

from typing import Any

from mongoengine import Document
from mongoengine.errors import NotUniqueError
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from crm_runtime.events import OutboxRelay
from form_service.domain.models import App, Form, FormEvent, FormVersion
from form_service.domain.repository import KeyTaken
from form_service.events import outbox_document
from form_service.store.documents import DOCUMENTS, AppDocument, FormDocument, FormVersionDocument, OutboxDocument


def ensure_indexes() -> None:
    """Create every index of the service's collections (idempotent)."""
    for doc in DOCUMENTS:
        doc.ensure_indexes()
    outbox = OutboxDocument._get_collection()
    OutboxRelay.ensure_indexes(outbox)
    # the relay marks sent envelopes with {_id: {$in: ...}, published: False}: one index must cover both
    outbox.create_index([("_id", ASCENDING), ("published", ASCENDING)], name="outbox_mark")


def _by_id_or_key(doc_cls: type[Document], tenant_id: str, ref: str) -> Any:
    # by _id first (primary index; the tenant is checked here, not in the
    # predicate, so the planner keeps the index), then by the (tenant_id, key) index
    doc = doc_cls.objects(id=ref).first()
    if doc is not None and doc.tenant_id == tenant_id:
        return doc
    return doc_cls.objects(tenant_id=tenant_id, key=ref).first()


class MongoFormRepository:
    """FormRepository over the `form` mongoengine alias; `db` is the same database for transactions."""

    def __init__(self, db: Database[Any]) -> None:
        self._db = db

    # ---------------------------------------------------------------- apps

    def insert_app(self, app: App) -> None:
        """Store a new app; KeyTaken on a duplicate (tenant_id, key)."""
        doc = AppDocument(
            id=app.id,
            tenant_id=app.tenant_id,
            key=app.key,
            name=app.name,
            description=app.description,
            created_at=app.created_at,
            created_by=app.created_by,
        )
        try:
            doc.save(force_insert=True)
        except NotUniqueError as exc:
            raise KeyTaken(app.key) from exc

    def get_app(self, tenant_id: str, ref: str) -> App | None:
        """The app by id or key in the tenant."""
        doc = _by_id_or_key(AppDocument, tenant_id, ref)
        return _app(doc) if doc is not None else None

    def list_apps(self, tenant_id: str) -> list[App]:
        """The tenant's apps, oldest first (sorted here: the store sorts in memory anyway)."""
        apps = [_app(d) for d in AppDocument.objects(tenant_id=tenant_id)]
        return sorted(apps, key=lambda a: (a.created_at, a.id))

    # --------------------------------------------------------------- forms

    def insert_form(self, form: Form) -> None:
        """Store a new form; KeyTaken on a duplicate (tenant_id, key)."""
        try:
            _form_document(form).save(force_insert=True)
        except NotUniqueError as exc:
            raise KeyTaken(form.key) from exc

    def get_form(self, tenant_id: str, ref: str) -> Form | None:
        """The form by id or key in the tenant."""
        doc = _by_id_or_key(FormDocument, tenant_id, ref)
        return _form(doc) if doc is not None else None

    def list_forms(self, tenant_id: str, app_id: str | None) -> list[Form]:
        """Forms of an app or of the tenant, oldest first."""
        query = (
            FormDocument.objects(tenant_id=tenant_id, app_id=app_id)
            if app_id
            else FormDocument.objects(tenant_id=tenant_id)
        )
        return sorted((_form(d) for d in query), key=lambda f: (f.created_at, f.id))

    def save_draft(self, form: Form, expected_revision: int) -> bool:
        """Conditional replace of the draft on (_id, revision)."""
        result = FormDocument._get_collection().update_one(
            {"_id": form.id, "revision": expected_revision},
            {
                "$set": {
                    "name": form.name,
                    "title_field": form.title_field,
                    "fields": form.fields,
                    "revision": form.revision,
                    "updated_at": form.updated_at,
                    "updated_by": form.updated_by,
                }
            },
        )
        return result.matched_count == 1

    # ------------------------------------------------------------ versions

    def get_version(self, tenant_id: str, form_id: str, version: int) -> FormVersion | None:
        """One version, through the (tenant_id, form_id, version) index."""
        doc = FormVersionDocument.objects(tenant_id=tenant_id, form_id=form_id, version=version).first()
        return _version(doc) if doc is not None else None

    def publish(self, form: Form, version: FormVersion, event: FormEvent) -> bool:
        """Version + form state + outbox envelope in one transaction; False if the version exists."""
        versions = FormVersionDocument._get_collection()
        forms = FormDocument._get_collection()
        outbox = OutboxDocument._get_collection()
        version_doc = _version_document(version).to_mongo().to_dict()
        form_set = {
            "published_version": form.published_version,
            "locked_types": [{"path": p, "type": t} for p, t in sorted(form.locked_types.items())],
        }
        outbox_doc = outbox_document(event)

        def write(session: Any) -> None:
            versions.insert_one(version_doc, session=session)
            forms.update_one({"_id": form.id}, {"$set": form_set}, session=session)
            outbox.insert_one(outbox_doc, session=session)

        try:
            with self._db.client.start_session() as session:
                session.with_transaction(write)
        except DuplicateKeyError:
            return False
        return True


# ------------------------------------------------------------- conversion


def _plain(value: Any) -> Any:
    """mongoengine's BaseDict/BaseList (which track their parent document) as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _app(doc: AppDocument) -> App:
    return App(
        id=doc.id,
        tenant_id=doc.tenant_id,
        key=doc.key,
        name=_plain(doc.name),
        description=doc.description or "",
        created_at=doc.created_at,
        created_by=doc.created_by or "",
    )


def _form_document(form: Form) -> FormDocument:
    return FormDocument(
        id=form.id,
        tenant_id=form.tenant_id,
        app_id=form.app_id,
        key=form.key,
        name=form.name,
        title_field=form.title_field,
        fields=form.fields,
        revision=form.revision,
        published_version=form.published_version,
        locked_types=[{"path": p, "type": t} for p, t in sorted(form.locked_types.items())],
        created_at=form.created_at,
        updated_at=form.updated_at,
        created_by=form.created_by,
        updated_by=form.updated_by,
    )


def _form(doc: FormDocument) -> Form:
    return Form(
        id=doc.id,
        tenant_id=doc.tenant_id,
        app_id=doc.app_id,
        key=doc.key,
        name=_plain(doc.name),
        title_field=doc.title_field or "",
        fields=_plain(list(doc.fields)),
        revision=doc.revision,
        published_version=doc.published_version or 0,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        created_by=doc.created_by or "",
        updated_by=doc.updated_by or "",
        locked_types={str(item["path"]): str(item["type"]) for item in doc.locked_types},
    )


def _version_document(version: FormVersion) -> FormVersionDocument:
    return FormVersionDocument(
        id=version.id,
        tenant_id=version.tenant_id,
        form_id=version.form_id,
        app_id=version.app_id,
        key=version.key,
        name=version.name,
        version=version.version,
        title_field=version.title_field,
        fields=version.fields,
        published_at=version.published_at,
        published_by=version.published_by,
    )


def _version(doc: FormVersionDocument) -> FormVersion:
    return FormVersion(
        form_id=doc.form_id,
        tenant_id=doc.tenant_id,
        app_id=doc.app_id,
        key=doc.key,
        name=_plain(doc.name),
        version=doc.version,
        title_field=doc.title_field or "",
        fields=_plain(list(doc.fields)),
        published_at=doc.published_at,
        published_by=doc.published_by or "",
    )
