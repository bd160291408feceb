"""The gateway's own database (`crm_gateway`): collections and the indexes of every query path.

SecantusDB uses an index only when one index covers every predicate field, so
each query below names the index that serves it:

    tenants          find {_id}
    users            find {_id} (tenant checked in code); {tenant_id, username} unique;
                     {tenant_id} list (prefix); count {tenant_id, department_id}; {tenant_id, manager_id}
    departments      find {_id}; {tenant_id} list (prefix of tenant_id+parent_id); {tenant_id, parent_id}
    sessions         find {_id}; update {tenant_id, user_id} (revoke a user's sessions); TTL expires_at
    refresh_tokens   find-and-modify {_id = token hash}; TTL expires_at
    login_attempts   find / upsert {_id = tenant|username|address}; TTL expires_at
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.collection import Collection
from pymongo.database import Database

from crm_runtime.mongo import connect, ping


@dataclass
class GatewayStore:
    """Typed access to the gateway's collections."""

    db: Database[Any]

    @classmethod
    def connect(cls, url: str, db_name: str) -> GatewayStore:
        """Open the database through crm_runtime (tz-aware client)."""
        # a fresh mongoengine alias per store: tests and in-process runs may open several
        return cls(connect(url, db_name, alias=f"gateway-{uuid.uuid4().hex}"))

    @property
    def tenants(self) -> Collection[Any]:
        """Tenants: {_id (key), name, time_zone}."""
        return self.db["tenants"]

    @property
    def users(self) -> Collection[Any]:
        """Users of every tenant."""
        return self.db["users"]

    @property
    def departments(self) -> Collection[Any]:
        """Departments with parent_id ("" for a root) and a materialised path."""
        return self.db["departments"]

    @property
    def sessions(self) -> Collection[Any]:
        """Refresh-token sessions (one per login)."""
        return self.db["sessions"]

    @property
    def refresh_tokens(self) -> Collection[Any]:
        """Hashes of refresh tokens, each used at most once."""
        return self.db["refresh_tokens"]

    @property
    def login_attempts(self) -> Collection[Any]:
        """Failed-login counters per tenant, account and address."""
        return self.db["login_attempts"]

    def ensure_indexes(self) -> None:
        """Create every index the query paths need (idempotent)."""
        self.users.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("username", ASCENDING)], unique=True, name="tenant_username"),
                IndexModel([("tenant_id", ASCENDING), ("department_id", ASCENDING)], name="tenant_department"),
                IndexModel([("tenant_id", ASCENDING), ("manager_id", ASCENDING)], name="tenant_manager"),
            ]
        )
        self.departments.create_indexes(
            [IndexModel([("tenant_id", ASCENDING), ("parent_id", ASCENDING)], name="tenant_parent")]
        )
        self.sessions.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="tenant_user"),
                IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl"),
            ]
        )
        self.refresh_tokens.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl")])
        self.login_attempts.create_indexes([IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="ttl")])

    def ping(self) -> bool:
        """True when the store answers."""
        return ping(self.db)
