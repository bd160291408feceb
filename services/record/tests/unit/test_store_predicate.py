"""store_predicate: `$lte` rewritten to `$lt` the successor, selecting the same values (a SecantusDB quirk)."""

from __future__ import annotations

from datetime import UTC, datetime

from record_service.store.repository import store_predicate


def test_lte_becomes_lt_the_successor_for_numbers_text_and_times() -> None:
    at = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)
    out = store_predicate({"a": {"$gte": 1, "$lte": 5}, "s": {"$lte": "2024-05-01"}, "t": {"$lte": at}, "k": 3})
    assert out["a"]["$gte"] == 1 and "$lte" not in out["a"] and 5 < out["a"]["$lt"] < 5.000001
    assert out["s"] == {"$lt": "2024-05-01\x00"} and "2024-05-01" < out["s"]["$lt"] < "2024-05-01 "
    assert out["t"] == {"$lt": datetime(2024, 5, 1, 8, 0, 0, 124000, tzinfo=UTC)}
    assert out["k"] == 3


def test_the_tighter_of_lt_and_the_successor_is_kept_and_booleans_stay() -> None:
    assert store_predicate({"a": {"$lte": 5, "$lt": 3}}) == {"a": {"$lt": 3}}
    assert store_predicate({"b": {"$lte": True}}) == {"b": {"$lte": True}}
