"""The MongoDB connection of a service (pymongo; mongoengine registered on it)."""

from __future__ import annotations

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
