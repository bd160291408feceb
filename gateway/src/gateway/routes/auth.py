"""Sign in, refresh, sign out (here or everywhere), who am I, password change and reset, TOTP."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, request

from crm_runtime.errors import Conflict, Forbidden, TooManyRequests, Unauthenticated
from gateway.account import CHANGE_TOKEN_SECONDS, Account
from gateway.audit import audit_login, audited
from gateway.auth import auth as token_auth
from gateway.auth import current_claims, current_principal, require_admin
from gateway.context import Gateway, gateway
from gateway.domain_errors import domain_error, field_error, invalid
from gateway.i18n import t
from gateway.responses import json_response
from gateway.schemas import (
    LoginIn,
    LogoutIn,
    MeOut,
    PasswordChangeIn,
    PasswordChangeRequiredOut,
    PasswordResetIn,
    PasswordResetOut,
    RefreshIn,
    TokenOut,
    TotpCodeIn,
    TotpDisableIn,
    TotpSetupOut,
)
from gateway.totp import Totp, is_enabled
from gateway.users import public_user

bp = APIBlueprint("auth", __name__, tag={"name": "Auth", "description": "Sign in, token refresh and sign out"})


def _locked(retry_after: int) -> TooManyRequests:
    minutes = max(1, (retry_after + 59) // 60)
    # the boundary (gateway.errors) sends `retry_after` as the Retry-After header too
    return domain_error(
        TooManyRequests,
        "too_many_login_failures",
        t("too_many_login_failures", minutes=minutes),
        retry_after=retry_after,
    )


def _totp(gw: Gateway) -> Totp:
    return Totp(gw.store.users, gw.settings.jwt_secret)


def _account(gw: Gateway) -> Account:
    return Account(gw.store, gw.users, gw.passwords, _totp(gw), gw.settings.jwt_secret)


def _address() -> str:
    return request.remote_addr or "-"


def _reauthenticate(gw: Gateway, user: dict[str, Any], password: str) -> None:
    """Check the signed-in user's password again (throttled like a login); 403 when wrong."""
    lock = gw.throttle.check(user["tenant_id"], user["username"], _address())
    if lock is not None:
        raise _locked(lock.retry_after)
    if not gw.passwords.verify(user["password_hash"], password):
        gw.throttle.failed(user["tenant_id"], user["username"], _address())
        raise domain_error(Forbidden, "current_password_invalid")


def _signed_in_user(gw: Gateway) -> dict[str, Any]:
    claims = current_claims()
    user = gw.users.find(claims.tenant_id, claims.user_id)
    if user is None:
        raise domain_error(Unauthenticated, "unauthenticated")
    return user


_LOGIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Signed in"},
    401: {"description": "Wrong credentials, inactive account, `totp_required` or `totp_invalid`"},
    403: {
        "description": "`password_change_required`",
        "content": {"application/problem+json": {"schema": PasswordChangeRequiredOut}},
    },
    422: {"description": "Validation failed"},
    429: {"description": "Locked after too many failures"},
}


