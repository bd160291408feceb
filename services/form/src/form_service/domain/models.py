"""Domain objects of the form engine: App, Form (a draft), FormVersion (immutable), FormEvent."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LocalText = dict[str, str]
"""Display text per locale: {"zh-CN": "...", "en": "..."}."""

FORM_PUBLISHED = "form.published"
"""Event type written when a form version is published."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@dataclass
class App:
    """An application (应用): a named group of forms of one tenant."""

    id: str
    tenant_id: str
    key: str
    name: LocalText
    description: str
    created_at: datetime
    created_by: str = ""

    def to_json(self) -> dict[str, Any]:
        """The API representation."""
        return {
            "id": self.id,
            "key": self.key,
            "name": dict(self.name),
            "description": self.description,
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
        }


@dataclass
class Form:
    """A form's editable draft plus its publication state.

    `revision` is the draft's optimistic-concurrency counter. `locked_types`
    remembers the type of every field key that was ever published, because
    records keep values under those keys: a key can never change its type.
    """

    id: str
    tenant_id: str
    app_id: str
    key: str
    name: LocalText
    title_field: str
    fields: list[dict[str, Any]]
    revision: int
    published_version: int
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    locked_types: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The API representation of the draft (GetForm, ListForms)."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "app_id": self.app_id,
            "key": self.key,
            "name": dict(self.name),
            "title_field": self.title_field,
            "fields": copy.deepcopy(self.fields),
            "revision": self.revision,
            "published_version": self.published_version,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "created_by": self.created_by,
            "updated_by": self.updated_by,
        }


@dataclass(frozen=True)
class FormVersion:
    """One immutable published schema of a form: what records are validated against."""

    form_id: str
    tenant_id: str
    app_id: str
    key: str
    name: LocalText
    version: int
    title_field: str
    fields: list[dict[str, Any]]
    published_at: datetime
    published_by: str

    @property
    def id(self) -> str:
        """Stable id of this version; unique, so two concurrent publishes cannot both win."""
        return f"{self.form_id}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        """The API representation (GetPublishedForm)."""
        return {
            "id": self.form_id,
            "key": self.key,
            "app_id": self.app_id,
            "name": dict(self.name),
            "title_field": self.title_field,
            "version": self.version,
            "fields": copy.deepcopy(self.fields),
            "published_at": _iso(self.published_at),
            "published_by": self.published_by,
        }


@dataclass(frozen=True)
class FormEvent:
    """Something that happened to a form, to be written to the outbox with the change."""

    type: str
    tenant_id: str
    actor: str
    data: dict[str, Any]
