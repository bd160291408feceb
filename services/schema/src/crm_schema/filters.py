"""filter_value: a filter operand from a query -> the stored representation it compares with."""

from __future__ import annotations

from typing import Any

from crm_runtime.errors import ValidationFailed
from crm_schema import values as v
from crm_schema._text import field_label, strip_controls
from crm_schema.context import Invalid, ValidationContext
from crm_schema.registry import FIELD_TYPES, LIST_OPS
from crm_schema.validation import contains_operator, field_error

MAX_IN_VALUES = 1000
_OPERAND_MAX = 200


def operators_for(field: dict[str, Any]) -> frozenset[str]:
    """The filter operators `field` supports."""
    ftype = FIELD_TYPES.get(str(field.get("type")))
    if ftype is None:
        return frozenset()
    if field.get("type") in ("relation", "user", "department") and v.is_many(field):
        return LIST_OPS
    return ftype.ops


def filter_path(field: dict[str, Any]) -> str:
    """The suffix under the field's key that a filter compares ("" or ".province" for region/address)."""
    return ".province" if field.get("type") in ("region", "address") else ""


def _element_field(field: dict[str, Any]) -> dict[str, Any]:
    """The definition an operand is coerced with: a formula as its result type, no checks against existence."""
    ftype = field.get("type")
    if ftype == "formula":
        return {
            **field,
            "type": {"text": "text"}.get(str(field.get("result_type")), field.get("result_type") or "number"),
        }
    if ftype in ("lookup", "rollup") and field.get("result_type"):
        return {**field, "type": field["result_type"]}
    return field


def _coerce_one(field: dict[str, Any], value: Any, op: str, ctx: ValidationContext) -> Any:
    ftype = str(field.get("type"))
    if ftype in ("region", "address"):
        if isinstance(value, dict):
            value = value.get("province")
        if not isinstance(value, str):
            raise Invalid("format", kind="province", value=value)
        full = v.china.province_name(value)
        if full is None:
            raise Invalid("format", kind="province", value=value)
        return full
    if ftype in ("multi_select",):
        return v.match_option(field, value)
    if ftype == "tags":
        return v.coerce_tags(field, [value], ctx)[0]
    if ftype in ("relation", "user", "department", "owner", "created_by", "updated_by", "department_system"):
        return v._one_id(value)
    if ftype == "lookup":
        if isinstance(value, str | int | float | bool):
            return value.strip() if isinstance(value, str) else value
        raise Invalid("type", field_type=ftype)
    coerce = FIELD_TYPES[ftype].coerce
    if coerce is None:
        raise Invalid("type", field_type=ftype)
    if op in ("contains", "starts_with") and ftype not in ("tags",):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise Invalid("type", field_type="text")
        text = strip_controls(str(value), multiline=False).strip()
        if ftype in ("mobile", "phone"):
            text = "".join(ch for ch in text if ch.isdigit() or ch == "-")
        if not text:
            raise Invalid("required")
        if len(text) > _OPERAND_MAX:
            raise Invalid("max_length", max_length=_OPERAND_MAX)
        return text
    if ftype in ("relation",):
        return v._one_id(value)
    return coerce(field, value, ctx)


def filter_value(field: dict[str, Any], op: str, value: Any, *, ctx: ValidationContext) -> Any:
    """Validate and coerce a filter operand to the stored form (money "100" -> 10000 fen, ...).

    Operators: eq ne gt gte lt lte between(list of 2) in nin(list) contains starts_with all(list)
    empty not_empty (operand ignored, returns None). Raises ValidationFailed with one FieldError
    (rule "filter_operator", "operator", "type", "format", "option", ...) naming the field.
    """
    locale = getattr(ctx, "locale", "zh-CN") or "zh-CN"
    key = str(field.get("key", ""))
    label = field_label(field, locale)

    def fail(rule: str, **params: Any) -> ValidationFailed:
        return ValidationFailed([field_error(key, rule, label, locale, params)])

    if op not in operators_for(field):
        raise fail("filter_operator", op=op)
    if op in ("empty", "not_empty"):
        return None
    if contains_operator(value):
        raise fail("operator")
    target = _element_field(field)
    if target.get("type") not in FIELD_TYPES:
        raise fail("filter_operator", op=op)
    try:
        if op in ("in", "nin", "all", "between"):
            if not isinstance(value, list | tuple):
                raise Invalid("type", field_type="list")
            if op == "between" and len(value) != 2:
                raise Invalid("format", kind="between")
            if len(value) > MAX_IN_VALUES:
                raise Invalid("max_length", max_length=MAX_IN_VALUES)
            return [_coerce_one(target, item, op, ctx) for item in value]
        if v.is_empty(value):
            raise Invalid("required")
        return _coerce_one(target, value, op, ctx)
    except Invalid as exc:
        raise fail(exc.rule, **exc.params) from None
