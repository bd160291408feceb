"""The MongoDB connection of a service (pymongo; mongoengine registered on it)."""

from __future__ import annotations

import time
from typing import Any

import mongoengine
from pymongo import MongoClient
from pymongo.database import Database


def connect(url: str, db_name: str, *, alias: str = "default", **kwargs: Any) -> Database[Any]:
    """Open a client for `url`, register it with mongoengine as `alias`, return the database.

    The same client serves mongoengine models (the model layer) and direct
    pymongo use (hot paths), so there is one connection pool per process.
    """
    client: MongoClient[Any] = MongoClient(
        url,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=kwargs.pop("timeout_ms", 5000),
        **kwargs,
    )
    # re-registering an alias (a second connect in one process, e.g. tests) is an error
    mongoengine.disconnect(alias)
    mongoengine.connect(
        db=db_name,
        alias=alias,
        host=url,
        tz_aware=True,
        uuidRepresentation="standard",
        mongo_client_class=lambda *a, **k: client,
    )
    return client[db_name]


def ping(db: Database[Any]) -> bool:
    """True when the store answers."""
    try:
        db.client.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def wait_for_store(db: Database[Any], *, attempts: int = 60, delay: float = 1.0) -> Database[Any]:
    """Block until the store answers (a unit may start before its store); RuntimeError after `attempts`."""
    from crm_runtime.logging import get_logger

    log = get_logger("crm.mongo")
    for attempt in range(1, attempts + 1):
        if ping(db):
            return db
        log.warning("store_unreachable", attempt=attempt, retry_in=delay)
        time.sleep(delay)
    raise RuntimeError(f"the store did not answer after {attempts} attempts")
