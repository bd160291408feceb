"""JSON text <-> Python values for the `*_json` fields of the record protos."""

from __future__ import annotations

import json
from typing import Any

from record_service.domain.errors import invalid


def dumps(value: Any) -> str:
    """Compact JSON, Chinese kept readable."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def loads(text: str, field: str, locale: str, *, default: Any = None) -> Any:
    """Parse a request's JSON text (empty text is `default`); 422 naming `field` otherwise."""
    if not text or not text.strip():
        return default
    try:
        return json.loads(text)
    except ValueError as exc:
        raise invalid(field, "invalid_json", locale, error=str(exc)) from None


def parse_object(text: str, field: str, locale: str) -> dict[str, Any]:
    """A JSON object (empty text is {})."""
    value = loads(text, field, locale, default={})
    if not isinstance(value, dict):
        raise invalid(field, "not_object", locale)
    return value
