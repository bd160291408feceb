"""First-start data: the default tenant, departments, the roles, the admin user and the CRM template.

Idempotent: run by `python -m gateway seed` and at every `serve` start-up.
Every tenant gets the built-in roles (admin, manager, sales) it lacks, user
documents from before multi-role users get `roles = [role]`, and, once per
installation (a `meta` flag), a user.updated event per existing user fills
the record service's directory replica.
The admin password comes from CRM_ADMIN_PASSWORD or is generated once into
<CRM_DATA_DIR>/admin-password (mode 600) and re-used; only that path is logged.

With the CRM template, the default tenant gets the organisation its approvals
and automations name (docs: CRM_TEMPLATE.md): the department 客服部, the roles
sales_director, finance_director and customer_service, and the users gm,
sales_manager, sales1, sales2, cfo and support. It is ordinary data made
through the same Departments, Roles and Users a tenant admin uses, and each
item is made at most once (`meta` {_id: "seed:organisation:<tenant>"} names
what was made): a second start makes nothing, and what an admin edited,
renamed or deleted since stays so. An item an admin made first under the same
username or role key is taken as it is. The users' passwords are random and
kept nowhere: nobody logs in as them until an admin resets the password.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from crm.form.v1 import form_pb2
from crm.workflow.v1 import workflow_pb2
from crm_runtime.errors import Conflict
from crm_runtime.logging import get_logger
from crm_runtime.principal import Principal
from gateway.clients import ServiceClient
from gateway.departments import Departments
from gateway.outbox import backfill_user_directory
from gateway.passwords import Passwords, generate_password
from gateway.roles import Roles
from gateway.settings import Settings
from gateway.store import GatewayStore
from gateway.tokens import TokenService
from gateway.users import Users, migrate_users

log = get_logger("crm.gateway.seed")

DEFAULT_TENANT = "default"
ADMIN_USERNAME = "admin"
# (name, children) in display order
DEPARTMENTS: list[tuple[str, list[str]]] = [
    ("总经理办公室", []),
    ("销售部", ["销售一组", "销售二组"]),
    ("财务部", []),
]

# --- the organisation of the CRM template (seed_organisation)

# (stable key in the seed's record, name) of the root departments the organisation adds, after DEPARTMENTS
ORGANISATION_DEPARTMENTS: list[tuple[str, str]] = [("customer_service", "客服部")]

_SALES_WORK = ["view", "create", "edit", "export", "assign", "claim", "approve"]
ORGANISATION_ROLES: dict[str, dict[str, Any]] = {
    "sales_director": {
        "name": {"zh-CN": "销售总监", "en": "Sales director"},
        "description": {
            "zh-CN": "全部销售数据（客户、联系人、线索、商机、跟进、报价单、合同、任务、目标），"
            "审批报价单和合同；回款只读",
            "en": "All sales data (customers, contacts, leads, opportunities, follow-ups, quotations, contracts, "
            "tasks, targets), approves quotations and contracts; payments read-only",
        },
        "permissions": {
            "default": {"actions": ["view", "export"], "scope": "department_tree"},
            "forms": {
                **{
                    form: {"actions": _SALES_WORK, "scope": "all"}
                    for form in (
                        "customer",
                        "contact",
                        "lead",
                        "opportunity",
                        "follow_up",
                        "quotation",
                        "contract",
                        "task",
                        "sales_target",
                    )
                },
                "payment": {"actions": ["view", "export"], "scope": "all"},
                "payment_plan": {"actions": ["view", "export"], "scope": "all"},
            },
        },
    },
    "finance_director": {
        "name": {"zh-CN": "财务总监", "en": "Finance director"},
        "description": {
            "zh-CN": "全部合同、报价单、回款和回款计划，审批合同和报价单，登记回款；客户、销售目标只读",
            "en": "All contracts, quotations, payments and payment plans, approves contracts and quotations, "
            "records payments; customers and sales targets read-only",
        },
        "permissions": {
            "default": {"actions": [], "scope": "own"},
            "forms": {
                "contract": {"actions": ["view", "export", "approve"], "scope": "all"},
                "quotation": {"actions": ["view", "export", "approve"], "scope": "all"},
                "payment": {"actions": ["view", "create", "edit", "delete", "export", "import"], "scope": "all"},
                "payment_plan": {"actions": ["view", "create", "edit", "export"], "scope": "all"},
                "customer": {"actions": ["view"], "scope": "all"},
                "sales_target": {"actions": ["view", "export"], "scope": "all"},
            },
        },
    },
    "customer_service": {
        "name": {"zh-CN": "客服", "en": "Customer service"},
        "description": {
            "zh-CN": "全部服务工单（处理、分派、领取）；查看客户、联系人，查看和填写跟进记录",
            "en": "All service tickets (handle, assign, claim); customers and contacts read-only, "
            "follow-ups read and written",
        },
        "permissions": {
            "default": {"actions": [], "scope": "own"},
            "forms": {
                "ticket": {"actions": ["view", "create", "edit", "export", "assign", "claim"], "scope": "all"},
                "customer": {"actions": ["view"], "scope": "all"},
                "contact": {"actions": ["view"], "scope": "all"},
                "follow_up": {"actions": ["view", "create"], "scope": "all"},
            },
        },
    },
}


@dataclass(frozen=True)
class OrganisationUser:
    """A user the CRM template's processes name; `department` is the path of names from the root."""

    username: str
    name: str
    department: tuple[str, ...]
    roles: tuple[str, ...]
    manager: str = ""  # the manager's username (seeded before this user)


