"""The principal (who calls, for which tenant, with which data scope).

The gateway authenticates the user and passes the principal to services in
gRPC metadata; a servicer reads it with `current_principal()` inside a call.
Data scope: `admin` sees all of the tenant, `manager` the records of the
departments in `scope_departments` (their subtree), `sales` their own records.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

ROLES = ("admin", "manager", "sales")

_H_TENANT = "x-tenant-id"
_H_USER = "x-user-id"
_H_ROLE = "x-role"
_H_DEPT = "x-department-id"
_H_SCOPE = "x-scope-departments"
_H_LOCALE = "x-locale"
_H_REQUEST = "x-request-id"
_H_NAME = "x-user-name"


@dataclass(frozen=True)
class Principal:
    """The caller of an RPC."""

    tenant_id: str
    user_id: str = "system"
    role: str = "admin"
    department_id: str = ""
    scope_departments: tuple[str, ...] = field(default_factory=tuple)
    locale: str = "zh-CN"
    request_id: str = ""
    user_name: str = ""

    @property
    def is_admin(self) -> bool:
        """True for the tenant administrator (sees everything)."""
        return self.role == "admin"

    def to_metadata(self) -> list[tuple[str, str]]:
        """gRPC metadata carrying this principal."""
        md = [
            (_H_TENANT, self.tenant_id),
            (_H_USER, self.user_id),
            (_H_ROLE, self.role),
            (_H_DEPT, self.department_id),
            (_H_SCOPE, ",".join(self.scope_departments)),
            (_H_LOCALE, self.locale),
        ]
        if self.request_id:
            md.append((_H_REQUEST, self.request_id))
        if self.user_name:
            # metadata values must be ASCII; names may be Chinese
            md.append((_H_NAME + "-bin", self.user_name.encode("utf-8")))  # type: ignore[arg-type]
        return md

    @classmethod
    def from_metadata(cls, metadata: Sequence[tuple[str, str | bytes]]) -> Principal | None:
        """Parse invocation metadata; None when no tenant is named."""
        md: dict[str, str | bytes] = {k: v for k, v in metadata}
        tenant = md.get(_H_TENANT)
        if not tenant:
            return None
        role = str(md.get(_H_ROLE) or "sales")
        if role not in ROLES:
            role = "sales"
        scope = str(md.get(_H_SCOPE) or "")
        name = md.get(_H_NAME + "-bin", b"")
        return cls(
            tenant_id=str(tenant),
            user_id=str(md.get(_H_USER) or "system"),
            role=role,
            department_id=str(md.get(_H_DEPT) or ""),
            scope_departments=tuple(s for s in scope.split(",") if s),
            locale=_norm_locale(str(md.get(_H_LOCALE) or "zh-CN")),
            request_id=str(md.get(_H_REQUEST) or ""),
            user_name=name.decode("utf-8") if isinstance(name, bytes) else str(name),
        )


def _norm_locale(value: str) -> str:
    return "en" if value.lower().startswith("en") else "zh-CN"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The principal of the call being served; raises Unauthenticated outside one."""
    from crm_runtime.errors import Unauthenticated

    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no tenant in call metadata")
    return principal


def optional_principal() -> Principal | None:
    """The principal of the call being served, or None."""
    return _current.get()


@contextmanager
def principal_context(principal: Principal | None) -> Iterator[None]:
    """Make `principal` current for the duration of the block."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)
