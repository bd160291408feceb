"""Request rate limits per client (OWASP API4, unrestricted resource consumption).

A token bucket per client key in each gateway worker: the bearer token's hash
for authenticated calls, else the client address. `rate` requests a second are
refilled up to `burst`; a request that finds the bucket empty gets 429 with
`Retry-After`. Per worker and in memory on purpose: the check costs no store
round trip, and N workers allow at most N times the rate, which is what a
limit against a runaway client needs. Login failures have their own,
persistent throttle (gateway.throttle).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by client; `check(key)` returns 0 when allowed, else the seconds to wait."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when configured off (rate 0)."""
        return self.rate > 0 and self.burst > 0

    def check(self, key: str) -> int:
        """Spend one token of `key`'s bucket: 0 if there was one, else whole seconds until there is."""
        if not self.enabled:
            return 0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0
            else:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait


def client_key(authorization: str, address: str) -> str:
    """The bucket of a request: its bearer token (hashed) if any, else its address."""
    if authorization.lower().startswith("bearer ") and len(authorization) > 7:
        return "t:" + hashlib.sha256(authorization[7:].encode("utf-8")).hexdigest()[:32]
    return "a:" + (address or "unknown")
