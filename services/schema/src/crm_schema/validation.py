"""validate_data: user input -> normalised values to store, or field errors in the user's language."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from crm_runtime.errors import FieldError
from crm_schema import values as v
from crm_schema._text import field_label
from crm_schema.context import Invalid, ValidationContext, ValidationResult
from crm_schema.formula import FormulaError, evaluate_formula, formula_references
from crm_schema.i18n import message
from crm_schema.registry import FIELD_TYPES, SYSTEM_FIELD_NAMES

RESULT_TYPES = ("number", "money", "text", "date", "boolean")


def contains_operator(value: Any) -> bool:
    """True when a dict anywhere in `value` has a key starting with "$" or containing "." (query injection)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or contains_operator(item):
                return True
        return False
    if isinstance(value, list | tuple):
        return any(contains_operator(item) for item in value)
    return False


def field_error(path: str, rule: str, label: str, locale: str, params: dict[str, Any]) -> FieldError:
    """A FieldError whose message names the field by `label` in `locale`."""
    shown = {k: val for k, val in params.items() if val is not None}
    return FieldError(path, rule, message(rule, locale, label=label, **shown), shown)


def _required_when_holds(rule: Any, merged: dict[str, Any]) -> bool:
    if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
        return False
    current = merged.get(rule["field"])
    if "in" in rule and isinstance(rule["in"], list):
        wanted = rule["in"]
    elif "equals" in rule:
        wanted = [rule["equals"]]
    elif rule.get("not_empty") is True:
        return not v.is_empty(current)
    else:
        return False
    if isinstance(current, list):
        return any(item in wanted for item in current)
    return current in wanted


def formula_input(field: dict[str, Any], stored: Any) -> Any:
    """A stored value as a formula sees it: money in yuan (Decimal), dates as date objects."""
    if stored is None:
        return None
    ftype = field.get("type")
    if ftype == "formula":
        ftype = field.get("result_type") or "number"
    if ftype == "money" and isinstance(stored, int):
        return Decimal(stored) / 100
    if ftype in ("number", "percent", "integer", "rating", "rollup") and isinstance(stored, float):
        return Decimal(repr(stored))
    if ftype == "date" and isinstance(stored, str):
        try:
            return date.fromisoformat(stored)
        except ValueError:
            return None
    if ftype == "datetime" and isinstance(stored, datetime):
        return stored
    return stored


