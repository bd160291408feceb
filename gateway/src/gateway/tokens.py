"""Access tokens (JWT, HS256) and refresh sessions.

A login opens a session and returns a short-lived access JWT plus an opaque
refresh token. Only the SHA-256 of a refresh token is stored. Each refresh
marks its token used (one atomic find-and-modify on _id) and issues a new
pair; presenting a used token again means it leaked, so the whole session is
revoked and both holders must sign in again.

The access token names its session (`sid`) and the user's `auth_version`
(`av`). Its other claims (role, department, name) are informational: every
request re-reads the session and the user (gateway.auth.authenticate), so a
logout, a deactivation, a deletion, a password change or a role change (each
bumps the user's auth_version or revokes the session) takes effect on the next
request, not when the token expires.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from crm_runtime.errors import Unauthenticated
from gateway.domain_errors import domain_error
from gateway.store import GatewayStore

ISSUER = "crm-gateway"


@dataclass(frozen=True)
class Claims:
    """What an access token says about its holder."""

    tenant_id: str
    user_id: str
    role: str
    department_id: str
    user_name: str
    session_id: str
    auth_version: int = 0


@dataclass(frozen=True)
class TokenPair:
    """The body of a successful login or refresh."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def to_json(self) -> dict[str, Any]:
        """OAuth2-style token response."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }


def decode_jwt(token: str, secret: str, required: tuple[str, ...]) -> dict[str, Any] | None:
    """The payload of a gateway-issued HS256 JWT carrying `required` claims, or None (bad, expired, forged)."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], issuer=ISSUER, options={"require": list(required)}
        )
    except jwt.PyJWTError:
        return None
    return payload


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenService:
    """Issues, verifies, rotates and revokes tokens."""

    def __init__(self, store: GatewayStore, secret: str, access_seconds: int = 900, refresh_seconds: int = 604800):
        self._store = store
        self._secret = secret
        self._access = access_seconds
        self._refresh = refresh_seconds

    def _access_token(self, user: dict[str, Any], session_id: str, now: datetime) -> str:
        payload = {
            "iss": ISSUER,
            "sub": user["_id"],
            "tenant": user["tenant_id"],
            "role": (user.get("roles") or [user.get("role") or ""])[0],
            "dept": user.get("department_id") or "",
            "name": user.get("name") or user["username"],
            "sid": session_id,
            "av": int(user.get("auth_version", 0)),
            "typ": "access",
            "jti": uuid.uuid4().hex,
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self._access,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256")

    def _new_refresh(self, session_id: str, user: dict[str, Any], now: datetime) -> str:
        token = secrets.token_urlsafe(40)
        self._store.refresh_tokens.insert_one(
            {
                "_id": _hash(token),
                "session_id": session_id,
                "tenant_id": user["tenant_id"],
                "user_id": user["_id"],
                "created_at": now,
                "expires_at": now + timedelta(seconds=self._refresh),
                "used_at": None,
            }
        )
        return token

    def issue(self, user: dict[str, Any]) -> TokenPair:
        """Open a session for `user` and return its first token pair."""
        now = datetime.now(UTC)
        session_id = uuid.uuid4().hex
        self._store.sessions.insert_one(
            {
                "_id": session_id,
                "tenant_id": user["tenant_id"],
                "user_id": user["_id"],
                "created_at": now,
                "expires_at": now + timedelta(seconds=self._refresh),
                "revoked_at": None,
            }
        )
        return TokenPair(
            self._access_token(user, session_id, now),
            self._new_refresh(session_id, user, now),
            self._access,
            self._refresh,
        )

    def verify_access(self, token: str) -> Claims | None:
        """The claims of a valid access token, or None."""
        payload = decode_jwt(token, self._secret, ("exp", "iat", "sub", "tenant", "sid", "av"))
        if payload is None:
            return None
        if payload.get("typ") != "access" or not isinstance(payload["av"], int):
            return None
        return Claims(
            tenant_id=str(payload["tenant"]),
            user_id=str(payload["sub"]),
            role=str(payload.get("role") or ""),
            department_id=str(payload.get("dept") or ""),
            user_name=str(payload.get("name") or ""),
            session_id=str(payload["sid"]),
            auth_version=int(payload["av"]),
        )

    def refresh(self, refresh_token: str, load_user: Callable[[str, str], dict[str, Any] | None]) -> TokenPair:
        """Rotate: spend `refresh_token` and return a new pair; a reused token revokes its session."""
        now = datetime.now(UTC)
        key = _hash(refresh_token)
        before = self._store.refresh_tokens.find_one({"_id": key})
        if before is None or before["expires_at"] <= now:
            raise domain_error(Unauthenticated, "invalid_refresh_token")
        # spent by a compare-and-set on `used_at` (not findAndModify, which the local store answers by a
        # scan): of two requests with the same token only one sets it; the other is a reuse
        spent = self._store.refresh_tokens.update_one({"_id": key, "used_at": None}, {"$set": {"used_at": now}})
        if before.get("used_at") is not None or spent.modified_count != 1:
            self.revoke_session(before["session_id"])
            raise domain_error(Unauthenticated, "refresh_token_reused")
        session = self._store.sessions.find_one({"_id": before["session_id"]})
        if session is None or session.get("revoked_at") is not None or session["expires_at"] <= now:
            raise domain_error(Unauthenticated, "invalid_refresh_token")
        user = load_user(before["tenant_id"], before["user_id"])
        if user is None or not user.get("active", True):
            self.revoke_session(session["_id"])
            raise domain_error(Unauthenticated, "account_inactive" if user is not None else "invalid_refresh_token")
        self._store.sessions.update_one(
            {"_id": session["_id"]},
            {"$set": {"expires_at": now + timedelta(seconds=self._refresh), "refreshed_at": now}},
        )
        return TokenPair(
            self._access_token(user, session["_id"], now),
            self._new_refresh(session["_id"], user, now),
            self._access,
            self._refresh,
        )

    def session_active(self, session_id: str) -> bool:
        """True while the session is neither revoked nor expired."""
        return self.live_session(session_id) is not None

    def live_session(self, session_id: str) -> dict[str, Any] | None:
        """The session document while it is neither revoked nor expired (one read on _id), else None."""
        session = self._store.sessions.find_one({"_id": session_id})
        if session is None or session.get("revoked_at") is not None or session["expires_at"] <= datetime.now(UTC):
            return None
        return session  # type: ignore[no-any-return]

    def revoke_session(self, session_id: str) -> None:
        """End a session: its refresh tokens stop working."""
        self._store.sessions.update_one({"_id": session_id}, {"$set": {"revoked_at": datetime.now(UTC)}})

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """End the session a refresh token belongs to (logout with the refresh token)."""
        doc = self._store.refresh_tokens.find_one({"_id": _hash(refresh_token)})
        if doc is not None:
            self.revoke_session(doc["session_id"])

    def revoke_user(self, tenant_id: str, user_id: str) -> None:
        """End every session of a user (deactivated, deleted, password changed)."""
        self._store.sessions.update_many(
            {"tenant_id": tenant_id, "user_id": user_id}, {"$set": {"revoked_at": datetime.now(UTC)}}
        )