ORGANISATION_USERS: tuple[OrganisationUser, ...] = (
    OrganisationUser("gm", "总经理", ("总经理办公室",), ("manager",)),
    OrganisationUser("sales_manager", "销售经理", ("销售部",), ("manager", "sales_director"), manager="gm"),
    OrganisationUser("sales1", "销售代表一", ("销售部", "销售一组"), ("sales",), manager="sales_manager"),
    OrganisationUser("sales2", "销售代表二", ("销售部", "销售一组"), ("sales",), manager="sales_manager"),
    OrganisationUser("cfo", "财务总监", ("财务部",), ("manager", "finance_director"), manager="gm"),
    OrganisationUser("support", "客服", ("客服部",), ("sales", "customer_service")),
)


@dataclass
class OrganisationResult:
    """What seed_organisation made this time (empty on every later start)."""

    departments: dict[str, str] = field(default_factory=dict)  # name -> id
    roles: list[str] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # username -> id


@dataclass
class SeedResult:
    """What the seed did; `settings` is what seed_directory ran with, for the steps after it."""

    tenant_id: str
    admin_id: str
    admin_created: bool
    password_file: Path | None
    template_installed: bool
    settings: Settings | None = field(default=None, repr=False)
    organisation: OrganisationResult | None = None


def admin_password(settings: Settings, *, create: bool) -> tuple[str | None, Path | None]:
    """The admin password: CRM_ADMIN_PASSWORD, else the generated file (made when `create`)."""
    if settings.admin_password:
        return settings.admin_password, None
    path = settings.data_dir / "admin-password"
    if path.exists():
        return path.read_text(encoding="utf-8").strip(), path
    if not create:
        return None, None
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(password + "\n")
    return password, path


