"""Unit tests of the per-client token bucket."""

from __future__ import annotations

from gateway.ratelimit import RateLimiter, client_key


def test_burst_then_refill_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.check("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.check("a") == 1  # empty: wait for one token at 2/s -> 1 s (rounded up)
    assert limiter.check("b") == 0  # other clients have their own bucket
    now[0] = 0.5
    assert limiter.check("a") == 0
    assert limiter.check("a") >= 1


def test_off_when_rate_is_zero() -> None:
    limiter = RateLimiter(rate=0, burst=0)
    assert all(limiter.check("a") == 0 for _ in range(1000))


def test_old_clients_are_forgotten_beyond_the_bound() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=2, clock=lambda: 0.0)
    for key in ("a", "b", "c"):
        assert limiter.check(key) == 0
    assert limiter.check("a") == 0  # "a" was evicted, so it starts with a full bucket again
    assert limiter.check("c") == 1


def test_key_is_the_token_hash_or_the_address() -> None:
    assert client_key("Bearer abc", "1.2.3.4").startswith("t:")
    assert "abc" not in client_key("Bearer abc", "1.2.3.4")
    assert client_key("", "1.2.3.4") == "a:1.2.3.4"
    assert client_key("Basic xyz", "") == "a:unknown"
