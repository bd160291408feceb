"""The public pool (公海池): records without an owner that members of a pool may see and claim.

Pools are defined in the workflow service (members, admins, caps, recycling
rules) and replicated here from its `pool.updated` / `pool.deleted` events
(store/pools.py), because what they mean for a record is decided where the
record is:

* a record in a pool has no owner, `pool_id` set and the acl token
  `p:<pool_id>`; `pool_entered_at` says since when, `former_owners` who had it
  (with the end of each one's cooldown);
* members of the pool (its users, and the users of its departments) see its
  records (`ListRecords` with `pool_id`, `GetRecord`), read-only, and claim them;
  the pool's admins (and tenant admins) also assign them;
* a claim is refused (422, the rule named, in the user's language) past the
  pool's caps: records of the form owned by the claimer (`max_owned_per_user`)
  or by the claimer's department (`max_owned_per_department`), claims per user
  per day (`max_claims_per_day`), and for a former owner within `cooldown_days`;
* a move into the pool (the owner or an admin returning it with a reason, the
  workflow recycling it), a claim and an assignment are each a history entry and
  an event: `record.owner_changed` with `pool_id` and `pool_action`
  (returned / claimed / assigned); a return clears the owner, so the record's
  scope follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from crm_runtime import access
from crm_runtime.errors import Forbidden, NotFound
from crm_runtime.principal import Principal
from record_service.domain import errors as rerr
from record_service.domain.approval_gate import refuse_if_locked
from record_service.domain.core import Loaded, RecordCore
from record_service.domain.repository import Transaction
from record_service.events import RECORD_OWNER_CHANGED

Doc = dict[str, Any]
POOL_TOKEN = "p:"
MAX_REASON = 500


def pool_token(pool_id: str) -> str:
    """The acl token a record in a pool carries."""
    return POOL_TOKEN + pool_id


def is_member(pool: Mapping[str, Any], principal: Principal) -> bool:
    """A user of the pool, or of one of its departments (the department itself, not its subtree)."""
    members = pool.get("members") or {}
    return principal.user_id in (members.get("users") or []) or (
        bool(principal.department_id) and principal.department_id in (members.get("departments") or [])
    )


def is_admin(pool: Mapping[str, Any], principal: Principal) -> bool:
    """The pool's admins, tenant admins and services."""
    return principal.kind == "service" or principal.is_admin or principal.user_id in (pool.get("admins") or [])


class PoolAccess:
    """The planner's AccessFilter for a pool's records: exactly those with the pool's acl token."""

    def __init__(self, pool_id: str) -> None:
        self.token = pool_token(pool_id)

    @property
    def pushdown(self) -> tuple[str, ...]:
        """One token."""
        return (self.token,)

    @property
    def exact(self) -> bool:
        """The token is the rule."""
        return True

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """The record carries the token."""
        return self.token in (doc.get("acl") or [])

    def paths(self) -> set[str]:
        """Only the acl."""
        return {"acl"}