def seed_directory(settings: Settings, store: GatewayStore) -> SeedResult:
    """Tenant, departments and admin in the gateway's database."""
    store.ensure_indexes()
    now = datetime.now(UTC)
    store.tenants.update_one(
        {"_id": DEFAULT_TENANT},
        {"$setOnInsert": {"name": "默认租户", "time_zone": settings.tenant_tz, "created_at": now}},
        upsert=True,
    )
    roles = Roles(store)
    for tenant in store.tenants.find({}, {"_id": 1}):
        roles.ensure_builtins(str(tenant["_id"]))
    migrated = migrate_users(store, roles)
    if migrated:
        log.info("users_migrated_to_roles", count=migrated)
    departments = Departments(store)
    first_id = ""
    for sort, (name, children) in enumerate(DEPARTMENTS):
        parent = departments.ensure(DEFAULT_TENANT, name, None, sort)
        first_id = first_id or parent["_id"]
        for child_sort, child in enumerate(children):
            departments.ensure(DEFAULT_TENANT, child, parent["_id"], child_sort)
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    users = Users(store, departments, passwords, TokenService(store, settings.jwt_secret), roles)
    admin = users.by_username(DEFAULT_TENANT, ADMIN_USERNAME)
    created = False
    if admin is None:
        password, path = admin_password(settings, create=True)
        assert password is not None
        admin = users.create(
            DEFAULT_TENANT,
            {
                "username": ADMIN_USERNAME,
                "password": password,
                "name": "系统管理员",
                "roles": ["admin"],
                "department_id": first_id,
                "active": True,
            },
        )
        created = True
    else:
        password, path = admin_password(settings, create=False)
        # an explicit CRM_ADMIN_PASSWORD is the source of truth for the admin's password
        if settings.admin_password and not passwords.verify(admin.get("password_hash"), settings.admin_password):
            users.set_password(DEFAULT_TENANT, admin["_id"], settings.admin_password)
    if path is not None:
        log.info("admin_password_file", path=str(path))
    backfilled = backfill_user_directory(store)
    if backfilled:
        log.info("user_directory_backfill", events=backfilled)
    return SeedResult(DEFAULT_TENANT, admin["_id"], created, path, False, settings)


def _department_id(docs: list[dict[str, Any]], path: tuple[str, ...]) -> str:
    """The id of the department at `path` (names from the root), or "" when there is none (renamed, deleted)."""
    parent = ""
    for name in path:
        found = next((d for d in docs if d.get("parent_id", "") == parent and d["name"] == name), None)
        if found is None:
            return ""
        parent = found["_id"]
    return parent


def seed_organisation(settings: Settings, store: GatewayStore, tenant_id: str = DEFAULT_TENANT) -> OrganisationResult:
    """The departments, roles and users the CRM template's approvals and automations name, each made once.

    See the module docstring. Users are made through Users.create (so their
    user.created events reach the record service's directory); a role of a
    user's list the tenant no longer has is left out of it.
    """
    record_id = f"seed:organisation:{tenant_id}"
    made: dict[str, Any] = store.meta.find_one({"_id": record_id}) or {}

    def remember(kind: str, key: str, value: str) -> None:
        store.meta.update_one({"_id": record_id}, {"$set": {f"{kind}.{key}": value}}, upsert=True)

    result = OrganisationResult()
    departments = Departments(store)
    for sort, (key, name) in enumerate(ORGANISATION_DEPARTMENTS, start=len(DEPARTMENTS)):
        if key not in made.get("departments", {}):
            department = departments.ensure(tenant_id, name, None, sort)
            remember("departments", key, department["_id"])
            result.departments[name] = department["_id"]

    roles = Roles(store)
    for key, spec in ORGANISATION_ROLES.items():
        if key in made.get("roles", {}):
            continue
        if roles.find(tenant_id, key) is None:
            try:
                roles.create(tenant_id, {"key": key, **spec})
                result.roles.append(key)
            except Conflict:  # a concurrent seed made it
                pass
        remember("roles", key, key)

    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    users = Users(store, departments, passwords, TokenService(store, settings.jwt_secret), roles)
    tree = departments.all(tenant_id)
    for person in ORGANISATION_USERS:
        if person.username in made.get("users", {}):
            continue
        doc = users.by_username(tenant_id, person.username)
        if doc is None:
            keys = [k for k in person.roles if roles.find(tenant_id, k) is not None]
            if not keys:
                log.warning("organisation_user_without_roles", username=person.username, roles=list(person.roles))
                continue
            manager = users.by_username(tenant_id, person.manager) if person.manager else None
            spec = {
                "username": person.username,
                "name": person.name,
                "password": generate_password(32),  # known to nobody: an admin resets it to hand the account over
                "roles": keys,
                "department_id": _department_id(tree, person.department),
                "manager_id": manager["_id"] if manager else "",
                "active": True,  # owners, assignees and approvers must be active users
            }
            try:
                doc = users.create(tenant_id, spec)
                result.users[person.username] = doc["_id"]
            except Conflict:  # a concurrent seed made it
                doc = users.by_username(tenant_id, person.username)
        if doc is not None:
            remember("users", person.username, doc["_id"])
    if result.departments or result.roles or result.users:
        log.info(
            "organisation_seeded",
            tenant=tenant_id,
            departments=sorted(result.departments),
            roles=result.roles,
            users=sorted(result.users),
        )
    return result


