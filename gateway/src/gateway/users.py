"""Users of a tenant: accounts, roles (several), attributes, departments, managers and the active flag.

A user document holds `roles` (keys, the primary first; `role` repeats the
primary for older readers), `role_versions` ({key: version} of those roles, see
gateway.roles), `attributes` (short strings a role condition may name as
{"$user": "attr.<key>"}) and `auth_version`, which a deactivation, a password
change or a role change bumps so every access token issued before stops working
on its next request. Each create, change of a replicated field (username, name,
department, active) and delete writes a `user.*` envelope into the outbox in
the same transaction (gateway.outbox).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from crm_runtime.errors import Conflict, FieldError, NotFound, ValidationFailed
from gateway.departments import Departments
from gateway.domain_errors import domain_error, field_error, invalid
from gateway.i18n import t
from gateway.outbox import REPLICATED_FIELDS, USER_CREATED, USER_DELETED, USER_UPDATED, user_event
from gateway.passwords import Passwords
from gateway.roles import Roles, user_role_keys
from gateway.store import GatewayStore
from gateway.tokens import TokenService

MAX_ROLES = 20
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_LENGTH = 256
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
DIRECTORY_FIELDS = ("id", "username", "name", "department_id", "active", "roles")


def public_user(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The API form of a user (never the password hash): what a tenant admin or the user themself sees."""
    roles = user_role_keys(doc)
    return {
        "id": doc["_id"],
        "tenant_id": doc["tenant_id"],
        "username": doc["username"],
        "name": doc.get("name") or doc["username"],
        "email": doc.get("email") or "",
        "phone": doc.get("phone") or "",
        "role": roles[0],
        "roles": roles,
        "attributes": dict(doc.get("attributes") or {}),
        "department_id": doc.get("department_id") or None,
        "manager_id": doc.get("manager_id") or None,
        "active": bool(doc.get("active", True)),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }


