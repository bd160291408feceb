"""Field-definition checks, run by the form service when a form version is published."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm_schema import values as v
from crm_schema.autonumber import pattern_problem
from crm_schema.context import DefinitionError, Invalid
from crm_schema.formula import FormulaError, formula_references
from crm_schema.registry import FIELD_TYPES, SYSTEM_FIELD_NAMES
from crm_schema.validation import RESULT_TYPES, formula_order

KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BOOL_PROPS = ("required", "unique", "filterable", "searchable", "read_only", "dedupe", "many")
_ROLLUP_AGGS = ("count", "sum", "min", "max", "avg")
_NO_DEFAULT = frozenset({"relation", "attachment", "image", "encrypted_text", "sub_table"})
_OPTION_TYPES = frozenset({"select", "multi_select", "stage"})
_BOUND_TYPES = frozenset({"number", "integer", "money", "percent", "rating", "date", "datetime"})


class _DefinitionContext:
    """Enough of a ValidationContext to check default values (no lookups happen for those types)."""

    locale = "en"
    tz = ZoneInfo("Asia/Shanghai")
    role = ""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        return set()

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def encrypt(self, plaintext: str) -> str:
        return plaintext

    def decrypt(self, token: str) -> str:
        return token


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label_ok(label: Any) -> bool:
    if isinstance(label, str):
        return bool(label.strip())
    return isinstance(label, dict) and any(isinstance(t, str) and t.strip() for t in label.values())


class _Checker:
    def __init__(self, field: dict[str, Any], where: str) -> None:
        self.field = field
        self.where = where
        self.errors: list[DefinitionError] = []
        self.label = field.get("label") if _label_ok(field.get("label")) else str(field.get("key", ""))

    def add(self, rule: str, **params: Any) -> None:
        params.setdefault("key", str(self.field.get("key", "")))
        params.setdefault("label", self.label)
        self.errors.append(DefinitionError(self.where, rule, params))

    def bad(self, prop: str, reason: str) -> None:
        self.add("invalid_property", property=prop, reason=reason)


def _check_bounds(c: _Checker, ftype: str) -> None:
    field = c.field
    low, high = field.get("min"), field.get("max")
    for prop, bound in (("min", low), ("max", high)):
        if bound is None:
            continue
        if ftype not in _BOUND_TYPES:
            c.add("unsupported_property", property=prop)
        elif ftype in ("date", "datetime"):
            parsed = v.parse_datetime(bound, ZoneInfo("UTC")) if isinstance(bound, str) else None
            if parsed is None:
                c.bad(prop, "a date such as 2024-01-01")
        elif not _is_number(bound):
            c.bad(prop, "a number")
    if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
        c.bad("min", "greater than max")
    for prop in ("min_length", "max_length"):
        value = field.get(prop)
        if value is not None and (not _is_int(value) or value < 0):
            c.bad(prop, "a whole number >= 0")
    least, most = field.get("min_length"), field.get("max_length")
    if isinstance(least, int) and isinstance(most, int) and least > most:
        c.bad("min_length", "greater than max_length")


def _check_options(c: _Checker, ftype: str) -> None:
    opts = c.field.get("options")
    if ftype not in _OPTION_TYPES and ftype != "tags":
        if opts:
            c.add("unsupported_property", property="options")
        return
    if opts is None and ftype == "tags":
        return
    if not isinstance(opts, list) or (not opts and ftype != "tags"):
        c.add("missing_options")
        return
    seen: set[str] = set()
    for opt in opts:
        value = opt.get("value") if isinstance(opt, dict) else opt
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            c.bad("options", "each option needs a value (text, at most 100 long)")
            continue
        if value in seen:
            c.add("duplicate_option", value=value)
        seen.add(value)
        if isinstance(opt, dict) and "label" in opt and not _label_ok(opt["label"]):
            c.bad("options", f"the option {value} needs a label")
        if ftype == "stage" and isinstance(opt, dict) and opt.get("probability") is not None:
            prob = opt["probability"]
            if not _is_number(prob) or not 0 <= prob <= 100:
                c.bad("options", f"the probability of {value} must be 0-100")


def _check_type_specific(c: _Checker, ftype: str, siblings: dict[str, dict[str, Any]], nested: bool) -> None:
    field = c.field
    key = field.get("key")
    if ftype == "relation":
        rel = field.get("relation")
        if not isinstance(rel, dict) or not isinstance(rel.get("form_id"), str) or not rel["form_id"].strip():
            c.bad("relation", "needs form_id")
        elif "many" in rel and not isinstance(rel["many"], bool):
            c.bad("relation", "many must be true or false")
    elif ftype == "auto_number":
        problem = pattern_problem(field.get("pattern"))
        if problem:
            c.add("invalid_pattern", reason=problem)
    elif ftype == "formula":
        if field.get("result_type", "number") not in RESULT_TYPES:
            c.bad("result_type", "one of " + ", ".join(RESULT_TYPES))
        try:
            refs = formula_references(str(field.get("expression") or ""))
        except FormulaError as exc:
            c.add("formula_syntax", reason=str(exc))
            refs = set()
        for ref in sorted(refs):
            if ref == key:
                c.add("self_reference")
            elif ref not in siblings:
                c.add("unknown_reference", ref=ref)
    elif ftype == "lookup":
        spec = field.get("lookup")
        rel_field = spec.get("relation_field") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(spec.get("field"), str) or not spec["field"]:
            c.bad("lookup", "needs relation_field and field")
        elif rel_field not in siblings or siblings[rel_field].get("type") != "relation":
            c.add("unknown_reference", ref=str(rel_field))
    elif ftype == "rollup":
        spec = field.get("rollup")
        if not isinstance(spec, dict) or not all(
            isinstance(spec.get(p), str) and spec[p] for p in ("form_id", "relation_field")
        ):
            c.bad("rollup", "needs form_id and relation_field")
        elif spec.get("agg", "count") not in _ROLLUP_AGGS:
            c.bad("rollup", "agg must be one of " + ", ".join(_ROLLUP_AGGS))
        elif spec.get("agg", "count") != "count" and not (isinstance(spec.get("field"), str) and spec["field"]):
            c.bad("rollup", "needs the field to aggregate")
    elif ftype == "encrypted_text":
        roles = field.get("readable_roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            c.bad("readable_roles", "a list of role names")
    elif ftype in ("attachment", "image"):
        for prop in ("max_size", "max_files"):
            if field.get(prop) is not None and (not _is_int(field[prop]) or field[prop] < 1):
                c.bad(prop, "a whole number >= 1")
        accept = field.get("accept")
        if accept is not None and (not isinstance(accept, list) or not all(isinstance(a, str) for a in accept)):
            c.bad("accept", "a list of content types such as image/* or .pdf")
    elif ftype == "sub_table":
        sub = field.get("fields")
        if nested:
            c.add("nested_sub_table")
        elif not isinstance(sub, list) or not sub or not all(isinstance(s, dict) for s in sub):
            c.bad("fields", "a non-empty list of field definitions")
        else:
            for sub_field in sub:
                if FIELD_TYPES.get(str(sub_field.get("type"))) and (
                    sub_field.get("type") == "sub_table" or FIELD_TYPES[str(sub_field.get("type"))].system
                ):
                    c.add("nested_sub_table")
            for err in _validate_list(sub, nested=True):
                c.errors.append(DefinitionError(f"{key}.{err.field}", err.rule, err.params))
    if field.get("scale") is not None and (ftype not in ("number", "percent", "formula") or not _is_int(field["scale"])
                                           or not 0 <= field["scale"] <= 10):  # fmt: skip
        c.bad("scale", "a whole number 0-10 on number fields")
    if field.get("max_rating") is not None and (not _is_int(field["max_rating"]) or not 1 <= field["max_rating"] <= 10):
        c.bad("max_rating", "a whole number 1-10")


def _check_default(c: _Checker, ftype: str) -> None:
    default = c.field.get("default")
    if default is None:
        return
    meta = FIELD_TYPES[ftype]
    if ftype in _NO_DEFAULT or meta.system or meta.computed or meta.coerce is None:
        c.add("unsupported_property", property="default")
        return
    ctx = _DefinitionContext()
    try:
        stored = meta.coerce(c.field, default, ctx)
        v.check_constraints(c.field, stored, ctx)
    except Invalid as exc:
        c.add("invalid_default", reason=exc.rule)


def validate_definition(field: dict[str, Any], siblings: list[dict[str, Any]]) -> list[DefinitionError]:
    """Problems with one field definition; `siblings` are the form's other fields (for references)."""
    return _validate_one(field, siblings, nested=False)


