"""Published forms as the record service sees them, and where they come from.

A `FormSchema` is one immutable published version of a form (its fields and
title field). `FormSource` is our own interface for fetching them, and
`FormCatalog` for listing a tenant's published forms (the 360° view and merge
need "every form that relates to form X": `references_to`). The one client of
crm.form.v1.FormService (forms/grpc_source.py) implements both in production;
tests use a static in-memory source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crm_runtime.principal import Principal

# Field types whose values are worth an index even when not marked filterable.
INDEXED_TYPES = frozenset({"relation", "select", "stage", "date", "datetime"})
# Field types that hold no stored value: computed on read.
READ_COMPUTED_TYPES = frozenset({"lookup", "rollup"})
# Types whose stored value is a scalar, so sorting on them is well defined.
SORTABLE_TYPES = frozenset(
    {
        "text",
        "select",
        "stage",
        "date",
        "datetime",
        "time",
        "number",
        "money",
        "percent",
        "rating",
        "auto_number",
        "mobile",
        "phone",
        "email",
        "boolean",
        "url",
        "formula",
    }
)
# Fields the selective planner prefers: equality on them usually finds few records.
SELECTIVE_TYPES = frozenset({"relation", "select", "stage"})


@dataclass(frozen=True)
class FormSchema:
    """One published version of a form."""

    id: str
    key: str
    tenant_id: str
    version: int
    title_field: str
    fields: tuple[dict[str, Any], ...]
    name: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, tenant_id: str, doc: Mapping[str, Any]) -> FormSchema:
        """Build from the JSON of GetPublishedForm or of a form.published event."""
        return cls(
            id=str(doc.get("id") or doc.get("form_id") or ""),
            key=str(doc.get("key") or ""),
            tenant_id=tenant_id,
            version=int(doc.get("version") or 0),
            title_field=str(doc.get("title_field") or ""),
            fields=tuple(dict(f) for f in doc.get("fields") or ()),
            name=dict(doc.get("name") or {}) if isinstance(doc.get("name"), Mapping) else {},
        )

    def field(self, key: str) -> dict[str, Any] | None:
        """The definition of `key`, or None."""
        return self.by_key.get(key)

    @property
    def by_key(self) -> dict[str, dict[str, Any]]:
        """Field definitions by key."""
        cached = self.__dict__.get("_by_key")
        if cached is None:
            cached = {str(f.get("key")): f for f in self.fields}
            object.__setattr__(self, "_by_key", cached)
        return cached

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        """Fields of the given types, in form order."""
        return [f for f in self.fields if f.get("type") in types]

    @property
    def indexed_keys(self) -> frozenset[str]:
        """Keys of stored fields that get an index (filterable, unique, or of an indexed type)."""
        cached = self.__dict__.get("_indexed")
        if cached is None:
            cached = frozenset(
                str(f["key"])
                for f in self.fields
                if f.get("type") not in READ_COMPUTED_TYPES
                and (f.get("filterable") or f.get("unique") or f.get("type") in INDEXED_TYPES)
            )
            object.__setattr__(self, "_indexed", cached)
        return cached

    @property
    def unique_fields(self) -> list[dict[str, Any]]:
        """Fields whose normalised value must be unique in the form."""
        return [f for f in self.fields if f.get("unique")]

    def title_of(self, data: Mapping[str, Any], fallback: str = "") -> str:
        """The display name of a record: its title field's value as text."""
        value = data.get(self.title_field) if self.title_field else None
        if value is None or value == "":
            return fallback
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return str(value)


class FormSource(Protocol):
    """Where published forms come from."""

    def get_published(self, tenant_id: str, form_id_or_key: str, version: int = 0) -> FormSchema:
        """A published version (0 = latest) by form id or key; raises NotFound."""
        ...


class ListingFormSource(FormSource, Protocol):
    """A FormSource that can also list a tenant's published forms."""

    def list_published(self, tenant_id: str) -> list[FormSchema]:
        """The latest published version of each form of the tenant."""
        ...


class FormCatalog(Protocol):
    """The latest published version of every published form of a tenant."""

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """Every form of the caller's tenant that has a published version."""
        ...


class SourceCatalog:
    """A FormCatalog over a FormSource that offers `list_published`."""

    def __init__(self, source: ListingFormSource) -> None:
        self._source = source

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """See FormCatalog."""
        return list(self._source.list_published(principal.tenant_id))


@dataclass(frozen=True)
class Reference:
    """A relation field of `form` whose target is some other form."""

    form: FormSchema
    field: dict[str, Any]

    @property
    def key(self) -> str:
        """The relation field's key."""
        return str(self.field["key"])

    @property
    def many(self) -> bool:
        """True for a to-many relation (a list of ids)."""
        return bool((self.field.get("relation") or {}).get("many"))


def relation_target(field: Mapping[str, Any]) -> str:
    """The form id or key a relation field points to ("" for a non-relation)."""
    if field.get("type") != "relation":
        return ""
    return str((field.get("relation") or {}).get("form_id") or "")


def references_to(forms: Iterable[FormSchema], target: FormSchema) -> list[Reference]:
    """Every relation field, in any of `forms`, that points at `target` (named by its id or its key)."""
    refs = {target.id, target.key} - {""}
    out = []
    for form in forms:
        for definition in form.of_type("relation"):
            if relation_target(definition) in refs:
                out.append(Reference(form, definition))
    return out


class StaticFormSource:
    """An in-memory FormSource over known schemas (tests, tools)."""

    def __init__(self, forms: Iterable[FormSchema] = ()) -> None:
        self._forms: dict[tuple[str, str], list[FormSchema]] = {}
        for form in forms:
            self.add(form)

    def add(self, form: FormSchema) -> None:
        """Publish a version (later versions become the latest)."""
        for ref in (form.id, form.key):
            if ref:
                versions = self._forms.setdefault((form.tenant_id, ref), [])
                versions.append(form)
                versions.sort(key=lambda f: f.version)

    def get_published(self, tenant_id: str, form_id_or_key: str, version: int = 0) -> FormSchema:
        """See FormSource."""
        from record_service.domain.errors import form_not_found

        versions = self._forms.get((tenant_id, form_id_or_key)) or []
        if not versions:
            raise form_not_found(form_id_or_key)
        if version == 0:
            return versions[-1]
        for form in versions:
            if form.version == version:
                return form
        raise form_not_found(form_id_or_key)

    def list_published(self, tenant_id: str) -> list[FormSchema]:
        """The latest version of each form of the tenant (a ListingFormSource)."""
        latest: dict[str, FormSchema] = {}
        for (tenant, _ref), versions in self._forms.items():
            if tenant == tenant_id and versions:
                latest[versions[-1].id] = versions[-1]
        return list(latest.values())
