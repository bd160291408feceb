"""The gateway's own domain errors: crm_runtime.errors classes carrying the gateway's stable codes.

The directory code (users, departments, roles, tokens, passwords, account) raises
these, as a service's domain does; `gateway.errors` maps them to HTTP once, by class.
The class decides the status; the instance carries the specific `code` a client
has always seen and its detail, localised through gateway.i18n in the request's
language:

    crm_runtime.errors class   codes the gateway raises it with
    ValidationFailed           validation_failed
    BadRequest                 bad_request
    NotFound                   user_not_found, role_not_found, department_not_found
    Conflict                   username_taken, role_exists, role_in_use, last_tenant_admin,
                               cannot_delete_self, department_not_empty, totp_*
    Forbidden                  forbidden, current_password_invalid, totp_invalid
    Unauthenticated            unauthenticated, invalid_credentials, invalid_refresh_token,
                               refresh_token_reused, account_inactive, invalid_password_change_token,
                               password_change_credentials_required, totp_required, totp_invalid
    TooManyRequests            too_many_requests, too_many_login_failures (+ Retry-After)
    PayloadTooLarge            payload_too_large
    Unavailable                service_unavailable (+ Retry-After)

Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from crm_runtime.errors import DomainError, FieldError, ValidationFailed
from gateway.i18n import t

E = TypeVar("E", bound=DomainError)


def domain_error(cls: type[E], code: str, detail: str | None = None, **extra: Any) -> E:
    """An instance of `cls` whose problem `code` is `code`; the detail defaults to that code's message."""
    error = cls(detail or t(code), **extra)
    error.code = code
    return error


def field_error(field: str, rule: str, message: str, **params: Any) -> FieldError:
    """One field breaking one rule; `message` already localised."""
    return FieldError(field, rule, message, dict(params))


def invalid(errors: Sequence[FieldError], detail: str | None = None, **extra: Any) -> ValidationFailed:
    """A 422 `validation_failed` with these field errors; the detail defaults to the generic message."""
    return ValidationFailed(list(errors), detail or t("validation_failed"), **extra)