def install_template(form: ServiceClient, principal: Principal, *, timeout: float = 60.0, template: str = "crm") -> Any:
    """FormService.InstallTemplate, retried until the form service answers or `timeout` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            return form.unary("InstallTemplate", form_pb2.InstallTemplateRequest(template=template), principal)
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            retryable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, None)
            if not retryable or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)


def install_crm_template(
    store: GatewayStore, result: SeedResult, form: ServiceClient, *, timeout: float = 60.0
) -> SeedResult:
    """The CRM template of the seeded tenant: the organisation it names (seed_organisation), then its forms.

    The organisation comes first: it needs only the store, so a form service
    that does not answer (or a template form a user's form holds the key of)
    does not keep it from being made.
    """
    if result.settings is not None:
        result.organisation = seed_organisation(result.settings, store, result.tenant_id)
    admin = store.users.find_one({"_id": result.admin_id}) or {}
    principal = Principal(
        tenant_id=result.tenant_id,
        user_id=result.admin_id,
        role="admin",
        department_id=admin.get("department_id", ""),
        user_name=admin.get("name", ADMIN_USERNAME),
    )
    resp = install_template(form, principal, timeout=timeout)
    result.template_installed = True
    log.info("template_ready", template="crm", created=bool(getattr(resp, "created", False)))
    return result


def organisation_bindings(store: GatewayStore, tenant_id: str) -> dict[str, dict[str, str]]:
    """The tenant's departments by name and users by username: what a workflow template's
    "$department:<name>" / "$user:<username>" values are filled in with."""
    departments = {str(d["name"]): str(d["_id"]) for d in store.departments.find({"tenant_id": tenant_id})}
    users = {
        str(u["username"]): str(u["_id"])
        for u in store.users.find({"tenant_id": tenant_id}, {"username": 1})
        if u.get("username")
    }
    return {"departments": departments, "users": users}


def install_workflow_template(
    store: GatewayStore, tenant_id: str, admin_id: str, workflow: ServiceClient, *, timeout: float = 60.0
) -> Any:
    """WorkflowService.InstallTemplate for the tenant as its admin, retried until the workflow service answers."""
    admin = store.users.find_one({"_id": admin_id}) or {}
    principal = Principal(
        tenant_id=tenant_id,
        user_id=admin_id,
        role="admin",
        department_id=admin.get("department_id", ""),
        user_name=admin.get("name", ADMIN_USERNAME),
    )
    request = workflow_pb2.InstallTemplateRequest(
        template="crm", bindings_json=json.dumps(organisation_bindings(store, tenant_id), ensure_ascii=False)
    )
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        try:
            resp = workflow.unary("InstallTemplate", request, principal)
            log.info("workflow_template_ready", tenant_id=tenant_id, created=resp.created, existing=resp.existing)
            return resp
        except grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            retryable = code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, None)
            if not retryable or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)


def seed(settings: Settings, store: GatewayStore, form: ServiceClient, *, template_timeout: float = 60.0) -> SeedResult:
    """The whole seed: directory data, then the CRM template installed as the admin."""
    return install_crm_template(store, seed_directory(settings, store), form, timeout=template_timeout)
