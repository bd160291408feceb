"""Failed-login throttling per tenant, account and client address.

After `max_failures` failures for the same account from the same address the
pair is locked for `lock_seconds`; other addresses (and other accounts) are not
affected. Counters live in `login_attempts`, keyed by _id, and expire through a
TTL index (and are checked against the clock, since TTL removal lags).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.collection import Collection


@dataclass(frozen=True)
class Lockout:
    """A locked account+address: seconds until it may try again."""

    retry_after: int


class LoginThrottle:
    """Counts failures and reports lockouts."""

    def __init__(self, attempts: Collection[Any], max_failures: int = 20, lock_seconds: int = 900) -> None:
        self._attempts = attempts
        self._max = max_failures
        self._lock = timedelta(seconds=lock_seconds)

    @staticmethod
    def _key(tenant_id: str, username: str, address: str) -> str:
        raw = f"{tenant_id}\x00{username.lower()}\x00{address}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def check(self, tenant_id: str, username: str, address: str) -> Lockout | None:
        """The lockout in force for this account and address, if any."""
        doc = self._attempts.find_one({"_id": self._key(tenant_id, username, address)})
        now = datetime.now(UTC)
        locked_until = doc.get("locked_until") if doc else None
        if locked_until is not None and locked_until > now:
            return Lockout(retry_after=max(1, int((locked_until - now).total_seconds() + 0.999)))
        return None

    def failed(self, tenant_id: str, username: str, address: str) -> Lockout | None:
        """Record one failure; returns the lockout when this failure reached the limit."""
        key = self._key(tenant_id, username, address)
        now = datetime.now(UTC)
        doc = self._attempts.find_one({"_id": key})
        if doc is not None and doc.get("expires_at") is not None and doc["expires_at"] <= now:
            # an expired window the TTL monitor has not removed yet: start over
            self._attempts.delete_one({"_id": key})
        doc = self._attempts.find_one_and_update(
            {"_id": key},
            {
                "$inc": {"count": 1},
                "$set": {"expires_at": now + self._lock, "last_at": now},
                "$setOnInsert": {"tenant_id": tenant_id, "first_at": now},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if doc is not None and int(doc.get("count", 0)) >= self._max:
            until = now + self._lock
            self._attempts.update_one({"_id": key}, {"$set": {"locked_until": until, "expires_at": until}})
            return Lockout(retry_after=int(self._lock.total_seconds()))
        return None

    def succeeded(self, tenant_id: str, username: str, address: str) -> None:
        """Forget the failures of this account and address."""
        self._attempts.delete_one({"_id": self._key(tenant_id, username, address)})
