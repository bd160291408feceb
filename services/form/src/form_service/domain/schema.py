"""The form engine's use of crm_schema: field-definition checks in the caller's locale."""

from __future__ import annotations

from typing import Any

import crm_schema
from crm_runtime.errors import FieldError


def definition_errors(fields: list[dict[str, Any]], locale: str) -> list[FieldError]:
    """crm_schema's verdict on a whole field list, as FieldErrors naming the field key and rule."""
    out = []
    for err in crm_schema.validate_form_fields(fields):
        params = dict(err.params or {})
        out.append(FieldError(err.field, err.rule, crm_schema.message(err.rule, locale, **params), params))
    return out


def field_types_catalogue() -> list[dict[str, Any]]:
    """The JSON catalogue of field types (ListFieldTypes)."""
    return crm_schema.field_types_catalogue()
