"""Sign in, refresh, sign out, and who am I."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, request

from gateway.auth import auth as token_auth
from gateway.auth import current_claims, current_principal
from gateway.context import gateway
from gateway.errors import ApiError
from gateway.i18n import t
from gateway.responses import json_response
from gateway.schemas import LoginIn, LogoutIn, MeOut, RefreshIn, TokenOut
from gateway.users import public_user

bp = APIBlueprint("auth", __name__, tag={"name": "Auth", "description": "Sign in, token refresh and sign out"})


def _locked(retry_after: int) -> ApiError:
    minutes = max(1, (retry_after + 59) // 60)
    return ApiError(
        429,
        "too_many_login_failures",
        t("too_many_login_failures", minutes=minutes),
        headers={"Retry-After": str(retry_after)},
        retry_after=retry_after,
    )


@bp.post("/auth/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(
    summary="Sign in",
    description="20 failed attempts for one account from one address lock that pair for 15 minutes (429).",
    responses=[200, 401, 422, 429],
)
def login(body: dict[str, Any]) -> Response:
    """Exchange username and password for a token pair."""
    gw = gateway()
    tenant_id, username, address = body["tenant"], body["username"], request.remote_addr or "-"
    lock = gw.throttle.check(tenant_id, username, address)
    if lock is not None:
        raise _locked(lock.retry_after)
    tenant = gw.store.tenants.find_one({"_id": tenant_id})
    user = gw.users.by_username(tenant_id, username) if tenant is not None else None
    if not gw.passwords.verify(user["password_hash"] if user else None, body["password"]) or user is None:
        # the 20th failure still answers 401; the lock applies from the next attempt on
        gw.throttle.failed(tenant_id, username, address)
        raise ApiError(401, "invalid_credentials")
    if not user.get("active", True):
        raise ApiError(401, "account_inactive")
    gw.throttle.succeeded(tenant_id, username, address)
    if gw.passwords.needs_rehash(user["password_hash"]):
        gw.users.set_password(tenant_id, user["_id"], body["password"])
    return json_response(gw.tokens.issue(user).to_json())


@bp.post("/auth/refresh")
@bp.input(RefreshIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(
    summary="Rotate the refresh token",
    description="Each refresh token works once; presenting a used one revokes the whole session.",
    responses=[200, 401, 422],
)
def refresh(body: dict[str, Any]) -> Response:
    """A new token pair for a refresh token."""
    gw = gateway()
    return json_response(gw.tokens.refresh(body["refresh_token"], gw.users.find).to_json())


@bp.post("/auth/logout")
@bp.auth_required(token_auth)
@bp.input(LogoutIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(summary="Sign out", description="Ends the session of the access token (and of the refresh token given).")
def logout(body: dict[str, Any]) -> Response:
    """End the session."""
    gw = gateway()
    gw.tokens.revoke_session(current_claims().session_id)
    if body.get("refresh_token"):
        gw.tokens.revoke_refresh_token(body["refresh_token"])
    return Response(status=204)


@bp.get("/me")
@bp.auth_required(token_auth)
@bp.output(MeOut)
@bp.doc(summary="The signed-in user", description="With the tenant and the data scope sent to services.")
def me() -> Response:
    """Who am I."""
    gw = gateway()
    claims = current_claims()
    user = gw.users.find(claims.tenant_id, claims.user_id)
    if user is None:
        raise ApiError(401, "unauthenticated")
    tenant = gw.store.tenants.find_one({"_id": claims.tenant_id}) or {"_id": claims.tenant_id}
    principal = current_principal()
    body = public_user(user)
    body.update(
        tenant={
            "id": tenant["_id"],
            "name": tenant.get("name", tenant["_id"]),
            "time_zone": tenant.get("time_zone", gw.settings.tenant_tz),
        },
        scope_departments=list(principal.scope_departments),
        locale=principal.locale,
    )
    return json_response(body)
