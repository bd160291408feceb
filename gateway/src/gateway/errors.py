"""Every error leaves the gateway here, as application/problem+json.

    source                                   -> HTTP
    crm_runtime.errors.DomainError (raised by the gateway's directory code, gateway.domain_errors)
                                             -> by class: ValidationFailed 422, BadRequest 400, NotFound 404,
                                                Conflict 409, Forbidden 403, Unauthenticated 401,
                                                PayloadTooLarge 413, TooManyRequests 429 (+ Retry-After),
                                                Unavailable 503 (+ Retry-After); the instance's code and detail
    ApiError (an HTTP-level error of a route) -> its status, code and localised message
    apiflask/werkzeug HTTP errors            -> 400 malformed body, 401, 403, 404 route, 405, 413, 422 input
    grpc.RpcError from a service             -> by status code:
        INVALID_ARGUMENT 422, NOT_FOUND 404, ALREADY_EXISTS/ABORTED 409, PERMISSION_DENIED 403,
        UNAUTHENTICATED 401, RESOURCE_EXHAUSTED 413/429 (the problem's status), FAILED_PRECONDITION 400,
        UNAVAILABLE 503, DEADLINE_EXCEEDED 504, anything else 500
    any other exception                      -> 500 (logged, details withheld)
    before the app: a chunked body over the limit 413, JSON nested too deeply 422 (gateway.request_body);
    what gunicorn refuses itself (414 request line, 431 headers, 400 malformed) -> gateway.server_errors

A problem document: {type, title, status, detail, code, errors: [{field, rule, message}], ...}.
Service problems (crm_runtime.client.problem_from_error) already carry messages in
the principal's locale; the gateway's own messages come from `gateway.i18n`.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from apiflask import APIFlask, HTTPError
from flask import Response, request

from crm_runtime import errors as domain
from crm_runtime.client import problem_from_error
from crm_runtime.logging import get_logger
from gateway.i18n import t, title_for
from gateway.request_body import is_chunked

log = get_logger("crm.gateway")

PROBLEM_JSON = "application/problem+json"

RETRY_AFTER = 5  # seconds a client waits before retrying a 503 (a unit restarting takes about that)
_GRPC_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_failed",
    423: "locked",
    429: "too_many_requests",
    503: "service_unavailable",
}


# the gateway's own domain errors, by class (gRPC ones go through _GRPC_STATUS)
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.ValidationFailed: 422,
    domain.BadRequest: 400,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Locked: 423,
    domain.Forbidden: 403,
    domain.Unauthenticated: 401,
    domain.PayloadTooLarge: 413,
    domain.TooManyRequests: 429,
    domain.Unavailable: 503,
    domain.DeadlineExceeded: 504,
}


class ApiError(HTTPError):
    """An HTTP-level error a route raises itself (e.g. a malformed upload): a status, a stable code and a
    localised message. Domain code raises crm_runtime.errors classes instead (gateway.domain_errors)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(
            status,
            message=detail or t(code),
            headers=headers,
            extra_data={"code": code, "errors": errors or [], **extra},
        )


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:crm:problem:{code}",
        "title": title or title_for(status),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": errors or [],
    }
    if request:
        body["instance"] = request.path
    for key, value in extra.items():
        body.setdefault(key, value)
    resp = Response(json.dumps(body, ensure_ascii=False, default=str), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def status_for_rpc(error: grpc.RpcError, problem_doc: dict[str, Any]) -> int:
    """The HTTP status for a failed RPC."""
    code = error.code()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return 413 if problem_doc.get("status") == 413 else 429
    if code == grpc.StatusCode.FAILED_PRECONDITION and problem_doc.get("status") == 423:
        return 423
    return _GRPC_STATUS.get(code, 500)


def rpc_error_response(error: grpc.RpcError, service: str = "") -> Response:
    """Translate a service's gRPC error into problem+json."""
    doc = problem_from_error(error)
    status = status_for_rpc(error, doc)
    if status == 503:
        return problem(
            503,
            "service_unavailable",
            t("service_unavailable", service=service or "-"),
            headers={"Retry-After": _retry_after(doc.get("retry_after"))},
        )
    if status == 504:
        return problem(504, "upstream_timeout", t("upstream_timeout", service=service or "-"))
    if status == 500:
        log.error("upstream_error", service=service, grpc_code=str(error.code()), details=error.details())  # type: ignore[attr-defined]
        return problem(500, "internal_error", t("internal_error"))
    code = str(doc.pop("code", None) or _DEFAULT_CODES.get(status, "error"))
    detail = str(doc.pop("detail", "") or doc.get("title") or "")
    title = str(doc.pop("title", "") or "") or None
    errors = doc.pop("errors", None) or []
    doc.pop("status", None)
    doc.pop("type", None)
    headers = {}
    if status == 429 and doc.get("retry_after"):
        headers["Retry-After"] = str(doc["retry_after"])
    return problem(status, code, detail, title=title, errors=errors, headers=headers, **doc)


def status_for_domain(error: domain.DomainError) -> int:
    """The HTTP status of a domain error: its nearest class in DOMAIN_STATUS (500 for none)."""
    for cls in type(error).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 500


def _retry_after(value: Any, cap: int = 3600) -> str:
    """A Retry-After header value: `value` seconds when it is sensible, else the default."""
    return str(int(value)) if isinstance(value, int | float) and 0 < value <= cap else str(RETRY_AFTER)


def domain_error_response(error: domain.DomainError) -> Response:
    """Translate a domain error raised in the gateway into problem+json (status by class, code by instance)."""
    status = status_for_domain(error)
    if status == 500:
        log.error("unmapped_domain_error", path=request.path, error_class=type(error).__name__, code=error.code)
        return problem(500, "internal_error", t("internal_error"))
    extra = dict(error.extra)
    headers: dict[str, str] = {}
    if status in (429, 503):
        # the gateway's own waits (a login lockout) may be longer than an hour: no cap
        headers["Retry-After"] = _retry_after(extra.get("retry_after"), cap=366 * 24 * 3600)
    if status == 413:
        _drain_body(request.environ)
        headers["Connection"] = "close"
    # a conflict may name its field too (a taken username): as a list of dicts in `errors`
    field_errors = list(extra.pop("errors", None) or [])
    if isinstance(error, domain.ValidationFailed):
        field_errors = [e.to_dict() for e in error.errors]
    return problem(status, error.code, error.detail or t(error.code), errors=field_errors, headers=headers, **extra)


_MARSHMALLOW_RULES = {
    "Unknown field.": "unknown_field",
    "Missing data for required field.": "required",
}


def _flatten(detail: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs out of a nested marshmallow error dict."""
    out: list[tuple[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_flatten(value, path))
    elif isinstance(detail, list):
        for item in detail:
            if isinstance(item, (dict, list)):
                out.extend(_flatten(item, prefix))
            else:
                out.append((prefix, str(item)))
    else:
        out.append((prefix, str(detail)))
    return out


def validation_errors(detail: Any) -> tuple[str, list[dict[str, Any]]]:
    """Turn apiflask's {location: {field: [messages]}} into (code, localised field errors)."""
    errors: list[dict[str, Any]] = []
    code = "validation_failed"
    if isinstance(detail, dict):
        for location, fields in detail.items():
            for path, message in _flatten(fields):
                if path == "_schema" and message == "Invalid input type.":
                    code = "not_an_object"
                    errors.append({"field": "", "rule": "type", "message": t("not_an_object"), "location": location})
                    continue
                rule = _MARSHMALLOW_RULES.get(message, "invalid")
                key = {"unknown_field": "unknown_field", "required": "required"}.get(rule, "invalid_value")
                entry = {"field": path, "rule": rule, "message": t(key, field=path), "location": location}
                if rule == "invalid":
                    entry["params"] = {"reason": message}
                errors.append(entry)
    return code, errors


def _format_limit(limit: int | None) -> str:
    if not limit:
        return "-"
    return f"{limit / (1024 * 1024):g} MiB"


def http_error_response(error: HTTPError) -> Response:
    """Translate an apiflask HTTPError (ours, validation, auth, routing, limits) into problem+json."""
    status = error.status_code
    extra = dict(error.extra_data or {})
    raw_headers: Any = error.headers or {}
    pairs = raw_headers.items() if hasattr(raw_headers, "items") else raw_headers
    headers = {str(k): str(v) for k, v in pairs}
    code = extra.pop("code", None)
    errors = extra.pop("errors", None) or []
    if code is not None:
        return problem(status, code, str(error.message or t(code)), errors=errors, headers=headers, **extra)
    if status == 422:
        code, errors = validation_errors(error.detail)
        return problem(422, code, t(code), errors=errors, headers=headers)
    if status == 404:
        return problem(404, "route_not_found", t("route_not_found", path=request.path), headers=headers)
    if status == 405:
        return problem(405, "method_not_allowed", t("method_not_allowed", method=request.method), headers=headers)
    if status == 413:
        limit = request.max_content_length
        # The unread body is still on the socket. Closing with unread bytes makes
        # the kernel reset the connection, and a client still sending never reads
        # the 413: so read (and drop) a bounded rest first, then close.
        _drain_body(request.environ)
        headers["Connection"] = "close"
        return problem(413, "payload_too_large", t("payload_too_large", limit=_format_limit(limit)), headers=headers)
    if status == 401:
        return problem(401, "unauthenticated", t("unauthenticated"), headers=headers)
    if status == 403:
        return problem(403, "forbidden", t("forbidden"), headers=headers)
    if status == 400:
        return problem(400, "bad_request", t("bad_request"), headers=headers)
    code = _DEFAULT_CODES.get(status, "error")
    return problem(status, code, t(code) if code != "error" else str(error.message), headers=headers)


def register_error_handlers(app: APIFlask) -> None:
    """Install the one translation boundary on `app`."""

    @app.error_processor
    def _http_error(error: HTTPError) -> Response:
        return http_error_response(error)

    @app.errorhandler(domain.DomainError)
    def _domain_error(error: domain.DomainError) -> Response:
        return domain_error_response(error)

    @app.errorhandler(grpc.RpcError)
    def _rpc_error(error: grpc.RpcError) -> Response:
        return rpc_error_response(error, getattr(error, "gateway_service", ""))

    @app.errorhandler(RecursionError)
    def _too_deep(_error: RecursionError) -> Response:
        # JSON nested past the parser's recursion limit that no earlier check caught (bodies
        # and the filter parameter are bounded before parsing): unusable input, not a broken server
        log.warning("input_nested_too_deeply", path=request.path)
        return problem(400, "bad_request", t("bad_request"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        from werkzeug.exceptions import HTTPException

        if isinstance(error, HTTPException):
            return http_error_response(HTTPError(error.code or 500, error.description))
        log.exception("unhandled_error", path=request.path)
        return problem(500, "internal_error", t("internal_error"))


_DRAIN_LIMIT = 64 * 1024 * 1024


def _drain_body(environ: dict[str, Any]) -> None:
    """Read and discard up to 64 MiB of a refused request body, declared or chunked."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    if is_chunked(environ):
        remaining = _DRAIN_LIMIT  # the server's chunked reader ends the stream at the last chunk
    else:
        try:
            remaining = min(int(environ.get("CONTENT_LENGTH") or 0), _DRAIN_LIMIT)
        except ValueError:
            return
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 65536))
            if not chunk:
                break
            remaining -= len(chunk)
    except OSError:
        pass
