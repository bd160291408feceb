"""The OpenAPI document tells the truth about errors: which problem+json responses each operation can give.

apiflask documents only what a route declares, and as application/json. This
spec processor (registered by `create_app`) rewrites every error response as
application/problem+json with the shared `Problem` schema, and adds the statuses
the gateway's common machinery gives, derived from the operation itself:

    400  unparsable body or query (malformed JSON, nested too deeply)   operations with a body or query
    401  missing, expired or revoked token                              operations with security
    403  not a tenant administrator / the service refuses               role-restricted or service-calling
    404  an unknown id in the path / an id in the input a service lacks  path parameters; service calls with input
    409  a service's ALREADY_EXISTS / ABORTED                           service-calling writes
    413  body over the limit (1 MiB; bulk 32 MiB; upload 50 MiB)         operations with a body
    422  validation (apiflask's schemas, the services' rules)           body, query or service-calling
    429  the per-client rate limit (gateway.ratelimit)                  every operation under /api/v1
    503  a service unavailable, with Retry-After                        service-calling
    504  a service did not answer in time                               service-calling

plus whatever the route declares itself (e.g. 409 from the gateway's own
domain, 429 of the login throttle). "Service-calling" is read from the view's
code: it, or a gateway function it calls, uses `form_call`, `record_call` or
`services.<name>.unary/stream` (gateway.routes._proxy).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from types import CodeType, FunctionType
from typing import Any

from apiflask import APIFlask

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
API_PREFIX = "/api/v1/"
_OLD_PROBLEM_REF = "#/components/schemas/ProblemOut"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_SERVICE_HELPERS = frozenset({"form_call", "record_call"})
_RULE_PARAM = re.compile(r"<(?:[^<>]*:)?([^<>:]+)>")

FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One field failing one rule.",
    "required": ["field", "rule", "message"],
    "properties": {
        "field": {"type": "string", "description": "field key or body path ('' for the whole body)"},
        "rule": {"type": "string", "description": "the rule that failed (required, unique, type, range, ...)"},
        "message": {"type": "string", "description": "message in the request's language (zh-CN or en)"},
        "location": {"type": "string", "description": "json, query, form, files or path"},
        "params": {"type": "object", "description": "the rule's parameters (limits, allowed values, reason)"},
    },
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details, as every error of the API (application/problem+json).",
    "required": ["type", "title", "status", "detail", "code", "errors"],
    "properties": {
        "type": {"type": "string", "description": "urn:crm:problem:<code>"},
        "title": {"type": "string", "description": "the status's title in the request's language"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "what went wrong, in the request's language"},
        "code": {"type": "string", "description": "stable machine-readable error code"},
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
        "instance": {"type": "string", "description": "the request path"},
        "retry_after": {"type": "integer", "description": "seconds to wait (with 429 and 503)"},
    },
    "additionalProperties": True,
}

RETRY_AFTER: dict[str, Any] = {
    "description": "seconds to wait before retrying",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

DESCRIPTIONS = {
    400: "Unparsable request (malformed JSON, nested too deeply)",
    401: "Missing, expired or revoked token",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    422: "Validation failed (problem+json with `errors`)",
    429: "Too many requests (see Retry-After)",
    503: "A service is unavailable (see Retry-After)",
    504: "A service did not answer in time",
}


def _code_objects(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _code_objects(const)


def calls_service(func: Callable[..., Any], _seen: set[int] | None = None) -> bool:
    """Whether `func` (or a gateway function it calls by name) calls the form or record service."""
    seen = _seen if _seen is not None else set()
    func = inspect.unwrap(func)
    if not isinstance(func, FunctionType) or id(func) in seen:
        return False
    seen.add(id(func))
    for code in _code_objects(func.__code__):
        names = set(code.co_names)
        if names & _SERVICE_HELPERS or ("services" in names and names & {"unary", "stream"}):
            return True
        for name in names:
            target = func.__globals__.get(name)
            if (
                isinstance(target, FunctionType)
                and str(getattr(target, "__module__", "")).startswith("gateway.")
                and calls_service(target, seen)
            ):
                return True
    return False


def _openapi_path(rule: str) -> str:
    return _RULE_PARAM.sub(r"{\1}", rule)


def _views(app: APIFlask) -> dict[tuple[str, str], Callable[..., Any]]:
    """(OpenAPI path, method) -> view function."""
    views: dict[tuple[str, str], Callable[..., Any]] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        if view is None:
            continue
        for method in rule.methods or ():
            views[(_openapi_path(rule.rule), method.lower())] = view
    return views


def _roles(view: Callable[..., Any]) -> list[str]:
    spec = getattr(inspect.unwrap(view), "_spec", None) or getattr(view, "_spec", None) or {}
    return list(spec.get("roles") or [])


def error_statuses(path: str, method: str, operation: dict[str, Any], view: Callable[..., Any] | None) -> set[int]:
    """The error statuses the common machinery can give for one operation (see the module docstring)."""
    parameters = operation.get("parameters") or []
    has_body = "requestBody" in operation
    has_query = any(p.get("in") == "query" for p in parameters)
    has_path = any(p.get("in") == "path" for p in parameters)
    secured = bool(operation.get("security"))
    service = view is not None and calls_service(view)
    statuses: set[int] = set()
    if has_body or has_query:
        statuses |= {400, 422}
    if has_body:
        statuses.add(413)
    if secured:
        statuses.add(401)
    if has_path:
        statuses.add(404)
    if view is not None and _roles(view):
        statuses.add(403)
    if path.startswith(API_PREFIX):
        statuses.add(429)
    if service:
        statuses |= {403, 422, 503, 504}
        if has_body or has_query:
            statuses.add(404)
        if method != "get":
            statuses.add(409)
    return statuses


def _problem_content(response: dict[str, Any]) -> dict[str, Any]:
    """The response's content as problem+json, keeping a more specific schema a route gave."""
    schema: dict[str, Any] = {"$ref": PROBLEM_REF}
    for media in (response.get("content") or {}).values():
        given = media.get("schema") or {}
        if given and given.get("$ref") != _OLD_PROBLEM_REF:
            schema = given
            break
    return {PROBLEM_JSON: {"schema": schema}}


