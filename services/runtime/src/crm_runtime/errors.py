"""Domain errors shared by every service, and their one mapping to gRPC.

    DomainError                      -> grpc code           -> HTTP (gateway)
    ├── ValidationFailed(errors)     -> INVALID_ARGUMENT    -> 422
    ├── BadRequest                   -> FAILED_PRECONDITION -> 400
    ├── NotFound                     -> NOT_FOUND           -> 404
    ├── Conflict                     -> ALREADY_EXISTS/ABORTED -> 409
    ├── Forbidden                    -> PERMISSION_DENIED   -> 403
    ├── Unauthenticated              -> UNAUTHENTICATED     -> 401
    ├── PayloadTooLarge              -> RESOURCE_EXHAUSTED  -> 413
    ├── TooManyRequests              -> RESOURCE_EXHAUSTED  -> 429
    ├── Unavailable(retry_after)     -> UNAVAILABLE         -> 503 + Retry-After
    └── DeadlineExceeded             -> DEADLINE_EXCEEDED   -> 504

A servicer raises these; `grpc_server` turns them into a status whose details
string is a JSON problem object, which the gateway turns into problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any


@dataclass
class FieldError:
    """One field failing one rule. `message` is already in the caller's language."""

    field: str
    rule: str
    message: str
    params: dict[str, Any] = dc_field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in problem documents."""
        out: dict[str, Any] = {"field": self.field, "rule": self.rule, "message": self.message}
        if self.params:
            out["params"] = self.params
        return out


class DomainError(Exception):
    """Base of every expected error; carries a stable code and a human title."""

    code = "error"
    http_status = 500

    def __init__(self, detail: str = "", *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.title = title or detail or self.code
        self.extra = extra

    def to_problem(self) -> dict[str, Any]:
        """The JSON problem object carried in gRPC status details."""
        problem: dict[str, Any] = {
            "code": self.code,
            "status": self.http_status,
            "title": self.title,
            "detail": self.detail,
        }
        problem.update(self.extra)
        return problem


class ValidationFailed(DomainError):
    """Input broke one or more field rules; nothing was written."""

    code = "validation_failed"
    http_status = 422

    def __init__(self, errors: list[FieldError], detail: str = "", **extra: Any) -> None:
        super().__init__(detail or "; ".join(e.message for e in errors), **extra)
        self.errors = errors

    def to_problem(self) -> dict[str, Any]:
        problem = super().to_problem()
        problem["errors"] = [e.to_dict() for e in self.errors]
        return problem


class BadRequest(DomainError):
    """The request itself is malformed (not a field rule)."""

    code = "bad_request"
    http_status = 400


class NotFound(DomainError):
    """No such object for this tenant and principal."""

    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    """A unique value or a version clash; nothing was written."""

    code = "conflict"
    http_status = 409


class Forbidden(DomainError):
    """The principal may not do this."""

    code = "forbidden"
    http_status = 403


class Locked(DomainError):
    """The resource is locked for a while (a record in approval: its fields are read-only until it ends)."""

    code = "locked"
    http_status = 423


class Unauthenticated(DomainError):
    """No valid credentials."""

    code = "unauthenticated"
    http_status = 401


class PayloadTooLarge(DomainError):
    """Body or file over its limit."""

    code = "payload_too_large"
    http_status = 413


class TooManyRequests(DomainError):
    """Rate limit hit."""

    code = "too_many_requests"
    http_status = 429


class Unavailable(DomainError):
    """A dependency (another service, the store) does not answer now; nothing was written; retry later."""

    code = "unavailable"
    http_status = 503

    def __init__(self, detail: str = "", *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class DeadlineExceeded(DomainError):
    """The caller stopped waiting (its deadline passed) before the work was done; what it wrote was undone."""

    code = "deadline_exceeded"
    http_status = 504