def _validate_one(field: Any, siblings: list[dict[str, Any]], *, nested: bool) -> list[DefinitionError]:
    if not isinstance(field, dict):
        return [DefinitionError("fields", "invalid_fields", {})]
    key = field.get("key")
    where = key if isinstance(key, str) and key else "fields"
    c = _Checker(field, where)
    raw_type = field.get("type")
    meta = FIELD_TYPES.get(raw_type) if isinstance(raw_type, str) else None
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        c.add("invalid_key", key=str(key))
    elif key in SYSTEM_FIELD_NAMES and not (meta and meta.system):
        c.add("reserved_key")
    if meta is None:
        c.add("unknown_type", type=str(raw_type))
        return c.errors
    ftype = meta.name
    if not _label_ok(field.get("label")):
        c.add("invalid_label")
    if "help" in field and field["help"] is not None and not isinstance(field["help"], str | dict):
        c.bad("help", "text or {zh-CN, en}")
    for prop in _BOOL_PROPS:
        if prop in field and field[prop] is not None and not isinstance(field[prop], bool):
            c.bad(prop, "true or false")
    if field.get("unique") is True and not meta.unique_allowed:
        c.add("unsupported_property", property="unique")
    if field.get("required") is True and (meta.system or meta.computed):
        c.add("unsupported_property", property="required")
    regex = field.get("regex")
    if regex is not None:
        if ftype not in v.REGEX_TYPES:
            c.add("unsupported_property", property="regex")
        elif not isinstance(regex, str) or len(regex) > 500:
            c.bad("regex", "a regular expression")
        else:
            try:
                re.compile(regex)
            except re.error as exc:
                c.bad("regex", str(exc))
    sibling_map = {s["key"]: s for s in siblings if isinstance(s, dict) and isinstance(s.get("key"), str)}
    sibling_map.pop(key, None) if isinstance(key, str) else None
    rule = field.get("required_when")
    if rule is not None:
        if not isinstance(rule, dict) or not isinstance(rule.get("field"), str):
            c.bad("required_when", 'like {"field": "stage", "in": ["lost"]}')
        elif rule["field"] == key:
            c.add("self_reference")
        elif rule["field"] not in sibling_map:
            c.add("unknown_reference", ref=rule["field"])
        elif not (isinstance(rule.get("in"), list) or "equals" in rule or rule.get("not_empty") is True):
            c.bad("required_when", "needs in, equals or not_empty")
    _check_bounds(c, ftype)
    _check_options(c, ftype)
    _check_type_specific(c, ftype, sibling_map, nested)
    _check_default(c, ftype)
    return c.errors


