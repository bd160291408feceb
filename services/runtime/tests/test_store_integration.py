"""The local store as `make run` starts it (crm_runtime.store) keeps loading past its dirty-page trigger."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from crm_runtime import store as store_module
from crm_runtime.testing import start_store

CACHE = "48M"  # small, so the load below dirties several times WiredTiger's default dirty trigger (20 %)
DOCS = 3_000  # in transactions of 200, each with 40 keyword tokens spread over the whole index
TOKENS = [f"t{i:05d}" for i in range(20_000)]


def _load(url: str, deadline: float) -> int:
    """Insert DOCS documents the way a bulk create does; return how many were written before the deadline."""
    client: MongoClient[dict[str, object]] = MongoClient(url, socketTimeoutMS=int(deadline * 1000), timeoutMS=None)
    coll = client["load"]["records"]
    coll.create_index([("t", 1), ("f", 1), ("kw", 1)])
    for field in ("a", "b", "c"):
        coll.create_index([("t", 1), ("f", 1), (field, 1), ("kp", 1)])
    rnd = random.Random(7)
    written, t0 = 0, time.monotonic()
    try:
        while written < DOCS and time.monotonic() - t0 < deadline:
            docs = [
                {
                    "t": "tenant-0123456789abcdef0123",
                    "f": "form-0123456789abcdef01234",
                    "kw": rnd.sample(TOKENS, 40),
                    "kp": rnd.randrange(65536),
                    **{field: rnd.randrange(10_000) for field in ("a", "b", "c")},
                    "pad": "x" * 600,
                }
                for _ in range(200)
            ]
            with client.start_session() as session:
                session.with_transaction(lambda s, docs=docs: coll.insert_many(docs, session=s))
            written += len(docs)
    except PyMongoError:
        pass  # a wedged store times the socket out
    finally:
        client.close()
    return written


@pytest.mark.timeout(300)
def test_a_load_goes_on_past_the_dirty_trigger() -> None:
    store = start_store(cache_size=CACHE)
    try:
        home = os.path.join(store.path, "db")
        with open(os.path.join(home, "WiredTiger.config")) as fh:
            assert fh.read() == store_module.WIREDTIGER_CONFIG
        assert _load(store.url, deadline=120) == DOCS
        environ = Path(f"/proc/{store.process.pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_ARENA_MAX=2" in environ
    finally:
        store.stop()