@bp.post("/auth/login")
@bp.input(LoginIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(
    summary="Sign in",
    description=(
        "20 failed attempts for one account from one address lock that pair for 15 minutes (429); each further "
        "lock before a successful login doubles, up to 24 hours. With two-factor on, `totp_code` is required "
        "(401 `totp_required`; a wrong code is 401 `totp_invalid` and counts as a failure). After an "
        "administrator's password reset the answer is 403 `password_change_required` with a "
        "`password_change_token` for POST /auth/password."
    ),
    responses=_LOGIN_RESPONSES,
)
@audit_login
def login(body: dict[str, Any]) -> Response:
    """Exchange username and password (and a TOTP code when two-factor is on) for a token pair."""
    gw = gateway()
    tenant_id, username, address = body["tenant"], body["username"], _address()
    lock = gw.throttle.check(tenant_id, username, address)
    if lock is not None:
        raise _locked(lock.retry_after)
    tenant = gw.store.tenants.find_one({"_id": tenant_id})
    user = gw.users.by_username(tenant_id, username) if tenant is not None else None
    if not gw.passwords.verify(user["password_hash"] if user else None, body["password"]) or user is None:
        # the 20th failure still answers 401; the lock applies from the next attempt on
        gw.throttle.failed(tenant_id, username, address)
        raise domain_error(Unauthenticated, "invalid_credentials")
    if not user.get("active", True):
        raise domain_error(Unauthenticated, "account_inactive")
    if is_enabled(user):
        code = body.get("totp_code")
        if not code:
            raise domain_error(Unauthenticated, "totp_required")
        if not _totp(gw).verify(user, code):
            gw.throttle.failed(tenant_id, username, address)
            raise domain_error(Unauthenticated, "totp_invalid")
    gw.throttle.succeeded(tenant_id, username, address)
    if gw.passwords.needs_rehash(user["password_hash"]):
        gw.users.set_password(tenant_id, user["_id"], body["password"])
        user = gw.users.get(tenant_id, user["_id"])
    if user.get("must_change_password"):
        raise domain_error(
            Forbidden,
            "password_change_required",
            password_change_token=_account(gw).change_token(user),
            expires_in=CHANGE_TOKEN_SECONDS,
        )
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


@bp.post("/auth/logout-all")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Sign out everywhere", description="Ends every session of the signed-in user, this one included.")
def logout_all() -> Response:
    """End every session of the caller."""
    claims = current_claims()
    # auth_version bumped (access tokens die) and every session revoked (refresh tokens die)
    gateway().users.end_sessions(claims.tenant_id, claims.user_id)
    return Response(status=204)


@bp.post("/auth/password")
@bp.auth_required(token_auth, optional=True)  # type: ignore[arg-type]  # apiflask types it str
@bp.input(PasswordChangeIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(
    summary="Change the password",
    description=(
        "Either `password_change_token` (from a login answered 403 `password_change_required`; no bearer "
        "needed) or a bearer token plus `current_password`. The password policy applies to `new_password`. "
        "Every session of the user ends; the answer is a new token pair."
    ),
    responses={
        200: "Password changed, signed in",
        401: "No or invalid password-change token / bearer token",
        403: "`current_password_invalid`",
        422: "`new_password` breaks the policy (`too_short`, `too_simple`, `contains_username`, `breached`, `reused`)",
        429: "Locked after too many wrong current passwords",
    },
)
def change_password(body: dict[str, Any]) -> Response:
    """Set a new password."""
    gw = gateway()
    account = _account(gw)
    if body.get("password_change_token"):
        user = account.user_of_change_token(body["password_change_token"])
    elif token_auth.current_user is not None:
        user = _signed_in_user(gw)
        if not body.get("current_password"):
            raise invalid([field_error("current_password", "required", t("required", field="current_password"))])
        _reauthenticate(gw, user, body["current_password"])
    else:
        raise domain_error(Unauthenticated, "password_change_credentials_required")
    user = account.change_password(user, body["new_password"])
    gw.throttle.succeeded(user["tenant_id"], user["username"], _address())
    return json_response(gw.tokens.issue(user).to_json())


@bp.post("/users/<user_id>/password-reset")
@bp.auth_required(token_auth)
@bp.input(PasswordResetIn, arg_name="body")
@bp.output(PasswordResetOut)
@bp.doc(
    summary="Force a password reset (tenant admin)",
    tags=["Users"],
    description=(
        "Sets `password` (policy applies) or a generated temporary password, returned once; the user must "
        "change it at the next login, and every session of the user ends. `disable_totp` also turns their "
        "two-factor off (a lost authenticator)."
    ),
    responses=[200, 401, 403, 404, 422],
)
@audited("user.password_reset", "user", id_arg="user_id")
def reset_password(user_id: str, body: dict[str, Any]) -> Response:
    """An administrator resets a user's password."""
    principal = require_admin()
    result = _account(gateway()).reset_password(
        principal.tenant_id, user_id, body.get("password"), disable_totp=bool(body.get("disable_totp"))
    )
    return json_response(result.to_json())


@bp.post("/auth/totp/setup")
@bp.auth_required(token_auth)
@bp.output(TotpSetupOut)
@bp.doc(
    summary="Start two-factor setup",
    description="A new secret, pending until POST /auth/totp/enable confirms a code from it. 409 when already on.",
    responses=[200, 401, 409],
)
def totp_setup() -> Response:
    """A pending TOTP secret for the signed-in user."""
    gw = gateway()
    user = _signed_in_user(gw)
    if is_enabled(user):
        raise domain_error(Conflict, "totp_already_enabled")
    tenant = gw.store.tenants.find_one({"_id": user["tenant_id"]}) or {}
    return json_response(_totp(gw).setup(user, tenant.get("name") or user["tenant_id"]).to_json())


@bp.post("/auth/totp/enable")
@bp.auth_required(token_auth)
@bp.input(TotpCodeIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Turn two-factor on",
    description="Confirms the pending secret with a current code. 403 `totp_invalid` for a wrong code.",
    responses=[204, 401, 403, 409, 422],
)
@audited("user.totp_enable", "user", with_body=False, on_self=True)
def totp_enable(body: dict[str, Any]) -> Response:
    """Make the pending secret active."""
    gw = gateway()
    user = _signed_in_user(gw)
    if is_enabled(user):
        raise domain_error(Conflict, "totp_already_enabled")
    totp = _totp(gw)
    if not totp.has_pending(user):
        raise domain_error(Conflict, "totp_not_pending")
    if not totp.enable(user, body["code"]):
        raise domain_error(Forbidden, "totp_invalid")
    return Response(status=204)


@bp.post("/auth/totp/disable")
@bp.auth_required(token_auth)
@bp.input(TotpDisableIn, arg_name="body")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Turn two-factor off",
    description="Needs the password (403 `current_password_invalid`) and a current code (403 `totp_invalid`).",
    responses=[204, 401, 403, 409, 422, 429],
)
@audited("user.totp_disable", "user", with_body=False, on_self=True)
def totp_disable(body: dict[str, Any]) -> Response:
    """Turn the second factor off."""
    gw = gateway()
    user = _signed_in_user(gw)
    if not is_enabled(user):
        raise domain_error(Conflict, "totp_not_enabled")
    _reauthenticate(gw, user, body["password"])
    totp = _totp(gw)
    if not totp.verify(user, body["code"]):
        gw.throttle.failed(user["tenant_id"], user["username"], _address())
        raise domain_error(Forbidden, "totp_invalid")
    totp.disable(user)
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
        raise domain_error(Unauthenticated, "unauthenticated")
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
        totp_enabled=is_enabled(user),
    )
    return json_response(body)
