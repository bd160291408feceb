"""to_output: a stored value -> its API JSON value (money as text, datetimes as ISO UTC, masking)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from crm_schema import values as v
from crm_schema.context import ValidationContext

_DATETIME_TYPES = frozenset({"datetime", "created_at", "updated_at", "last_activity_at"})


def mask(plaintext: str) -> str:
    """ "13800138000" -> "138****8000"; short values become "******"."""
    if len(plaintext) >= 8:
        keep = 3 if len(plaintext) < 15 else 4
        return plaintext[:keep] + "****" + plaintext[-4:]
    return "******"


def _generic(stored: Any) -> Any:
    if isinstance(stored, datetime):
        return v.datetime_to_text(stored)
    if isinstance(stored, date):
        return stored.isoformat()
    if isinstance(stored, Decimal):
        return v.number_out(stored)
    if isinstance(stored, list):
        return [_generic(item) for item in stored]
    if isinstance(stored, dict):
        return {k: _generic(item) for k, item in stored.items()}
    return stored


def _datetime_text(stored: Any) -> Any:
    if isinstance(stored, datetime):
        return v.datetime_to_text(stored)
    if isinstance(stored, str):
        moment = v.parse_datetime(stored, UTC)
        return v.datetime_to_text(moment) if moment else stored
    return stored


def to_output(field: dict[str, Any], stored: Any, *, ctx: ValidationContext) -> Any:
    """The API JSON value of a stored value of `field`."""
    if stored is None:
        return None
    ftype = field.get("type")
    if ftype == "formula" or (ftype in ("lookup", "rollup") and field.get("result_type")):
        ftype = field.get("result_type") or "number"
    if ftype == "money":
        if isinstance(stored, int) and not isinstance(stored, bool):
            return v.fen_to_text(stored)
        if isinstance(stored, float) and stored.is_integer():
            return v.fen_to_text(int(stored))
        return _generic(stored)
    if ftype in _DATETIME_TYPES:
        return _datetime_text(stored)
    if ftype == "encrypted_text":
        if not isinstance(stored, str):
            return "******"
        try:
            plaintext = ctx.decrypt(stored)
        except Exception:  # noqa: BLE001 - a token we cannot read is shown masked, never raised to the reader
            return "******"
        roles = field.get("readable_roles") or []
        return plaintext if ctx.role in roles else mask(plaintext)
    if ftype == "sub_table" and isinstance(stored, list):
        sub_fields = {f.get("key"): f for f in field.get("fields") or [] if isinstance(f, dict)}
        rows = []
        for row in stored:
            if isinstance(row, dict):
                rows.append(
                    {
                        k: to_output(sub_fields[k], val, ctx=ctx) if k in sub_fields else _generic(val)
                        for k, val in row.items()
                    }
                )
        return rows
    return _generic(stored)