def _document_errors(path: str, method: str, operation: dict[str, Any], view: Callable[..., Any] | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(error_statuses(path, method, operation, view)):
        responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
    for key, response in responses.items():
        if not key.isdigit() or int(key) < 400:
            continue
        response["content"] = _problem_content(response)
        if not response.get("description"):
            response["description"] = DESCRIPTIONS.get(int(key), "Error")
        if int(key) == 503 and view is not None and calls_service(view):
            response.setdefault("headers", {})["Retry-After"] = {**RETRY_AFTER, "required": True}
        elif int(key) == 429:
            response.setdefault("headers", {})["Retry-After"] = dict(RETRY_AFTER)


def _replace_refs(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == _OLD_PROBLEM_REF:
            node["$ref"] = PROBLEM_REF
        for value in node.values():
            _replace_refs(value)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value)


def complete_spec(spec: dict[str, Any], app: APIFlask) -> dict[str, Any]:
    """Add `Problem` and document each operation's problem+json responses (the spec processor)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["FieldError"] = FIELD_ERROR_SCHEMA
    schemas["Problem"] = PROBLEM_SCHEMA
    views = _views(app)
    for path, item in (spec.get("paths") or {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _document_errors(path, method, operation, views.get((path, method)))
    _replace_refs(spec)
    # a Problem subclass (e.g. the login's PasswordChangeRequiredOut) keeps its own fields
    for name in ("ProblemOut", "FieldErrorOut"):
        if name in schemas and f"#/components/schemas/{name}" not in repr(spec):
            del schemas[name]
    return spec


def register_spec_processor(app: APIFlask) -> None:
    """Make `app`'s OpenAPI document describe its problem+json responses."""

    @app.spec_processor
    def _process(spec: dict[Any, Any] | str) -> dict[Any, Any] | str:
        # apiflask passes the document as a dict (a str only for a YAML spec, which the gateway has not)
        return complete_spec(spec, app) if isinstance(spec, dict) else spec
