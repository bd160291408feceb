"""Bearer-token authentication and the principal passed to services.

`auth` is the apiflask HTTPTokenAuth used by `@bp.auth_required(auth, roles=...)`.
Every authenticated request (`authenticate`) checks, before anything else:

    the access JWT's signature, issuer and expiry;
    its session (`sid`): one read on _id; it exists, is not revoked, not expired;
    its user: one read on _id; it exists, is active, belongs to the token's tenant,
    and the token's `av` equals the user's `auth_version`.

The principal is then built from the *current* user document (roles,
department, name, attributes), never from token claims: the user's roles are
compiled into a policy (gateway.roles.PolicyCache, no read while the roles are
unchanged) and the department subtree is computed (for a user with a
department, one point read of the tenant's department revision; the tree is
cached per revision, gateway.departments). So a logout,
deactivation, deletion, password change or role change takes effect on the
next request. `authenticate(gw, token)` is the whole per-request check, free
of Flask, so a benchmark can time it.

The apiflask role "admin" (`roles=["admin"]`) means *tenant administrator*
(`principal.is_admin`, a role with `tenant_admin: true`), whatever the role keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apiflask import HTTPTokenAuth
from flask import g, request

from crm_runtime.errors import Forbidden
from crm_runtime.principal import Principal
from gateway.context import gateway
from gateway.domain_errors import domain_error
from gateway.i18n import current_locale
from gateway.roles import user_role_keys
from gateway.tokens import Claims

if TYPE_CHECKING:
    from gateway.context import Gateway

auth = HTTPTokenAuth(scheme="Bearer", name="BearerAuth", description="Access token (JWT) from /auth/login")

TENANT_ADMIN = "admin"
"""The apiflask role of tenant administrators."""


@dataclass(frozen=True)
class Identity:
    """Who a valid request comes from: the current claims (rebuilt from the user document), the user, the principal."""

    claims: Claims
    user: Mapping[str, Any]
    principal: Principal


def build_principal(
    gw: Gateway, user: Mapping[str, Any], *, session_id: str = "", locale: str = "zh-CN", request_id: str = ""
) -> Principal:
    """The principal of a user document: roles compiled (cached), the department subtree, the session."""
    keys = user_role_keys(user)
    department = str(user.get("department_id") or "")
    tenant_id = str(user["tenant_id"])
    scope = tuple(gw.departments.subtree_ids(tenant_id, department)) if department else ()
    return Principal(
        tenant_id=tenant_id,
        user_id=str(user["_id"]),
        role=keys[0],
        roles=tuple(keys),
        department_id=department,
        scope_departments=scope,
        locale=locale,
        request_id=request_id,
        user_name=str(user.get("name") or user.get("username") or ""),
        policy_override=gw.policies.policy(user),
        session_id=session_id,
    )


def authenticate(gw: Gateway, token: str, *, locale: str = "zh-CN", request_id: str = "") -> Identity | None:
    """The identity of an access token, or None: the per-request check (the bench times this function)."""
    claims = gw.tokens.verify_access(token) if token else None
    if claims is None:
        return None
    if gw.tokens.live_session(claims.session_id) is None:
        return None
    user = gw.store.users.find_one({"_id": claims.user_id}, {"password_hash": 0})
    if (
        user is None
        or user.get("tenant_id") != claims.tenant_id
        or not user.get("active", True)
        or int(user.get("auth_version", 0)) != claims.auth_version
    ):
        return None
    principal = build_principal(gw, user, session_id=claims.session_id, locale=locale, request_id=request_id)
    current = Claims(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        role=principal.role,
        department_id=principal.department_id,
        user_name=principal.user_name,
        session_id=claims.session_id,
        auth_version=claims.auth_version,
    )
    return Identity(current, user, principal)


@auth.verify_token
def _verify(token: str) -> Identity | None:
    request_id = g.get("request_id", "") or request.headers.get("X-Request-Id", "")
    return authenticate(gateway(), token, locale=current_locale(), request_id=request_id)


@auth.get_user_roles
def _roles(identity: Identity) -> list[str]:
    # the only role an apiflask `roles=[...]` check names is tenant administration
    return [TENANT_ADMIN] if identity.principal.is_admin else []


def current_identity() -> Identity:
    """The identity of the request (inside an auth_required view)."""
    identity: Identity = auth.current_user  # type: ignore[assignment]
    return identity


def current_claims() -> Claims:
    """The claims of the request, with role, department and name of the current user document."""
    return current_identity().claims


def current_principal() -> Principal:
    """The principal of the request (built once by `authenticate`)."""
    cached = g.get("crm_principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = current_identity().principal
    g.crm_principal = principal
    return principal


def require_admin() -> Principal:
    """The principal of a tenant administrator; 403 for anyone else."""
    principal = current_principal()
    if not principal.is_admin:
        raise domain_error(Forbidden, "forbidden")
    return principal
