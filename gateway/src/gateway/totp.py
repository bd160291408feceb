"""The optional TOTP second factor (RFC 6238, 30 s steps, 6 digits; pyotp).

A user turns it on in two steps: `setup` stores a new secret as *pending* and
returns it (with an otpauth:// URI for the authenticator app); `enable` with a
code from that app makes it the active secret. From then on a login needs a
current code as well as the password. `disable` needs the password and a code.

Secrets are stored encrypted at rest (Fernet) under a key derived from the
installation's JWT_SECRET with HKDF-SHA256, so a copy of the database alone
does not reveal them. Changing JWT_SECRET makes stored secrets unreadable:
such a user's codes are refused until an administrator resets their password
with `disable_totp`. Each code works once: the time step of the last accepted
code is stored and a code of that step or an earlier one is refused (replay).

User document fields (written by this module only):
    totp          {secret: <fernet token>, last_step: int, enabled_at: datetime} when enabled
    totp_pending  {secret: <fernet token>, created_at: datetime} between setup and enable
"""

from __future__ import annotations

import base64
import functools
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pymongo.collection import Collection

ISSUER = "CRM"
VALID_WINDOW = 1  # steps accepted either side of now (clock drift)


@functools.lru_cache(maxsize=8)
def _fernet(jwt_secret: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"crm-gateway", info=b"totp-secret-v1").derive(
        jwt_secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class TotpSetup:
    """A pending secret and how to put it into an authenticator app."""

    secret: str
    otpauth_uri: str

    def to_json(self) -> dict[str, str]:
        """The body of POST /auth/totp/setup."""
        return {"secret": self.secret, "otpauth_uri": self.otpauth_uri}


def is_enabled(user: dict[str, Any]) -> bool:
    """True when the user's logins need a TOTP code."""
    return bool((user.get("totp") or {}).get("secret"))


class Totp:
    """TOTP secrets of users: setup, enable, verify, disable."""

    def __init__(self, users: Collection[Any], jwt_secret: str, issuer: str = ISSUER) -> None:
        self._users = users
        self._fernet = _fernet(jwt_secret)
        self._issuer = issuer

    def _encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("ascii")).decode("ascii")

    def _decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError):
            return None

    def setup(self, user: dict[str, Any], tenant_name: str = "") -> TotpSetup:
        """Store a new pending secret for `user` (replacing an earlier pending one) and return it."""
        secret = pyotp.random_base32()
        self._users.update_one(
            {"_id": user["_id"]},
            {"$set": {"totp_pending": {"secret": self._encrypt(secret), "created_at": datetime.now(UTC)}}},
        )
        label = f"{user['username']}@{tenant_name or user['tenant_id']}"
        uri = pyotp.TOTP(secret).provisioning_uri(name=label, issuer_name=self._issuer)
        return TotpSetup(secret, uri)

    def has_pending(self, user: dict[str, Any]) -> bool:
        """True between setup and enable."""
        return bool((user.get("totp_pending") or {}).get("secret"))

    @staticmethod
    def _matching_step(secret: str, code: str, now: float, after_step: int) -> int | None:
        """The time step `code` belongs to (within the window, later than `after_step`), or None."""
        code = code.strip().replace(" ", "")
        if not code.isdigit() or len(code) != 6:
            return None
        totp = pyotp.TOTP(secret)
        current = totp.timecode(now)
        for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
            step = current + offset
            if step > after_step and hmac.compare_digest(totp.at(now, counter_offset=offset), code):
                return step
        return None

    def enable(self, user: dict[str, Any], code: str, *, now: float | None = None) -> bool:
        """Make the pending secret active when `code` matches it; False when it does not."""
        pending = self._decrypt((user.get("totp_pending") or {}).get("secret") or "")
        if pending is None:
            return False
        step = self._matching_step(pending, code, time.time() if now is None else now, -1)
        if step is None:
            return False
        self._users.update_one(
            {"_id": user["_id"]},
            {
                "$set": {
                    "totp": {
                        "secret": user["totp_pending"]["secret"],
                        "last_step": step,
                        "enabled_at": datetime.now(UTC),
                    }
                },
                "$unset": {"totp_pending": ""},
            },
        )
        return True

    def verify(self, user: dict[str, Any], code: str, *, now: float | None = None) -> bool:
        """True when `code` is a current, not yet used code of the user's active secret (and spend it)."""
        state = user.get("totp") or {}
        secret = self._decrypt(state.get("secret") or "")
        if secret is None:
            return False
        last = int(state.get("last_step", -1))
        step = self._matching_step(secret, code, time.time() if now is None else now, last)
        if step is None:
            return False
        # spend the step; a concurrent use of the same code loses the compare-and-set
        result = self._users.update_one({"_id": user["_id"]}, {"$max": {"totp.last_step": step}})
        return result.modified_count == 1

    def disable(self, user: dict[str, Any]) -> None:
        """Turn the second factor off (and drop a pending setup)."""
        self._users.update_one({"_id": user["_id"]}, {"$unset": {"totp": "", "totp_pending": ""}})
