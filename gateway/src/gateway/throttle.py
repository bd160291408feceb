"""Failed-login throttling per tenant, account and client address, with exponential backoff.

After `max_failures` failures for the same account from the same address the
pair is locked; other addresses (and other accounts) are not affected. The
first lock lasts `lock_seconds`; each further lock of the same pair before a
successful login doubles it, up to `max_lock_seconds` (15 min, 30 min, 1 h,
... 24 h). A successful login forgets everything.

Counters live in `login_attempts`, keyed by _id (the only predicate of every
query), and expire through a TTL index (and are checked against the clock,
since TTL removal lags). A failure window lasts `lock_seconds` after the last
failure; the lockout count is kept until `max_lock_seconds` after the last
lock ended.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.collection import Collection


@dataclass(frozen=True)
class Lockout:
    """A locked account+address: seconds until it may try again."""

    retry_after: int


class LoginThrottle:
    """Counts failures and reports lockouts."""

    def __init__(
        self,
        attempts: Collection[Any],
        max_failures: int = 20,
        lock_seconds: int = 900,
        max_lock_seconds: int = 24 * 3600,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._attempts = attempts
        self._clock = clock or (lambda: datetime.now(UTC))
        self._max = max_failures
        self._lock = timedelta(seconds=lock_seconds)
        self._max_lock = timedelta(seconds=max(lock_seconds, max_lock_seconds))

    @staticmethod
    def _key(tenant_id: str, username: str, address: str) -> str:
        raw = f"{tenant_id}\x00{username.lower()}\x00{address}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def lock_duration(self, lockouts: int) -> timedelta:
        """How long the `lockouts`-th consecutive lock lasts (1 = the first)."""
        factor = 2 ** min(max(lockouts, 1) - 1, 32)
        return min(self._lock * factor, self._max_lock)

    def check(self, tenant_id: str, username: str, address: str) -> Lockout | None:
        """The lockout in force for this account and address, if any."""
        doc = self._attempts.find_one({"_id": self._key(tenant_id, username, address)})
        now = self._clock()
        locked_until = doc.get("locked_until") if doc else None
        if locked_until is not None and locked_until > now:
            return Lockout(retry_after=max(1, int((locked_until - now).total_seconds() + 0.999)))
        return None

    def failed(self, tenant_id: str, username: str, address: str) -> Lockout | None:
        """Record one failure; returns the lockout when this failure reached the limit."""
        key = self._key(tenant_id, username, address)
        now = self._clock()
        doc = self._attempts.find_one({"_id": key})
        if doc is not None:
            if doc.get("expires_at") is not None and doc["expires_at"] <= now:
                # expired (failures and lockout history) but not yet removed by the TTL monitor: start over
                self._attempts.delete_one({"_id": key})
            elif doc.get("window_until") is not None and doc["window_until"] <= now and doc.get("count"):
                # the failure window passed (or the lock was served): count anew, keep the lockout history
                self._attempts.update_one({"_id": key}, {"$set": {"count": 0}})
        # update then read, never findAndModify (the local store answers it by scanning the collection)
        self._attempts.update_one(
            {"_id": key},
            {
                "$inc": {"count": 1},
                "$set": {"window_until": now + self._lock, "last_at": now},
                "$setOnInsert": {"tenant_id": tenant_id, "first_at": now, "lockouts": 0},
            },
            upsert=True,
        )
        doc = self._attempts.find_one({"_id": key})
        self._extend_expiry(key, doc, now + self._lock)
        if doc is None or int(doc.get("count", 0)) < self._max:
            return None
        # this failure reached the limit: start a lock (a compare-and-set: only one of concurrent failures does)
        started = self._attempts.update_one(
            {"_id": key, "count": {"$gte": self._max}}, {"$set": {"count": 0}, "$inc": {"lockouts": 1}}
        )
        after = self._attempts.find_one({"_id": key}) if started.modified_count == 1 else None
        if after is None:
            return None
        duration = self.lock_duration(int(after.get("lockouts", 1)))
        until = now + duration
        self._attempts.update_one(
            {"_id": key},
            {"$set": {"locked_until": until, "window_until": until, "expires_at": until + self._max_lock}},
        )
        return Lockout(retry_after=int(duration.total_seconds()))

    def _extend_expiry(self, key: str, doc: dict[str, Any] | None, at_least: datetime) -> None:
        current = doc.get("expires_at") if doc else None
        if current is None or current < at_least:
            self._attempts.update_one({"_id": key}, {"$set": {"expires_at": at_least}})

    def succeeded(self, tenant_id: str, username: str, address: str) -> None:
        """Forget the failures and lockouts of this account and address."""
        self._attempts.delete_one({"_id": self._key(tenant_id, username, address)})
