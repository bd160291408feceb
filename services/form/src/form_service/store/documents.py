"""mongoengine documents of the `crm_form` database, with an index for every query path.

SecantusDB uses an index only when one index covers every field of the
predicate, so each query the repository sends has its own covering index:

    apps           (tenant_id, key) unique      get by key; list by tenant (prefix)
    forms          (tenant_id, key) unique      get by key; list by tenant (prefix)
                   (tenant_id, app_id)          list by app
                   (_id, revision)              optimistic draft update
    form_versions  (tenant_id, form_id, version) unique   get one version
    outbox         (published)                  the relay's pending scan
                   (_id, published)             the relay's mark-as-sent update
Fetches by `_id` use the primary index and check the tenant in code.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    StringField,
)

ALIAS = "form"
"""The mongoengine connection alias of this service (other services in one process use theirs)."""


class AppDocument(Document):
    """An app (应用)."""

    id = StringField(primary_key=True)
    tenant_id = StringField(required=True)
    key = StringField(required=True)
    name = DictField()
    description = StringField(default="")
    created_at = DateTimeField(required=True)
    created_by = StringField(default="")

    meta = {
        "db_alias": ALIAS,
        "collection": "apps",
        "auto_create_index": False,
        "indexes": [{"fields": ["tenant_id", "key"], "unique": True, "name": "tenant_key"}],
    }


class FormDocument(Document):
    """A form's draft and publication state. `locked_types` is a list of {path, type}
    (sub-table paths contain dots, which a document key may not)."""

    id = StringField(primary_key=True)
    tenant_id = StringField(required=True)
    app_id = StringField(required=True)
    key = StringField(required=True)
    name = DictField()
    title_field = StringField(default="")
    fields = ListField(DictField())
    revision = IntField(required=True)
    published_version = IntField(default=0)
    locked_types = ListField(DictField())
    created_at = DateTimeField(required=True)
    updated_at = DateTimeField(required=True)
    created_by = StringField(default="")
    updated_by = StringField(default="")

    meta = {
        "db_alias": ALIAS,
        "collection": "forms",
        "auto_create_index": False,
        "indexes": [
            {"fields": ["tenant_id", "key"], "unique": True, "name": "tenant_key"},
            {"fields": ["tenant_id", "app_id"], "name": "tenant_app"},
            {"fields": ["id", "revision"], "name": "id_revision"},
        ],
    }


class FormVersionDocument(Document):
    """An immutable published version; `_id` is `<form_id>:<version>`."""

    id = StringField(primary_key=True)
    tenant_id = StringField(required=True)
    form_id = StringField(required=True)
    app_id = StringField(required=True)
    key = StringField(required=True)
    name = DictField()
    version = IntField(required=True)
    title_field = StringField(default="")
    fields = ListField(DictField())
    published_at = DateTimeField(required=True)
    published_by = StringField(default="")

    meta = {
        "db_alias": ALIAS,
        "collection": "form_versions",
        "auto_create_index": False,
        "indexes": [{"fields": ["tenant_id", "form_id", "version"], "unique": True, "name": "tenant_form_version"}],
    }


class OutboxDocument(Document):
    """An event envelope waiting for the OutboxRelay (`published` False until confirmed)."""

    id = StringField(primary_key=True)
    tenant_id = StringField(required=True)
    event = DictField(required=True)
    published = BooleanField(default=False)
    published_at = DateTimeField()

    meta = {"db_alias": ALIAS, "collection": "outbox", "auto_create_index": False}


DOCUMENTS: tuple[type[Document], ...] = (AppDocument, FormDocument, FormVersionDocument, OutboxDocument)
