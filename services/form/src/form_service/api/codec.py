"""JSON text <-> Python values for the `*_json` fields of the form protos."""

from __future__ import annotations

import json
from typing import Any

from form_service.domain.errors import invalid


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 text kept readable (Chinese labels)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def parse_object(text: str, field: str, locale: str) -> dict[str, Any]:
    """A JSON object from a request field (empty text is {}); 422 naming `field` otherwise."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise invalid(field, "invalid_json", locale, error=str(exc)) from None
    if not isinstance(value, dict):
        raise invalid(field, "not_object", locale)
    return value


def parse_name(text: str) -> Any:
    """A name given as a JSON object, a JSON string, or (leniently) as bare text."""
    stripped = text.strip()
    if not stripped:
        return ""
    try:
        return json.loads(stripped)
    except ValueError:
        return stripped
