"""Pure rules on apps, form drafts and field keys."""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Iterator
from typing import Any

from crm_runtime.errors import FieldError
from form_service.domain.errors import field_error
from form_service.domain.models import LocalText

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
LOCALES = ("zh-CN", "en")


def is_valid_key(key: str) -> bool:
    """True for a stable key: a lower-case letter, then lower-case letters, digits or _ (max 63)."""
    return bool(KEY_RE.fullmatch(key))


def new_key(prefix: str) -> str:
    """A fresh random key like `f_3fa2b19c` (form/field) or `a_...` (app)."""
    return f"{prefix}_{secrets.token_hex(4)}"


def local_text(value: Any) -> LocalText:
    """Normalise a name: a plain string serves every locale; a dict fills a missing locale from the other."""
    if isinstance(value, str):
        text = value.strip()
        return {loc: text for loc in LOCALES} if text else {}
    if isinstance(value, dict):
        out = {loc: str(value[loc]).strip() for loc in LOCALES if isinstance(value.get(loc), str)}
        out = {k: v for k, v in out.items() if v}
        if not out:
            return {}
        fallback = out.get("zh-CN") or out["en"]
        return {loc: out.get(loc, fallback) for loc in LOCALES}
    return {}


def with_field_keys(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `fields` in which every field without a key got a generated one (sub-table rows too)."""
    out = copy.deepcopy(fields)
    for field in out:
        if not field.get("key"):
            field["key"] = new_key("f")
        if isinstance(field.get("fields"), list):
            for sub in field["fields"]:
                if isinstance(sub, dict) and not sub.get("key"):
                    sub["key"] = new_key("f")
    return out


def walk_fields(fields: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every field with its path: `key` at the top, `parent.key` inside a sub-table."""
    for field in fields:
        key = str(field.get("key", ""))
        yield key, field
        if isinstance(field.get("fields"), list):
            for sub in field["fields"]:
                if isinstance(sub, dict):
                    yield f"{key}.{sub.get('key', '')}", sub


def field_types(fields: list[dict[str, Any]]) -> dict[str, str]:
    """path -> type of every field (sub-table children included)."""
    return {path: str(field.get("type", "")) for path, field in walk_fields(fields)}


def type_changes(fields: list[dict[str, Any]], locked: dict[str, str], locale: str) -> list[FieldError]:
    """Errors for fields whose key was published with another type (records hold values of that type)."""
    errors = []
    for path, new_type in field_types(fields).items():
        old = locked.get(path)
        if old is not None and old != new_type:
            errors.append(field_error(path, "type_immutable", locale, field=path, old=old, new=new_type))
    return errors


def default_title_field(fields: list[dict[str, Any]]) -> str:
    """The first text field's key (else the first field's, else empty): what names a record by default."""
    for field in fields:
        if field.get("type") == "text":
            return str(field.get("key", ""))
    return str(fields[0].get("key", "")) if fields else ""


def field_shape_errors(fields: Any, locale: str) -> list[FieldError]:
    """Errors when `fields` is not a list of objects (anything finer is crm_schema's job at publish)."""
    if not isinstance(fields, list):
        return [field_error("fields", "fields_not_list", locale)]
    return [
        field_error(f"fields[{i}]", "field_not_object", locale) for i, f in enumerate(fields) if not isinstance(f, dict)
    ]
