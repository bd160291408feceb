"""Bearer-token authentication and the principal passed to services.

`auth` is the apiflask HTTPTokenAuth used by `@app.auth_required(auth, roles=...)`;
it verifies the access JWT and exposes its claims as the current user. The
principal adds what a token does not carry: the manager's department subtree
(computed per request, so a moved department takes effect at once), the
locale from Accept-Language and the request id.
"""

from __future__ import annotations

from apiflask import HTTPTokenAuth
from flask import g, request

from crm_runtime.principal import Principal
from gateway.context import gateway
from gateway.i18n import current_locale
from gateway.tokens import Claims

auth = HTTPTokenAuth(scheme="Bearer", name="BearerAuth", description="Access token (JWT) from /auth/login")


@auth.verify_token
def _verify(token: str) -> Claims | None:
    return gateway().tokens.verify_access(token) if token else None


@auth.get_user_roles
def _roles(claims: Claims) -> list[str]:
    return [claims.role]


def current_claims() -> Claims:
    """The verified claims of the request (inside an auth_required view)."""
    claims: Claims = auth.current_user  # type: ignore[assignment]
    return claims


def current_principal() -> Principal:
    """The principal of the request, built once and cached on `g`."""
    cached = g.get("crm_principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    claims = current_claims()
    scope: tuple[str, ...] = ()
    if claims.role == "manager" and claims.department_id:
        scope = tuple(gateway().departments.subtree_ids(claims.tenant_id, claims.department_id))
    principal = Principal(
        tenant_id=claims.tenant_id,
        user_id=claims.user_id,
        role=claims.role,
        department_id=claims.department_id,
        scope_departments=scope,
        locale=current_locale(),
        request_id=g.get("request_id", "") or request.headers.get("X-Request-Id", ""),
        user_name=claims.user_name,
    )
    g.crm_principal = principal
    return principal
