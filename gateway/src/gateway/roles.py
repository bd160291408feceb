"""Roles as data: `roles` in crm_gateway, any number per tenant, and the compiled policy of a user.

A role document:

    {_id: "<tenant>:<key>", tenant_id, key, name, description, permissions, version, created_at, updated_at}

`permissions` is the permission document of docs/security.md, validated by
crm_runtime.access.RoleDefinition.parse. The built-in admin, manager and sales
(crm_runtime.access.BUILTIN_ROLES) are seeded per tenant as ordinary editable
roles. `name` and `description` are a string or {"zh-CN": ..., "en": ...}.

Each change bumps the role's `version` and stamps the new version on every
user holding it (`users.role_versions.<key>`), so the user document alone names
the role versions its policy was compiled from: `PolicyCache` keys compiled
policies by (tenant, role keys with versions, user variables) and a request
needs no read of the roles while nothing changed.
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from crm_runtime.access import BUILTIN_ROLES, Policy, PolicyError, RoleDefinition, compile_policy, user_variables
from crm_runtime.errors import Conflict, FieldError, NotFound
from gateway.domain_errors import domain_error, field_error, invalid
from gateway.i18n import current_locale, t
from gateway.store import GatewayStore

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_PERMISSION_MEMBERS = {"tenant_admin", "default", "forms"}

BUILTIN_TEXT: dict[str, dict[str, dict[str, str]]] = {
    "admin": {
        "name": {"zh-CN": "管理员", "en": "Administrator"},
        "description": {
            "zh-CN": "全部数据：本租户的所有记录；租户管理",
            "en": "All data of the tenant; tenant administration",
        },
    },
    "manager": {
        "name": {"zh-CN": "经理", "en": "Manager"},
        "description": {
            "zh-CN": "本部门及下级部门：所在部门子树中的成员拥有的记录",
            "en": "Department subtree: records owned by members of their department and its sub-departments",
        },
    },
    "sales": {
        "name": {"zh-CN": "销售", "en": "Sales"},
        "description": {"zh-CN": "本人：自己拥有的记录", "en": "Own: records they own"},
    },
}


def role_id(tenant_id: str, key: str) -> str:
    """The _id of a role document."""
    return f"{tenant_id}:{key}"


def localized(value: Any, locale: str | None = None) -> str:
    """A name or description in the request's language (a plain string is returned as is)."""
    if isinstance(value, Mapping):
        loc = locale or current_locale()
        return str(value.get(loc) or value.get("zh-CN") or value.get("en") or next(iter(value.values()), ""))
    return str(value or "")


