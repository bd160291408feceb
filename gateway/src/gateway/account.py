"""Account security operations: password change, an administrator's forced reset, password-change tokens.

A forced reset sets a new password (generated, or given by the administrator),
marks the user `must_change_password` and ends their sessions. Such a user's
login stops at 403 `password_change_required` with a short-lived
`password_change_token` (JWT, typ `pwchange`), which POST /auth/password
exchanges, with a new password, for a normal token pair. The token names a
fingerprint of the password hash it was issued for, so it works only until the
password changes (once), and it is never accepted as an access token.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from crm_runtime.errors import Unauthenticated
from gateway.domain_errors import domain_error, field_error, invalid
from gateway.i18n import t
from gateway.passwords import Passwords, check_password, generate_password
from gateway.store import GatewayStore
from gateway.tokens import ISSUER, decode_jwt
from gateway.totp import Totp
from gateway.users import Users

CHANGE_TOKEN_TYPE = "pwchange"
CHANGE_TOKEN_SECONDS = 600


def _fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ResetResult:
    """What an administrator's reset did; `temporary_password` only when it was generated."""

    user_id: str
    temporary_password: str | None

    def to_json(self) -> dict[str, Any]:
        """The body of POST /users/{id}/password-reset."""
        body: dict[str, Any] = {"user_id": self.user_id, "must_change_password": True}
        if self.temporary_password is not None:
            body["temporary_password"] = self.temporary_password
        return body


class Account:
    """Password changes and resets for the users of a tenant."""

    def __init__(self, store: GatewayStore, users: Users, passwords: Passwords, totp: Totp, jwt_secret: str) -> None:
        self._store = store
        self._users = users
        self._passwords = passwords
        self._totp = totp
        self._secret = jwt_secret

    # ------------------------------------------------------------------ password change tokens

    def change_token(self, user: dict[str, Any]) -> str:
        """A short-lived token that lets `user` set a new password (and nothing else)."""
        now = int(datetime.now(UTC).timestamp())
        payload = {
            "iss": ISSUER,
            "sub": user["_id"],
            "tenant": user["tenant_id"],
            "typ": CHANGE_TOKEN_TYPE,
            "ph": _fingerprint(user["password_hash"]),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + CHANGE_TOKEN_SECONDS,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def user_of_change_token(self, token: str) -> dict[str, Any]:
        """The user a valid, unspent password-change token was issued to; 401 otherwise."""
        payload = decode_jwt(token, self._secret, ("exp", "iat", "sub", "tenant", "typ", "ph")) or {}
        user = None
        if payload.get("typ") == CHANGE_TOKEN_TYPE:
            user = self._users.find(str(payload["tenant"]), str(payload["sub"]))
        if (
            user is None
            or not user.get("active", True)
            or not user.get("must_change_password")
            or _fingerprint(user["password_hash"]) != payload.get("ph")
        ):
            raise domain_error(Unauthenticated, "invalid_password_change_token")
        return user

    # ------------------------------------------------------------------ changing and resetting

    def change_password(self, user: dict[str, Any], new_password: str) -> dict[str, Any]:
        """Set the user's own new password (policy applies, not the current one), clear the reset flag,
        end every session. Returns the updated user."""
        check_password(new_password, user["username"], field="new_password")
        if self._passwords.verify(user["password_hash"], new_password):
            raise invalid([field_error("new_password", "reused", t("password_reused"))], t("password_policy"))
        self._set(user, new_password, must_change=False)
        return self._users.get(user["tenant_id"], user["_id"])

    def reset_password(
        self, tenant_id: str, user_id: str, password: str | None, *, disable_totp: bool = False
    ) -> ResetResult:
        """An administrator's reset: a given (policy-checked) or generated password the user must change."""
        user = self._users.get(tenant_id, user_id)
        if password is not None:
            check_password(password, user["username"])
        new_password = password if password is not None else generate_password()
        self._set(user, new_password, must_change=True)
        if disable_totp:
            self._totp.disable(user)
        return ResetResult(user["_id"], None if password is not None else new_password)

    def _set(self, user: dict[str, Any], new_password: str, *, must_change: bool) -> None:
        # flag first: between the two writes the user holds the old password and no session
        changes: dict[str, Any] = {"password_changed_at": datetime.now(UTC)}
        update: dict[str, Any] = {"$set": changes}
        if must_change:
            changes["must_change_password"] = True
        else:
            update["$unset"] = {"must_change_password": ""}
        self._store.users.update_one({"_id": user["_id"]}, update)
        # new hash, auth_version bumped, every session revoked
        self._users.change_password(user["tenant_id"], user["_id"], new_password)
