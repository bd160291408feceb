"""The gateway's own database (`crm_gateway`): collections and the indexes of every query path.

SecantusDB uses an index only when one index covers every predicate field, so
each query below names the index that serves it:

    tenants          find {_id}
    users            find {_id} (tenant checked in code); {tenant_id, username} unique;
                     {tenant_id} list (prefix); count {tenant_id, department_id}; {tenant_id, manager_id};
                     {tenant_id, roles} (multikey: holders of a role, tenant admins)
    roles            find {_id = "<tenant>:<key>"} (one or $in); {tenant_id, key} unique, {tenant_id} list (prefix)
    outbox           user.* event envelopes: pending {published} (OutboxRelay), mark by {_id}
    meta             find {_id} (one-off migration flags)
    departments      find {_id}; {tenant_id} list (prefix of tenant_id+parent_id); {tenant_id, parent_id}
    sessions         find {_id}; update {tenant_id, user_id} (revoke a user's sessions); TTL expires_at
    refresh_tokens   find-and-modify {_id = token hash}; TTL expires_at
    login_attempts   find / upsert {_id = tenant|username|address}; TTL expires_at
    audit_log        {tenant_id, seq} unique (+ seq range); {tenant_id, actor_id | action | object_type
                     | object_id, seq}; {tenant_id, object_type, object_id, seq}  (see gateway.audit)
    audit_head       find / conditional upsert {_id = tenant_id}
    audit_settings   find / upsert {_id = tenant_id}
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
    def roles(self) -> Collection[Any]:
        """Roles of every tenant ({_id: "<tenant>:<key>", permissions, version})."""
        return self.db["roles"]

    @property
    def outbox(self) -> Collection[Any]:
        """Event envelopes (user.*) waiting for the gateway relay."""
        return self.db["outbox"]

    @property
    def meta(self) -> Collection[Any]:
        """One-off flags of start-up migrations."""
        return self.db["meta"]

    @property
    def login_attempts(self) -> Collection[Any]:
        """Failed-login counters per tenant, account and address."""
        return self.db["login_attempts"]

    @property
    def audit_log(self) -> Collection[Any]:
        """The operation log: append-only, hash-chained entries per tenant (gateway.audit)."""
        return self.db["audit_log"]

    @property
    def audit_head(self) -> Collection[Any]:
        """Per tenant the newest operation-log entry known: {_id = tenant_id, seq, hash, at}."""
        return self.db["audit_head"]

    @property
    def audit_settings(self) -> Collection[Any]:
        """Per tenant the operation-log settings (sensitive forms)."""
        return self.db["audit_settings"]

    def ensure_indexes(self) -> None:
        """Create every index the query paths need (idempotent)."""
        self.users.create_indexes(
            [
                IndexModel([("tenant_id", ASCENDING), ("username", ASCENDING)], unique=True, name="tenant_username"),
                IndexModel([("tenant_id", ASCENDING), ("department_id", ASCENDING)], name="tenant_department"),
                IndexModel([("tenant_id", ASCENDING), ("manager_id", ASCENDING)], name="tenant_manager"),
                IndexModel([("tenant_id", ASCENDING), ("roles", ASCENDING)], name="tenant_roles"),
            ]
        )
        self.roles.create_indexes(
            [IndexModel([("tenant_id", ASCENDING), ("key", ASCENDING)], unique=True, name="tenant_key")]
        )
        self.outbox.create_indexes([IndexModel([("published", ASCENDING)], name="outbox_pending")])
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
        tenant, seq = ("tenant_id", ASCENDING), ("seq", ASCENDING)
        self.audit_log.create_indexes(
            [
                IndexModel([tenant, seq], unique=True, name="tenant_seq"),
                IndexModel([tenant, ("actor_id", ASCENDING), seq], name="tenant_actor_seq"),
                IndexModel([tenant, ("action", ASCENDING), seq], name="tenant_action_seq"),
                IndexModel([tenant, ("object_type", ASCENDING), seq], name="tenant_type_seq"),
                IndexModel(
                    [tenant, ("object_type", ASCENDING), ("object_id", ASCENDING), seq], name="tenant_object_seq"
                ),
                IndexModel([tenant, ("object_id", ASCENDING), seq], name="tenant_object_id_seq"),
            ]
        )

    def ping(self) -> bool:
        """True when the store answers."""
        return ping(self.db)