def public_role(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The API form of a role."""
    perms = doc.get("permissions") or {}
    return {
        "key": doc["key"],
        "name": localized(doc.get("name")) or doc["key"],
        "description": localized(doc.get("description")),
        "permissions": perms,
        "tenant_admin": bool(perms.get("tenant_admin", False)),
        "data_scope": (perms.get("default") or {}).get("scope", "own"),
        "builtin": doc["key"] in BUILTIN_ROLES,
        "version": int(doc.get("version", 1)),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }


def _field_error(field_name: str, rule: str, key: str, **params: Any) -> FieldError:
    return field_error(field_name, rule, t(key, field=field_name, **params))


def parse_permissions(key: str, raw: Any) -> RoleDefinition:
    """Validate a permission document; 422 naming the member (`permissions.<path>`) and the rule."""
    if not isinstance(raw, Mapping):
        raise invalid([_field_error("permissions", "type", "role_policy_type", detail="")])
    unknown = sorted(set(raw) - _PERMISSION_MEMBERS)
    if unknown:
        path = f"permissions.{unknown[0]}"
        raise invalid([_field_error(path, "unknown_member", "role_policy_unknown_member")])
    try:
        return RoleDefinition.parse(key, raw)
    except PolicyError as exc:
        path = f"permissions.{exc.field}"
        message_key = f"role_policy_{exc.rule}" if exc.rule in ("type", "unknown_member", "option") else "invalid_value"
        error = field_error(path, exc.rule, t(message_key, field=path, detail=exc.detail), detail=exc.detail)
        raise invalid([error]) from None


def parse_text(value: Any, field_name: str, limit: int) -> str | dict[str, str]:
    """A name or description: a string, or {"zh-CN": ..., "en": ...}, each at most `limit` characters."""
    if isinstance(value, str) and len(value) <= limit:
        return value
    if (
        isinstance(value, Mapping)
        and value
        and set(value) <= {"zh-CN", "en"}
        and all(isinstance(v, str) and len(v) <= limit for v in value.values())
    ):
        return {str(k): str(v) for k, v in value.items()}
    raise invalid([_field_error(field_name, "type", "role_text_invalid", limit=limit)])


_TEXT_LIMITS = {"name": 64, "description": 500}


class Roles:
    """Create, read, update and delete the roles of a tenant; the definitions a user's policy is compiled from."""

    def __init__(self, store: GatewayStore) -> None:
        self._store = store

    # ------------------------------------------------------------------ reading

    def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's roles: built-ins first (admin, manager, sales), then by key."""
        docs = list(self._store.roles.find({"tenant_id": tenant_id}))
        order = list(BUILTIN_ROLES)
        return sorted(docs, key=lambda d: (order.index(d["key"]) if d["key"] in order else len(order), d["key"]))

    def find(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        """One role or None."""
        return self._store.roles.find_one({"_id": role_id(tenant_id, key)})

    def get(self, tenant_id: str, key: str) -> dict[str, Any]:
        """One role; 404 when the tenant has none with this key."""
        doc = self.find(tenant_id, key)
        if doc is None:
            raise domain_error(NotFound, "role_not_found", t("role_not_found", role=key))
        return doc

    def by_keys(self, tenant_id: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The role documents of these keys that exist ({key: doc}); one read on _id."""
        if not keys:
            return {}
        ids = [role_id(tenant_id, k) for k in dict.fromkeys(keys)]
        return {d["key"]: d for d in self._store.roles.find({"_id": {"$in": ids}})}

    def admin_keys(self, tenant_id: str) -> builtins.list[str]:
        """Keys of the tenant's roles that grant tenant administration."""
        return [d["key"] for d in self._store.roles.find({"tenant_id": tenant_id}) if _is_admin_doc(d)]

    def validate_keys(self, tenant_id: str, keys: Sequence[str], field_name: str = "roles") -> dict[str, int]:
        """{key: version} of existing roles; 422 naming the first unknown key."""
        found = self.by_keys(tenant_id, keys)
        missing = [k for k in keys if k not in found]
        if missing:
            raise invalid([field_error(field_name, "exists", t("role_not_found", role=missing[0]), key=missing[0])])
        return {k: int(found[k].get("version", 1)) for k in keys}

    # ------------------------------------------------------------------ writing

    def ensure_builtins(self, tenant_id: str) -> int:
        """Insert the built-in roles the tenant lacks (an edited built-in is left alone); returns how many."""
        now = datetime.now(UTC)
        added = 0
        for key, perms in BUILTIN_ROLES.items():
            result = self._store.roles.update_one(
                {"_id": role_id(tenant_id, key)},
                {
                    "$setOnInsert": {
                        "tenant_id": tenant_id,
                        "key": key,
                        "name": BUILTIN_TEXT[key]["name"],
                        "description": BUILTIN_TEXT[key]["description"],
                        "permissions": RoleDefinition.parse(key, perms).to_json(),
                        "version": 1,
                        "created_at": now,
                        "updated_at": now,
                    }
                },
                upsert=True,
            )
            added += 1 if result.upserted_id is not None else 0
        return added

    def create(self, tenant_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A new role; 409 when the key is taken, 422 for a malformed permission document."""
        key = str(body["key"])
        if not KEY_PATTERN.match(key):
            raise invalid([_field_error("key", "pattern", "role_key_pattern")])
        definition = parse_permissions(key, body.get("permissions", {}))
        now = datetime.now(UTC)
        doc = {
            "_id": role_id(tenant_id, key),
            "tenant_id": tenant_id,
            "key": key,
            "name": parse_text(body.get("name") or key, "name", _TEXT_LIMITS["name"]),
            "description": parse_text(body.get("description") or "", "description", _TEXT_LIMITS["description"]),
            "permissions": definition.to_json(),
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
        try:
            self._store.roles.insert_one(doc)
        except DuplicateKeyError:
            raise domain_error(
                Conflict,
                "role_exists",
                t("role_exists", role=key),
                errors=[field_error("key", "unique", t("role_exists", role=key)).to_dict()],
            ) from None
        return doc

    def update(self, tenant_id: str, key: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Change name, description and/or permissions; bumps `version` and stamps it on the role's holders.

        Taking tenant administration away from the role that the last active
        tenant admin holds it through is refused (409).
        """
        doc = self.get(tenant_id, key)
        changes: dict[str, Any] = {}
        for member in ("name", "description"):
            if member in patch:
                value = patch[member] or ("" if member == "description" else key)
                changes[member] = parse_text(value, member, _TEXT_LIMITS[member])
        if "permissions" in patch:
            definition = parse_permissions(key, patch["permissions"])
            changes["permissions"] = definition.to_json()
            if _is_admin_doc(doc) and not definition.tenant_admin:
                remaining = [k for k in self.admin_keys(tenant_id) if k != key]
                if not self._has_active_holder(tenant_id, remaining):
                    raise domain_error(Conflict, "last_tenant_admin", t("last_tenant_admin"))
        if not changes:
            return doc
        changes["updated_at"] = datetime.now(UTC)
        # update then read (not findAndModify: the local store answers it by scanning the collection)
        self._store.roles.update_one({"_id": doc["_id"]}, {"$set": changes, "$inc": {"version": 1}})
        after = self._store.roles.find_one({"_id": doc["_id"]})
        if after is None:  # deleted meanwhile
            raise domain_error(NotFound, "role_not_found", t("role_not_found", role=key))
        self._store.users.update_many(
            {"tenant_id": tenant_id, "roles": key}, {"$set": {f"role_versions.{key}": int(after["version"])}}
        )
        return after  # type: ignore[no-any-return]

    def delete(self, tenant_id: str, key: str) -> None:
        """Delete a role no user holds (409 otherwise)."""
        doc = self.get(tenant_id, key)
        holder = self._store.users.find_one({"tenant_id": tenant_id, "roles": key}, {"_id": 1})
        if holder is not None:
            raise domain_error(Conflict, "role_in_use", t("role_in_use", role=key))
        self._store.roles.delete_one({"_id": doc["_id"]})

    def _has_active_holder(self, tenant_id: str, keys: Sequence[str], exclude_user: str = "") -> bool:
        if not keys:
            return False
        for user in self._store.users.find(
            {"tenant_id": tenant_id, "roles": {"$in": list(keys)}}, {"_id": 1, "active": 1}
        ):
            if user["_id"] != exclude_user and user.get("active", True):
                return True
        return False

    def another_active_admin(self, tenant_id: str, user_id: str) -> bool:
        """True when someone other than `user_id` is an active tenant admin."""
        return self._has_active_holder(tenant_id, self.admin_keys(tenant_id), exclude_user=user_id)

    def grants_admin(self, tenant_id: str, keys: Sequence[str]) -> bool:
        """True when one of these roles grants tenant administration."""
        return any(_is_admin_doc(d) for d in self.by_keys(tenant_id, keys).values())


def _is_admin_doc(doc: Mapping[str, Any]) -> bool:
    return bool((doc.get("permissions") or {}).get("tenant_admin", False))


def user_role_keys(user: Mapping[str, Any]) -> list[str]:
    """A user's role keys, primary first (documents from before multi-role hold a single `role`)."""
    roles = user.get("roles")
    if isinstance(roles, list) and roles:
        return [str(r) for r in roles]
    return [str(user.get("role") or "sales")]


class PolicyCache:
    """Compiled policies in this process, keyed by (tenant, role keys with versions, user variables).

    The versions come from the user document (`role_versions`), so a hit costs
    no read. Entries also expire after `ttl` seconds, which bounds how long a
    stamp missed by a crash between a role write and its stamping can last.
    """

    def __init__(self, roles: Roles, *, size: int = 4096, ttl: float = 60.0) -> None:
        self._roles = roles
        self._size = size
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, Policy]] = OrderedDict()
        self.misses = 0

    def policy(self, user: Mapping[str, Any]) -> Policy:
        """The compiled policy of a user document."""
        tenant_id = str(user["tenant_id"])
        keys = user_role_keys(user)
        stamps = user.get("role_versions") or {}
        attributes = user.get("attributes") or {}
        variables = user_variables(str(user["_id"]), str(user.get("department_id") or ""), attributes)
        cache_key = (
            tenant_id,
            tuple(sorted((k, int(stamps.get(k, 0))) for k in set(keys))),
            tuple(sorted((k, str(v)) for k, v in variables.items())),
        )
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(cache_key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(cache_key)
                return hit[1]
        self.misses += 1
        docs = self._roles.by_keys(tenant_id, keys)
        definitions = [RoleDefinition.parse(k, docs[k].get("permissions") or {}) for k in keys if k in docs]
        policy = compile_policy(definitions, variables)
        with self._lock:
            self._entries[cache_key] = (now + self._ttl, policy)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return policy
