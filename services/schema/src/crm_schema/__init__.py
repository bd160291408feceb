"""crm_schema: the field types of the form engine (pure Python).

Shared by the form service (definition checks at publish) and the record service
(value validation and normalisation, output, filters, search tokens, dedupe keys,
formulas, auto numbers). See README.md for the field-definition format.
"""

from crm_schema.autonumber import render_auto_number, sequence_scope
from crm_schema.context import DefinitionError, Invalid, ValidationContext, ValidationResult
from crm_schema.dedupe import company_key, dedupe_keys, normalise_unique
from crm_schema.definitions import validate_definition, validate_form_fields
from crm_schema.filters import filter_path, filter_value, operators_for
from crm_schema.formula import FormulaError, evaluate_formula, formula_references
from crm_schema.i18n import message
from crm_schema.limits import filter_shape_problem
from crm_schema.output import mask, to_output
from crm_schema.registry import FIELD_TYPES, INPUT_TYPES, SYSTEM_FIELD_NAMES, FieldType, field_types_catalogue
from crm_schema.search import is_prefix, query_tokens, search_text, search_tokens, token_matches
from crm_schema.validation import compute_formulas, contains_operator, validate_data

__all__ = [
    "FIELD_TYPES",
    "INPUT_TYPES",
    "SYSTEM_FIELD_NAMES",
    "DefinitionError",
    "FieldType",
    "FormulaError",
    "Invalid",
    "ValidationContext",
    "ValidationResult",
    "company_key",
    "compute_formulas",
    "contains_operator",
    "dedupe_keys",
    "evaluate_formula",
    "field_types_catalogue",
    "filter_path",
    "filter_shape_problem",
    "filter_value",
    "formula_references",
    "mask",
    "message",
    "normalise_unique",
    "operators_for",
    "query_tokens",
    "is_prefix",
    "token_matches",
    "render_auto_number",
    "search_text",
    "search_tokens",
    "sequence_scope",
    "to_output",
    "validate_data",
    "validate_definition",
    "validate_form_fields",
]
