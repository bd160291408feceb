"""First-start data: the default tenant, departments, the roles, the admin user and the CRM template.

Idempotent: run by `python -m gateway seed` and at every `serve` start-up.
Every tenant gets the built-in roles (admin, manager, sales) it lacks, user
documents from before multi-role users get `roles = [role]`, and, once per
installation (a `meta` flag), a user.updated event per existing user fills
the record service's directory replica.
The admin password comes from CRM_ADMIN_PASSWORD or is generated once into
<CRM_DATA_DIR>/admin-password (mode 600) and re-used; only that path is logged.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from crm.form.v1 import form_pb2
from crm_runtime.logging import get_logger
from crm_runtime.principal import Principal
from gateway.clients import ServiceClient
from gateway.departments import Departments
from gateway.outbox import backfill_user_directory
from gateway.passwords import Passwords
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


@dataclass
class SeedResult:
    """What the seed did."""

    tenant_id: str
    admin_id: str
    admin_created: bool
    password_file: Path | None
    template_installed: bool


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
    return SeedResult(DEFAULT_TENANT, admin["_id"], created, path, False)


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
    """Install the CRM template as the seeded admin."""
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


def seed(settings: Settings, store: GatewayStore, form: ServiceClient, *, template_timeout: float = 60.0) -> SeedResult:
    """The whole seed: directory data, then the CRM template installed as the admin."""
    return install_crm_template(store, seed_directory(settings, store), form, timeout=template_timeout)