class PublicPool:
    """MoveToPool, ClaimFromPool, AssignFromPool and the pool's read access."""

    def __init__(self, core: RecordCore, records: Any) -> None:
        self.core = core
        self.records = records  # the Records use case: form fields a move sets, and rendering

    def pool(self, principal: Principal, pool_id: str) -> Doc:
        """The replicated pool of the caller's tenant, else 404."""
        found = self.core.repo.pool(principal.tenant_id, pool_id) if pool_id else None
        if found is None:
            raise NotFound(rerr.message("pool_not_found", principal.locale, ref=pool_id), pool_id=pool_id)
        return found

    def readable(self, principal: Principal, doc: Mapping[str, Any]) -> bool:
        """True when `doc` sits in a pool the caller belongs to (or administers)."""
        pool_id = str(doc.get("pool_id") or "")
        if not pool_id or doc.get("tenant_id") != principal.tenant_id:
            return False
        pool = self.core.repo.pool(principal.tenant_id, pool_id)
        return pool is not None and (is_member(pool, principal) or is_admin(pool, principal))

    def load(self, principal: Principal, record_id: str) -> Loaded:
        """A live record the caller may see: by their own access, or as a member of its pool."""
        doc = self.core.repo.get(record_id) if record_id else None
        if doc is not None and not doc.get("deleted") and self.readable(principal, doc):
            return Loaded(doc, self.core.form(principal, str(doc["form_id"])))
        return self.core.load(principal, record_id)

    # ------------------------------------------------------------ moves

    def move(self, principal: Principal, record_id: str, pool_id: str, reason: str, data: Mapping[str, Any]) -> Doc:
        """Return a record to a pool of its form: its owner (or an owner's admin, or the workflow) with a reason."""
        pool = self.pool(principal, pool_id)
        loaded = self.core.load(principal, record_id)
        doc, form = loaded.doc, loaded.form
        refuse_if_locked(principal, doc)
        if str(pool.get("form_id")) != form.id:
            raise rerr.invalid("pool_id", "pool_other_form", principal.locale, pool=pool.get("name") or pool_id)
        if doc.get("pool_id") == pool_id and not doc.get("owner_id"):
            return self._rendered(principal, record_id)
        own = doc.get("owner_id") == principal.user_id
        if not (own or is_admin(pool, principal)):
            self.core.require_on(principal, loaded, "assign", shown="return_to_pool")
        if principal.kind != "service" and not str(reason or "").strip():
            raise rerr.invalid("reason", "required", principal.locale)
        now = self.core.clock()
        cooldown = timedelta(days=int(pool.get("cooldown_days") or 0))
        former = [f for f in doc.get("former_owners") or [] if f.get("user_id") != doc.get("owner_id")]
        if doc.get("owner_id"):
            former.append({"user_id": doc.get("owner_id"), "until": now + cooldown, "at": now})
        set_fields: Doc = {
            "owner_id": "",
            "department_id": "",
            "pool_id": pool_id,
            "pool_entered_at": now,
            "former_owners": former[-20:],
            "acl": sorted({*access.record_acl("", "", doc.get("shares") or []), pool_token(pool_id)}),
        }
        return self._write(
            principal,
            loaded,
            set_fields,
            data,
            "returned",
            pool_id,
            new_owner="",
            reason=str(reason or "")[:MAX_REASON],
        )

    def claim(self, principal: Principal, record_id: str) -> Doc:
        """A member takes a pool record, within the pool's caps and cooldown."""
        doc = self.core.repo.get(record_id) if record_id else None
        if doc is None or doc.get("deleted") or not doc.get("pool_id") or doc.get("tenant_id") != principal.tenant_id:
            raise rerr.record_not_found(record_id, principal.locale)
        pool = self.pool(principal, str(doc["pool_id"]))
        if not is_member(pool, principal):
            if not self.readable(principal, doc):
                raise rerr.record_not_found(record_id, principal.locale)
            raise Forbidden(
                rerr.message("pool_not_member", principal.locale, pool=pool.get("name")), rule="pool_member"
            )
        loaded = Loaded(doc, self.core.form(principal, str(doc["form_id"])))
        self._check_caps(principal, pool, loaded, principal.user_id, principal.department_id, claiming=True)
        return self._take(principal, loaded, pool, principal.user_id, "claimed")

    def assign(self, principal: Principal, record_id: str, owner_id: str) -> Doc:
        """A pool admin gives a pool record to a user (caps apply to them; cooldown does not)."""
        doc = self.core.repo.get(record_id) if record_id else None
        if doc is None or doc.get("deleted") or not doc.get("pool_id") or doc.get("tenant_id") != principal.tenant_id:
            raise rerr.record_not_found(record_id, principal.locale)
        pool = self.pool(principal, str(doc["pool_id"]))
        if not is_admin(pool, principal):
            if not self.readable(principal, doc):
                raise rerr.record_not_found(record_id, principal.locale)
            raise Forbidden(rerr.message("pool_not_admin", principal.locale, pool=pool.get("name")), rule="pool_admin")
        loaded = Loaded(doc, self.core.form(principal, str(doc["form_id"])))
        owner, department = self.core.owner_of(principal, loaded.form, owner_id)
        self._check_caps(principal, pool, loaded, owner, department, claiming=False)
        return self._take(principal, loaded, pool, owner, "assigned", department=department)

    def _check_caps(
        self,
        principal: Principal,
        pool: Mapping[str, Any],
        loaded: Loaded,
        user_id: str,
        department_id: str,
        *,
        claiming: bool,
    ) -> None:
        loc = principal.locale
        now = self.core.clock()
        if claiming:
            for former in loaded.doc.get("former_owners") or []:
                until = former.get("until")
                if former.get("user_id") == user_id and isinstance(until, datetime) and _aware(until) > now:
                    raise rerr.invalid("record_id", "pool_cooldown", loc, until=_aware(until).date().isoformat())
        prefix = {"tenant_id": principal.tenant_id, "form_id": loaded.form.id, "deleted": False}
        per_user = int(pool.get("max_owned_per_user") or 0)
        if per_user and self.core.repo.count({**prefix, "acl": f"u:{user_id}"}, limit=per_user) >= per_user:
            raise rerr.invalid("owner_id", "pool_cap_user", loc, max=per_user)
        per_department = int(pool.get("max_owned_per_department") or 0)
        if per_department and department_id:
            owned = self.core.repo.count({**prefix, "acl": f"d:{department_id}"}, limit=per_department)
            if owned >= per_department:
                raise rerr.invalid("owner_id", "pool_cap_department", loc, max=per_department)
        per_day = int(pool.get("max_claims_per_day") or 0)
        if claiming and per_day:
            day = now.astimezone(self.core.tz).date().isoformat() if self.core.tz else now.date().isoformat()
            if not self.core.repo.take_quota(f"claims|{principal.tenant_id}|{pool.get('id')}|{user_id}|{day}", per_day):
                raise rerr.invalid("record_id", "pool_cap_daily", loc, max=per_day)

    def _take(
        self,
        principal: Principal,
        loaded: Loaded,
        pool: Mapping[str, Any],
        owner: str,
        action: str,
        department: str = "",
    ) -> Doc:
        if not department:
            department = (
                principal.department_id if owner == principal.user_id else self._department_of(principal, owner)
            )
        shares = loaded.doc.get("shares") or []
        set_fields: Doc = {
            "owner_id": owner,
            "department_id": department,
            "pool_id": None,
            "pool_entered_at": None,
            "acl": access.record_acl(owner, department, shares),
        }
        return self._write(principal, loaded, set_fields, {}, action, str(pool.get("id")), new_owner=owner)

    def _department_of(self, principal: Principal, user_id: str) -> str:
        user = self.core.directory.user(principal.tenant_id, user_id) if self.core.directory else None
        return user.department_id if user is not None else ""

    def _write(
        self,
        principal: Principal,
        loaded: Loaded,
        set_fields: Doc,
        data: Mapping[str, Any],
        action: str,
        pool_id: str,
        *,
        new_owner: str,
        reason: str = "",
    ) -> Doc:
        doc, form = loaded.doc, loaded.form
        record_id = str(doc["_id"])
        version = int(doc.get("version") or 0)
        now = self.core.clock()
        set_fields = {**set_fields, "version": version + 1, "updated_at": now, "updated_by": principal.user_id}
        after = {**doc, **set_fields}
        entry = self.core.history_entry(
            RECORD_OWNER_CHANGED,
            principal,
            after,
            now,
            [{"field": "owner_id", "old": doc.get("owner_id") or None, "new": new_owner or None}],
            {
                "version": version + 1,
                "old_owner_id": doc.get("owner_id") or None,
                "new_owner_id": new_owner or None,
                "pool_id": pool_id,
                "pool_action": action,
                **({"reason": reason} if reason else {}),
            },
        )

        def txn(tx: Transaction) -> None:
            tx.update_record(record_id, version, set_fields)
            tx.insert_history([entry])

        self.core.versioned_write(txn, principal, form, record_id, version)
        if data:
            # the form's own fields the move sets at once (e.g. 进入公海时间), written by the platform
            robot = Principal.service(principal.tenant_id, "record", on_behalf=principal.on_behalf or principal.user_id)
            self.records.update(robot, record_id, dict(data), version + 1)
        return self._rendered(principal, record_id)

    def _rendered(self, principal: Principal, record_id: str) -> Doc:
        """The record as the caller now sees it (as its owner, or as a member of its pool), else its id only."""
        try:
            loaded = self.load(principal, record_id)
        except NotFound:
            return {"id": record_id}
        return dict(self.records.renderer.render_one(principal, loaded, self.core.context(principal)))


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
