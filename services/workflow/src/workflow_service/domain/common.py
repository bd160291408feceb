"""Small pieces every use case of the workflow shares: collecting a definition's errors, a form lookup for
one caller, the tenant-admin rule, and times as API text."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from crm_runtime.errors import FieldError
from crm_runtime.principal import Principal
from workflow_service.domain import errors as werr

if TYPE_CHECKING:
    from workflow_service.domain.definitions import FormInfo


@dataclass
class Check:
    """Collects the errors of one definition (each on its path, in the caller's language)."""

    locale: str
    errors: list[FieldError] = field(default_factory=list)

    def fail(self, where: str, rule: str, **params: Any) -> None:
        """One more wrong part."""
        self.errors.append(werr.field_error(where, rule, self.locale, **params))


class PublishedForms(Protocol):
    """Anything that finds a caller's published forms (the FormPort)."""

    def published(self, principal: Principal, form_ref: str) -> FormInfo | None:
        """The latest published version of a form, or None."""
        ...


class FormsFor:
    """A definitions FormLookup for one caller over a FormPort."""

    def __init__(self, forms: PublishedForms, principal: Principal) -> None:
        self._forms = forms
        self._principal = principal

    def published(self, form_ref: str) -> FormInfo | None:
        """The caller's published form by id or key."""
        return self._forms.published(self._principal, form_ref)


def new_definition(
    principal: Principal, parsed: dict[str, Any], now: datetime, template_key: str = ""
) -> dict[str, Any]:
    """The stored document of a new versioned definition (automation, pool, approval process): version 1."""
    doc: dict[str, Any] = {
        "_id": uuid.uuid4().hex,
        "tenant_id": principal.tenant_id,
        **parsed,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "created_by": principal.user_id,
        "updated_by": principal.user_id,
        "deleted": False,
    }
    if template_key:
        doc["template_key"] = template_key
    return doc


def require_admin(principal: Principal) -> None:
    """403 unless the caller administers the tenant (or is one of the platform's services)."""
    if not (principal.is_admin or principal.kind == "service"):
        raise werr.manage_forbidden(principal.locale)


def iso(value: Any) -> Any:
    """A datetime as ISO UTC text with a Z; anything else unchanged."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if isinstance(value, datetime) else value
