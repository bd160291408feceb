"""JSON in and out: responses with ISO-8601 datetimes, and parsing of services' *_json strings."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from flask import Response


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response (UTF-8, datetimes as ISO-8601)."""
    resp = Response(json.dumps(body, ensure_ascii=False, default=_default), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def parse(text: str) -> Any:
    """A JSON document a service returned as text (empty -> None)."""
    return json.loads(text) if text else None


def dumps(value: Any) -> str:
    """JSON text for a request *_json field."""
    return json.dumps(value, ensure_ascii=False, default=_default)