def formula_output(field: dict[str, Any], result: Any) -> Any:
    """A formula result in the stored form its result_type names (None when it cannot be)."""
    if result is None:
        return None
    kind = field.get("result_type") or "number"
    if kind == "text":
        if isinstance(result, Decimal):
            return format(result.normalize(), "f")
        return str(result)
    if kind == "boolean":
        return bool(result)
    if kind == "date":
        if isinstance(result, datetime):
            return result.date().isoformat()
        if isinstance(result, date):
            return result.isoformat()
        if isinstance(result, str):
            try:
                return date.fromisoformat(result).isoformat()
            except ValueError:
                return None
        return None
    if isinstance(result, bool) or not isinstance(result, int | float | Decimal):
        return None
    number = Decimal(repr(result)) if isinstance(result, float) else Decimal(result)
    if not number.is_finite():
        return None
    if kind == "money":
        return int((number * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    scale = field.get("scale")
    places = scale if isinstance(scale, int) and not isinstance(scale, bool) and 0 <= scale <= 10 else 6
    return v.number_out(number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def formula_order(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Formula fields in dependency order (a formula after the formulas it reads); cycles are left out."""
    formulas = {f["key"]: f for f in fields if f.get("type") == "formula" and isinstance(f.get("key"), str)}
    refs: dict[str, set[str]] = {}
    for key, field in formulas.items():
        try:
            refs[key] = formula_references(str(field.get("expression", ""))) & set(formulas)
        except FormulaError:
            refs[key] = set()
    ordered: list[dict[str, Any]] = []
    done: set[str] = set()
    progress = True
    while progress:
        progress = False
        for key, field in formulas.items():
            if key not in done and refs[key] <= done:
                done.add(key)
                ordered.append(field)
                progress = True
    return ordered


def compute_formulas(fields: list[dict[str, Any]], merged: dict[str, Any], ctx: ValidationContext) -> dict[str, Any]:
    """Every formula field's stored value over `merged` (stored values); a failed evaluation gives None."""
    by_key = {f.get("key"): f for f in fields}
    inputs = {key: formula_input(by_key[key], val) for key, val in merged.items() if key in by_key}
    today = ctx.now.astimezone(ctx.tz).date()
    out: dict[str, Any] = {}
    for field in formula_order(fields):
        try:
            result = formula_output(field, evaluate_formula(str(field.get("expression", "")), inputs, today=today))
        except FormulaError:
            result = None
        out[field["key"]] = result
        inputs[field["key"]] = formula_input(field, result)
    return out


class _Validator:
    """One validation run over a field list (recursing into sub-table rows)."""

    def __init__(self, ctx: ValidationContext, allow_read_only: bool) -> None:
        self.ctx = ctx
        self.locale = getattr(ctx, "locale", "zh-CN") or "zh-CN"
        self.allow_read_only = allow_read_only

    def error(self, path: str, rule: str, label: str, **params: Any) -> FieldError:
        return field_error(path, rule, label, self.locale, params)

    def value(self, field: dict[str, Any], raw: Any, path: str, label: str, errors: list[FieldError]) -> Any:
        """The stored form of one input value; appends to `errors` and returns None when it fails."""
        if v.is_empty(raw):
            return None
        ftype = FIELD_TYPES[field["type"]]
        if field["type"] == "sub_table":
            return self.rows(field, raw, path, label, errors)
        if ftype.coerce is None:
            errors.append(self.error(path, "read_only", label))
            return None
        try:
            stored = ftype.coerce(field, raw, self.ctx)
            if stored == "":  # nothing left once spaces and control characters are gone
                return None
            v.check_constraints(field, stored, self.ctx)
            if field["type"] == "encrypted_text":
                stored = self.ctx.encrypt(stored)
        except Invalid as exc:
            errors.append(self.error(path, exc.rule, label, **exc.params))
            return None
        return stored

    def rows(self, field: dict[str, Any], raw: Any, path: str, label: str, errors: list[FieldError]) -> Any:
        if not isinstance(raw, list):
            errors.append(self.error(path, "type", label, field_type="sub_table"))
            return None
        limit = field.get("max_length")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else 500
        if len(raw) > limit:
            errors.append(self.error(path, "max_length", label, max_length=limit))
            return None
        sub_fields = [f for f in field.get("fields") or [] if isinstance(f, dict)]
        out = []
        for index, row in enumerate(raw):
            row_path = f"{path}[{index}]"
            if not isinstance(row, dict):
                errors.append(self.error(row_path, "format", label, kind="row"))
                continue
            result = self.run(sub_fields, row, None, f"{row_path}.", f"{label} #{index + 1} ")
            errors.extend(result.errors)
            out.append(result.values)
        return out

    def run(
        self, fields: list[dict[str, Any]], data: Any, existing: dict[str, Any] | None, path: str, label_prefix: str
    ) -> ValidationResult:
        result = ValidationResult()
        errors = result.errors
        by_key = {
            f["key"]: f
            for f in fields
            if isinstance(f, dict) and isinstance(f.get("key"), str) and f.get("type") in FIELD_TYPES
        }
        if not isinstance(data, dict):
            errors.append(self.error(path.rstrip(".") or "data", "type", label_prefix.strip() or "data"))
            return result

        def label_of(field: dict[str, Any]) -> str:
            return label_prefix + field_label(field, self.locale)

        stored: dict[str, Any] = {}
        failed: set[str] = set()
        for key, raw in data.items():
            where = f"{path}{key}"
            field = by_key.get(key) if isinstance(key, str) else None
            if isinstance(key, str) and key in SYSTEM_FIELD_NAMES:
                errors.append(self.error(where, "system_field", label_prefix + key))
                continue
            if field is None:
                errors.append(self.error(where, "unknown_field", label_prefix + str(key)))
                continue
            ftype = FIELD_TYPES[field["type"]]
            if ftype.system:
                errors.append(self.error(where, "system_field", label_of(field)))
                continue
            # a platform value that has a coercer (an approval's status) is written by the platform itself;
            # one computed on read (formula, lookup, rollup) never is
            platform_written = self.allow_read_only and ftype.coerce is not None and field["type"] == "approval_status"
            if (ftype.computed and not platform_written) or (
                field.get("read_only") is True and not self.allow_read_only
            ):
                errors.append(self.error(where, "read_only", label_of(field)))
                continue
            if contains_operator(raw):
                errors.append(self.error(where, "operator", label_of(field)))
                failed.add(key)
                continue
            before = len(errors)
            value = self.value(field, raw, where, label_of(field), errors)
            if len(errors) > before:
                failed.add(key)
                continue
            stored[key] = value

        creating = existing is None
        if creating:
            for key, field in by_key.items():
                ftype = FIELD_TYPES[field["type"]]
                if key in data or ftype.system or ftype.computed or field.get("default") is None:
                    continue
                default = self.value(field, field["default"], f"{path}{key}", label_of(field), errors)
                if default is None:
                    failed.add(key)
                stored[key] = default

        merged = {**(existing or {}), **stored}
        for key, field in by_key.items():
            ftype = FIELD_TYPES[field["type"]]
            if ftype.system or ftype.computed or key in failed:
                continue
            rule = field.get("required_when")
            touched = creating or key in data or (isinstance(rule, dict) and rule.get("field") in data)
            if not touched:
                continue
            needed = field.get("required") is True or _required_when_holds(rule, merged)
            if needed and v.is_empty(merged.get(key)):
                errors.append(self.error(f"{path}{key}", "required", label_of(field)))

        formulas = compute_formulas(list(by_key.values()), merged, self.ctx)
        for key, value in formulas.items():
            if creating or (existing or {}).get(key) != value:
                stored[key] = value

        if creating:
            stored = {k: val for k, val in stored.items() if val is not None}
        result.values = stored
        return result


def validate_data(
    fields: list[dict[str, Any]],
    data: dict[str, Any],
    *,
    existing: dict[str, Any] | None,
    ctx: ValidationContext,
    allow_read_only: bool = False,
) -> ValidationResult:
    """Check and normalise record input against the form's fields.

    Create (existing None): defaults applied, required fields enforced, empty values left out.
    Update (existing = stored data): only the given keys are checked (None/"" clears a value,
    stored as None) plus the required_when rules they affect; formulas are recomputed over
    existing + new values and returned when they change. `allow_read_only` lets the platform
    itself (automations) write fields marked read_only; computed and system fields stay refused.
    """
    return _Validator(ctx, allow_read_only).run(fields, data, existing, "", "")
