"""The department tree of a tenant, kept as a materialised path.

Each department stores `parent_id` ("" for a root) and `path`, the ids from
the root down to itself: "/<root>/<child>/<self>/". A subtree is every
department whose path starts with the root's path. A tenant has tens to a few
hundred departments, so tree work loads the tenant's list (one indexed query on
tenant_id) and computes in Python rather than relying on regex queries.

Every request computes its user's subtree, so the list is cached in-process
per tenant under a revision (`meta` {_id: "departments:<tenant>", rev}) that
each write bumps after it is done: a request pays one point read of the
revision, and the list is read again only after a change (in any process).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from crm_runtime.errors import Conflict, NotFound
from gateway.domain_errors import domain_error, field_error
from gateway.i18n import t
from gateway.store import GatewayStore


def public_department(doc: dict[str, Any]) -> dict[str, Any]:
    """The API form of a department document."""
    ids = [p for p in doc["path"].split("/") if p]
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "parent_id": doc.get("parent_id") or None,
        "path": doc["path"],
        "ancestor_ids": ids[:-1],
        "depth": len(ids) - 1,
        "sort": doc.get("sort", 0),
        "created_at": doc.get("created_at"),
    }


def build_tree(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nest public departments under their parents (children sorted by sort, name)."""
    nodes = {d["id"]: {**d, "children": []} for d in items}
    roots: list[dict[str, Any]] = []
    for node in nodes.values():
        parent = nodes.get(node["parent_id"] or "")
        (parent["children"] if parent else roots).append(node)
    for node in [*nodes.values()]:
        node["children"].sort(key=lambda n: (n["sort"], n["name"]))
    roots.sort(key=lambda n: (n["sort"], n["name"]))
    return roots


class Departments:
    """Create, rename, move and delete departments; compute subtrees."""

    def __init__(self, store: GatewayStore, *, cache_size: int = 256) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._trees: OrderedDict[str, tuple[int, list[tuple[str, str]]]] = OrderedDict()
        self._cache_size = cache_size

    def _revision(self, tenant_id: str) -> int:
        doc = self._store.meta.find_one({"_id": f"departments:{tenant_id}"})
        return int(doc["rev"]) if doc is not None else 0

    def _changed(self, tenant_id: str) -> None:
        # after the write: a reader that saw the old revision cached at worst newer data under it
        self._store.meta.update_one({"_id": f"departments:{tenant_id}"}, {"$inc": {"rev": 1}}, upsert=True)

    def _paths(self, tenant_id: str) -> list[tuple[str, str]]:
        """(id, path) of every department of the tenant, from the cache while the revision is unchanged."""
        rev = self._revision(tenant_id)
        with self._lock:
            hit = self._trees.get(tenant_id)
            if hit is not None and hit[0] == rev:
                self._trees.move_to_end(tenant_id)
                return hit[1]
        paths = [(d["_id"], d["path"]) for d in self.all(tenant_id)]
        with self._lock:
            self._trees[tenant_id] = (rev, paths)
            while len(self._trees) > self._cache_size:
                self._trees.popitem(last=False)
        return paths

    def all(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every department document of the tenant, ordered by path."""
        docs = list(self._store.departments.find({"tenant_id": tenant_id}))
        return sorted(docs, key=lambda d: d["path"])

    def get(self, tenant_id: str, department_id: str) -> dict[str, Any]:
        """One department; 404 when it is not the tenant's."""
        doc = self._store.departments.find_one({"_id": department_id})
        if doc is None or doc.get("tenant_id") != tenant_id:
            raise domain_error(
                NotFound, "department_not_found", t("department_not_found", id=department_id), id=department_id
            )
        return doc

    def find(self, tenant_id: str, department_id: str) -> dict[str, Any] | None:
        """One department or None."""
        doc = self._store.departments.find_one({"_id": department_id})
        return doc if doc is not None and doc.get("tenant_id") == tenant_id else None

    def subtree_ids(self, tenant_id: str, department_id: str) -> list[str]:
        """The ids of `department_id` and every department below it (empty when it does not exist)."""
        if not department_id:
            return []
        paths = self._paths(tenant_id)
        root = next((path for dep_id, path in paths if dep_id == department_id), None)
        if root is None:
            return []
        return [dep_id for dep_id, path in paths if path.startswith(root)]

    def create(self, tenant_id: str, name: str, parent_id: str | None = None, sort: int = 0) -> dict[str, Any]:
        """A new department under `parent_id` (a root when empty)."""
        parent_path = "/"
        if parent_id:
            parent_path = self.get(tenant_id, parent_id)["path"]
        new_id = str(ObjectId())
        doc = {
            "_id": new_id,
            "tenant_id": tenant_id,
            "name": name,
            "parent_id": parent_id or "",
            "path": f"{parent_path}{new_id}/",
            "sort": sort,
            "created_at": datetime.now(UTC),
        }
        self._store.departments.insert_one(doc)
        self._changed(tenant_id)
        return doc

    def ensure(self, tenant_id: str, name: str, parent_id: str | None = None, sort: int = 0) -> dict[str, Any]:
        """The department `name` under `parent_id`, created when missing (seeding)."""
        for doc in self._store.departments.find({"tenant_id": tenant_id, "parent_id": parent_id or ""}):
            if doc["name"] == name:
                return doc
        return self.create(tenant_id, name, parent_id, sort)

    def update(
        self,
        tenant_id: str,
        department_id: str,
        *,
        name: str | None = None,
        sort: int | None = None,
        parent_id: str | None = None,
        move: bool = False,
    ) -> dict[str, Any]:
        """Rename and/or move (`move=True`: to `parent_id`, None/"" = root); refuses cycles."""
        doc = self.get(tenant_id, department_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if sort is not None:
            changes["sort"] = sort
        if changes:
            self._store.departments.update_one({"_id": department_id}, {"$set": changes})
        if move and (parent_id or "") != (doc.get("parent_id") or ""):
            self._move(tenant_id, doc, parent_id or "")
        return self.get(tenant_id, department_id)

    def _move(self, tenant_id: str, doc: dict[str, Any], parent_id: str) -> None:
        new_parent_path = "/"
        if parent_id:
            parent = self.get(tenant_id, parent_id)
            if parent["path"].startswith(doc["path"]):
                raise domain_error(
                    Conflict,
                    "department_cycle",
                    errors=[field_error("parent_id", "cycle", t("department_cycle")).to_dict()],
                )
            new_parent_path = parent["path"]
        old_prefix = doc["path"]
        new_prefix = f"{new_parent_path}{doc['_id']}/"
        ops = [UpdateOne({"_id": doc["_id"]}, {"$set": {"parent_id": parent_id, "path": new_prefix}})]
        for sub in self.all(tenant_id):
            if sub["_id"] != doc["_id"] and sub["path"].startswith(old_prefix):
                ops.append(
                    UpdateOne({"_id": sub["_id"]}, {"$set": {"path": new_prefix + sub["path"][len(old_prefix) :]}})
                )
        self._store.departments.bulk_write(ops, ordered=True)
        self._changed(tenant_id)

    def delete(self, tenant_id: str, department_id: str) -> None:
        """Delete an empty department (no users, no children)."""
        self.get(tenant_id, department_id)
        has_child = self._store.departments.find_one({"tenant_id": tenant_id, "parent_id": department_id})
        has_user = self._store.users.find_one({"tenant_id": tenant_id, "department_id": department_id})
        if has_child is not None or has_user is not None:
            raise domain_error(Conflict, "department_not_empty")
        self._store.departments.delete_one({"_id": department_id})
        self._changed(tenant_id)
