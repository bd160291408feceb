"""Users of a tenant: accounts, roles, departments, managers and the active flag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from crm_runtime.principal import ROLES
from gateway.departments import Departments
from gateway.errors import ApiError
from gateway.i18n import t
from gateway.passwords import Passwords
from gateway.store import GatewayStore
from gateway.tokens import TokenService

ROLE_SCOPES: dict[str, dict[str, str]] = {
    "admin": {"zh-CN": "全部数据：本租户的所有记录", "en": "All data: every record of the tenant"},
    "manager": {
        "zh-CN": "本部门及下级部门：所在部门子树中的成员拥有的记录",
        "en": "Department subtree: records owned by members of their department and its sub-departments",
    },
    "sales": {"zh-CN": "本人：自己拥有的记录", "en": "Own: records they own"},
}
ROLE_NAMES: dict[str, dict[str, str]] = {
    "admin": {"zh-CN": "管理员", "en": "Administrator"},
    "manager": {"zh-CN": "经理", "en": "Manager"},
    "sales": {"zh-CN": "销售", "en": "Sales"},
}


def public_user(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a user (never the password hash)."""
    return {
        "id": doc["_id"],
        "tenant_id": doc["tenant_id"],
        "username": doc["username"],
        "name": doc.get("name") or doc["username"],
        "email": doc.get("email") or "",
        "phone": doc.get("phone") or "",
        "role": doc["role"],
        "department_id": doc.get("department_id") or None,
        "manager_id": doc.get("manager_id") or None,
        "active": bool(doc.get("active", True)),
        "created_at": doc.get("created_at"),
        "updated_at": doc.get("updated_at"),
    }


def _field_error(field_name: str, rule: str, key: str, **params: Any) -> dict[str, Any]:
    return {"field": field_name, "rule": rule, "message": t(key, **params)}


class Users:
    """Create, read, update and delete users; role and reference checks."""

    def __init__(self, store: GatewayStore, departments: Departments, passwords: Passwords, tokens: TokenService):
        self._store = store
        self._departments = departments
        self._passwords = passwords
        self._tokens = tokens

    def find(self, tenant_id: str, user_id: str) -> dict[str, Any] | None:
        """A user document of the tenant, or None."""
        doc = self._store.users.find_one({"_id": user_id})
        return doc if doc is not None and doc.get("tenant_id") == tenant_id else None

    def get(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """A user document; 404 when missing."""
        doc = self.find(tenant_id, user_id)
        if doc is None:
            raise ApiError(404, "user_not_found", t("user_not_found", id=user_id))
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

    def _check_refs(self, tenant_id: str, department_id: str | None, manager_id: str | None, self_id: str = "") -> None:
        errors = []
        if department_id and self._departments.find(tenant_id, department_id) is None:
            errors.append(_field_error("department_id", "exists", "department_not_found", id=department_id))
        if manager_id and (manager_id == self_id or self.find(tenant_id, manager_id) is None):
            errors.append(_field_error("manager_id", "exists", "manager_not_found", id=manager_id))
        if errors:
            raise ApiError(422, "validation_failed", errors=errors)

    def create(self, tenant_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        """A new user; 409 when the username is taken."""
        role = spec.get("role", "sales")
        if role not in ROLES:
            raise ApiError(
                422, "validation_failed", errors=[_field_error("role", "choice", "invalid_value", field="role")]
            )
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
            "role": role,
            "department_id": spec.get("department_id") or "",
            "manager_id": spec.get("manager_id") or "",
            "active": spec.get("active", True),
            "created_at": now,
            "updated_at": now,
        }
        try:
            self._store.users.insert_one(doc)
        except DuplicateKeyError:
            raise ApiError(
                409,
                "username_taken",
                t("username_taken", username=spec["username"]),
                errors=[_field_error("username", "unique", "username_taken", username=spec["username"])],
            ) from None
        return doc

    def update(self, tenant_id: str, user_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Change a user; a new password, deactivation or role change ends their sessions."""
        doc = self.get(tenant_id, user_id)
        if "role" in patch and patch["role"] not in ROLES:
            raise ApiError(
                422, "validation_failed", errors=[_field_error("role", "choice", "invalid_value", field="role")]
            )
        self._check_refs(tenant_id, patch.get("department_id"), patch.get("manager_id"), self_id=user_id)
        changes: dict[str, Any] = {}
        for key in ("name", "email", "phone", "role", "active"):
            if key in patch:
                changes[key] = patch[key]
        for key in ("department_id", "manager_id"):
            if key in patch:
                changes[key] = patch[key] or ""
        if patch.get("password"):
            changes["password_hash"] = self._passwords.hash(patch["password"])
        if not changes:
            return doc
        changes["updated_at"] = datetime.now(UTC)
        self._store.users.update_one({"_id": user_id}, {"$set": changes})
        if (
            "password_hash" in changes
            or changes.get("active") is False
            or changes.get("role", doc["role"]) != doc["role"]
        ):
            self._tokens.revoke_user(tenant_id, user_id)
        return self.get(tenant_id, user_id)

    def delete(self, tenant_id: str, user_id: str, acting_user_id: str) -> None:
        """Delete a user: their reports lose the manager link and their sessions end."""
        if user_id == acting_user_id:
            raise ApiError(409, "cannot_delete_self")
        self.get(tenant_id, user_id)
        self._store.users.update_many({"tenant_id": tenant_id, "manager_id": user_id}, {"$set": {"manager_id": ""}})
        self._store.users.delete_one({"_id": user_id})
        self._tokens.revoke_user(tenant_id, user_id)

    def set_password(self, tenant_id: str, user_id: str, password: str) -> None:
        """Replace the password hash (seeding, rehash on login)."""
        self._store.users.update_one(
            {"_id": self.get(tenant_id, user_id)["_id"]},
            {"$set": {"password_hash": self._passwords.hash(password), "updated_at": datetime.now(UTC)}},
        )
