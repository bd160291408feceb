"""What validation needs from its caller, and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from crm_runtime.errors import FieldError


@runtime_checkable
class ValidationContext(Protocol):
    """The caller's side of validation: locale, tenant time zone, clock, role and lookups.

    The record service implements it over its stores; tests use a plain fake.
    """

    locale: str
    tz: ZoneInfo
    now: datetime
    role: str

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        """The ids among `ids` that are not live records of `form_id` for this tenant."""
        ...

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Uploaded files by id: {id: {id, name, size, content_type}}; unknown ids are absent."""
        ...

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext for an encrypted_text value."""
        ...

    def decrypt(self, token: str) -> str:
        """Plaintext of a ciphertext made by `encrypt`."""
        ...


@dataclass
class ValidationResult:
    """The outcome of validate_data: normalised values to store, or the errors (messages in ctx.locale)."""

    values: dict[str, Any] = dc_field(default_factory=dict)
    errors: list[FieldError] = dc_field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is nothing wrong with the input."""
        return not self.errors


@dataclass
class DefinitionError:
    """One problem with a field definition; render with message(rule, locale, **params)."""

    field: str
    rule: str
    params: dict[str, Any] = dc_field(default_factory=dict)


class Invalid(Exception):
    """A value broke one rule; raised by the value rules, turned into a FieldError by the caller."""

    def __init__(self, rule: str, **params: Any) -> None:
        super().__init__(rule)
        self.rule = rule
        self.params = params