def _validate_list(fields: Any, *, nested: bool) -> list[DefinitionError]:
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        return [DefinitionError("fields", "invalid_fields", {})]
    errors: list[DefinitionError] = []
    seen: set[str] = set()
    for field in fields:
        key = field.get("key")
        if isinstance(key, str) and key in seen:
            errors.append(DefinitionError(key, "duplicate_key", {"key": key, "label": field.get("label") or key}))
        if isinstance(key, str):
            seen.add(key)
        errors.extend(_validate_one(field, fields, nested=nested))
    formulas = [f for f in fields if f.get("type") == "formula" and isinstance(f.get("key"), str)]
    ordered = {f["key"] for f in formula_order(fields)}
    stuck = [f["key"] for f in formulas if f["key"] not in ordered]
    if stuck:
        self_refs = set()
        for f in formulas:
            try:
                if f["key"] in formula_references(str(f.get("expression") or "")):
                    self_refs.add(f["key"])
            except FormulaError:
                continue
        cycle = [k for k in stuck if k not in self_refs]
        if cycle:
            errors.append(DefinitionError(cycle[0], "formula_cycle", {"cycle": " -> ".join(cycle), "key": cycle[0]}))
    return errors


def validate_form_fields(fields: list[dict[str, Any]]) -> list[DefinitionError]:
    """Problems with a form's whole field list: each field, unique keys, references and formula cycles."""
    return _validate_list(fields, nested=False)