def directory_user(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What any other signed-in user of the tenant sees of a user (owner pickers): no e-mail, phone, attributes."""
    full = public_user(doc)
    return {k: full[k] for k in DIRECTORY_FIELDS}


def _field_error(field_name: str, rule: str, key: str, **params: Any) -> FieldError:
    return field_error(field_name, rule, t(key, **params))


def _invalid(errors: list[FieldError]) -> ValidationFailed:
    return invalid(errors)


def parse_attributes(raw: Any) -> dict[str, str]:
    """Validate user attributes: at most 32 keys (letters, digits, _), each a string of at most 256 characters."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _invalid([_field_error("attributes", "type", "attributes_type")])
    if len(raw) > MAX_ATTRIBUTES:
        raise _invalid([_field_error("attributes", "length", "attributes_too_many", limit=MAX_ATTRIBUTES)])
    out: dict[str, str] = {}
    for key, value in raw.items():
        path = f"attributes.{key}"
        if not isinstance(key, str) or not ATTRIBUTE_KEY.match(key):
            raise _invalid([_field_error(path, "pattern", "attribute_key_pattern", field=path)])
        if not isinstance(value, str) or len(value) > MAX_ATTRIBUTE_LENGTH:
            raise _invalid([_field_error(path, "type", "attribute_value", field=path, limit=MAX_ATTRIBUTE_LENGTH)])
        out[key] = value
    return out


def requested_roles(spec: Mapping[str, Any], default: list[str] | None) -> list[str] | None:
    """The role keys a request names (`roles`, or the older single `role`; `role` with `roles` = the primary)."""
    roles = spec.get("roles")
    role = spec.get("role")
    if roles is None and role is None:
        return default
    keys = [str(r) for r in (roles or [])]
    if role:
        keys = [str(role)] + [k for k in keys if k != role]
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise _invalid([_field_error("roles", "length", "roles_empty")])
    if len(keys) > MAX_ROLES:
        raise _invalid([_field_error("roles", "length", "roles_too_many", limit=MAX_ROLES)])
    return keys


class Users:
    """Create, read, update and delete users; role and reference checks; their directory events."""

    def __init__(
        self,
        store: GatewayStore,
        departments: Departments,
        passwords: Passwords,
        tokens: TokenService,
        roles: Roles | None = None,
    ):
        self._store = store
        self._departments = departments
        self._passwords = passwords
        self._tokens = tokens
        self.roles = roles or Roles(store)

    # ------------------------------------------------------------------ reading

    def find(self, tenant_id: str, user_id: str) -> dict[str, Any] | None:
        """A user document of the tenant, or None (one read on _id; the tenant is checked here)."""
        doc = self._store.users.find_one({"_id": user_id})
        return doc if doc is not None and doc.get("tenant_id") == tenant_id else None

    def get(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """A user document; 404 when missing."""
        doc = self.find(tenant_id, user_id)
        if doc is None:
            raise domain_error(NotFound, "user_not_found", t("user_not_found", id=user_id))
        return doc

    def by_username(self, tenant_id: str, username: str) -> dict[str, Any] | None:
        """The user with this login name, or None."""
        return self._store.users.find_one({"tenant_id": tenant_id, "username": username})

    def list(self, tenant_id: str, department_id: str | None = None) -> list[dict[str, Any]]:
        """Users of the tenant (optionally of one department), ordered by username."""
        query: dict[str, Any] = {"tenant_id": tenant_id}
        if department_id:
            query["department_id"] = department_id
        return sorted(self._store.users.find(query), key=lambda d: d["username"])

    def is_active_admin(self, doc: Mapping[str, Any]) -> bool:
        """True when the user is active and one of their roles grants tenant administration."""
        return bool(doc.get("active", True)) and self.roles.grants_admin(doc["tenant_id"], user_role_keys(doc))

    # ------------------------------------------------------------------ writing

    def _check_refs(self, tenant_id: str, department_id: str | None, manager_id: str | None, self_id: str = "") -> None:
        errors = []
        if department_id and self._departments.find(tenant_id, department_id) is None:
            errors.append(_field_error("department_id", "exists", "department_not_found", id=department_id))
        if manager_id and (manager_id == self_id or self.find(tenant_id, manager_id) is None):
            errors.append(_field_error("manager_id", "exists", "manager_not_found", id=manager_id))
        if errors:
            raise _invalid(errors)

    def _transaction(self, write: Callable[[Any], None]) -> None:
        with self._store.db.client.start_session() as session:
            session.with_transaction(write)

    def create(self, tenant_id: str, spec: dict[str, Any], actor: str = "system") -> dict[str, Any]:
        """A new user (and its user.created event); 409 when the username is taken, 422 for an unknown role."""
        keys = requested_roles(spec, ["sales"]) or ["sales"]
        versions = self.roles.validate_keys(tenant_id, keys)
        attributes = parse_attributes(spec.get("attributes"))
        self._check_refs(tenant_id, spec.get("department_id"), spec.get("manager_id"))
        now = datetime.now(UTC)
        doc = {
            "_id": str(ObjectId()),
            "tenant_id": tenant_id,
            "username": spec["username"],
            "name": spec.get("name") or spec["username"],
            "email": spec.get("email") or "",
            "phone": spec.get("phone") or "",
            "password_hash": self._passwords.hash(spec["password"]),
            "role": keys[0],
            "roles": keys,
            "role_versions": versions,
            "attributes": attributes,
            "department_id": spec.get("department_id") or "",
            "manager_id": spec.get("manager_id") or "",
            "active": spec.get("active", True),
            "auth_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        event = user_event(USER_CREATED, doc, actor)

        def write(session: Any) -> None:
            self._store.users.insert_one(doc, session=session)
            self._store.outbox.insert_one(event, session=session)

        try:
            self._transaction(write)
        except DuplicateKeyError:
            raise domain_error(
                Conflict,
                "username_taken",
                t("username_taken", username=spec["username"]),
                errors=[_field_error("username", "unique", "username_taken", username=spec["username"]).to_dict()],
            ) from None
        return doc

    def update(self, tenant_id: str, user_id: str, patch: dict[str, Any], actor: str = "system") -> dict[str, Any]:
        """Change a user.

        A new password or a deactivation bumps auth_version and ends their
        sessions; a role change bumps auth_version (access tokens stop working,
        a refresh issues one for the new roles). Demoting or deactivating the
        last active tenant admin is refused (409). A change of username, name,
        department or active flag writes a user.updated event.
        """
        doc = self.get(tenant_id, user_id)
        old_keys = user_role_keys(doc)
        keys = requested_roles(patch, None)
        changes: dict[str, Any] = {}
        if keys is not None and keys != old_keys:
            changes.update(role=keys[0], roles=keys, role_versions=self.roles.validate_keys(tenant_id, keys))
        if "attributes" in patch:
            changes["attributes"] = parse_attributes(patch["attributes"])
        self._check_refs(tenant_id, patch.get("department_id"), patch.get("manager_id"), self_id=user_id)
        for key in ("name", "email", "phone", "active"):
            if key in patch:
                changes[key] = patch[key]
        for key in ("department_id", "manager_id"):
            if key in patch:
                changes[key] = patch[key] or ""
        if patch.get("password"):
            changes["password_hash"] = self._passwords.hash(patch["password"])
        changes = {k: v for k, v in changes.items() if k == "password_hash" or doc.get(k) != v}
        if not changes:
            return doc
        after = {**doc, **changes}
        losing_admin = self.is_active_admin(doc) and not self.is_active_admin(after)
        if losing_admin and not self.roles.another_active_admin(tenant_id, user_id):
            raise domain_error(Conflict, "last_tenant_admin", t("last_tenant_admin"))
        deactivated = doc.get("active", True) and changes.get("active") is False
        revoke = "password_hash" in changes or deactivated
        bump = revoke or "roles" in changes
        changes["updated_at"] = datetime.now(UTC)
        update: dict[str, Any] = {"$set": changes}
        if bump:
            update["$inc"] = {"auth_version": 1}
        replicated = any(k in changes for k in REPLICATED_FIELDS)

        def write(session: Any) -> None:
            self._store.users.update_one({"_id": user_id}, update, session=session)
            if replicated:
                self._store.outbox.insert_one(user_event(USER_UPDATED, after, actor), session=session)

        self._transaction(write)
        if revoke:
            self._tokens.revoke_user(tenant_id, user_id)
        return self.get(tenant_id, user_id)

    def delete(self, tenant_id: str, user_id: str, acting_user_id: str) -> None:
        """Delete a user: their reports lose the manager link, their sessions end, a user.deleted goes out."""
        if user_id == acting_user_id:
            raise domain_error(Conflict, "cannot_delete_self")
        doc = self.get(tenant_id, user_id)
        if self.is_active_admin(doc) and not self.roles.another_active_admin(tenant_id, user_id):
            raise domain_error(Conflict, "last_tenant_admin", t("last_tenant_admin"))
        event = user_event(USER_DELETED, {**doc, "active": False}, acting_user_id)

        def write(session: Any) -> None:
            self._store.users.update_many(
                {"tenant_id": tenant_id, "manager_id": user_id}, {"$set": {"manager_id": ""}}, session=session
            )
            self._store.users.delete_one({"_id": user_id}, session=session)
            self._store.outbox.insert_one(event, session=session)

        self._transaction(write)
        self._tokens.revoke_user(tenant_id, user_id)

    def set_password(self, tenant_id: str, user_id: str, password: str) -> None:
        """Replace the password hash without ending sessions (seeding, rehash on login)."""
        self._store.users.update_one(
            {"_id": self.get(tenant_id, user_id)["_id"]},
            {"$set": {"password_hash": self._passwords.hash(password), "updated_at": datetime.now(UTC)}},
        )

    def change_password(self, tenant_id: str, user_id: str, password: str) -> dict[str, Any]:
        """A password change or reset: new hash, auth_version bumped, every session ended."""
        self.get(tenant_id, user_id)
        self._store.users.update_one(
            {"_id": user_id},
            {
                "$set": {"password_hash": self._passwords.hash(password), "updated_at": datetime.now(UTC)},
                "$inc": {"auth_version": 1},
            },
        )
        self._tokens.revoke_user(tenant_id, user_id)
        return self.get(tenant_id, user_id)

    def end_sessions(self, tenant_id: str, user_id: str) -> None:
        """Log out everywhere: auth_version bumped (access tokens die) and every session revoked (refresh dies)."""
        self._store.users.update_one({"_id": self.get(tenant_id, user_id)["_id"]}, {"$inc": {"auth_version": 1}})
        self._tokens.revoke_user(tenant_id, user_id)


def migrate_users(store: GatewayStore, roles: Roles) -> int:
    """Start-up migration of documents from before multi-role users: roles = [role], their versions stamped."""
    count = 0
    for doc in store.users.find({"roles": {"$exists": False}}, {"_id": 1, "tenant_id": 1, "role": 1}):
        keys = [str(doc.get("role") or "sales")]
        versions = {k: int(d.get("version", 1)) for k, d in roles.by_keys(doc["tenant_id"], keys).items()}
        store.users.update_one(
            {"_id": doc["_id"]},
            {"$set": {"roles": keys, "role": keys[0], "role_versions": versions, "attributes": {}}},
        )
        count += 1
    return count
