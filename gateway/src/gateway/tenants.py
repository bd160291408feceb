"""Tenants for an operator: `python -m gateway tenant create | list | install-template`.

    tenant create KEY --name NAME [--admin-username admin] [--admin-password PW] [--time-zone TZ]
    tenant list
    tenant install-template KEY       (retry the CRM template of a tenant whose creation could not install it)

Run with the gateway's environment (e.g. `source scripts/env.sh` first: MONGO_URL,
GATEWAY_DB, FORM_GRPC_ADDR, JWT_SECRET, CRM_INTERNAL_SECRET).

`create` refuses an existing key, checks the form service answers (else nothing
is created, exit 3), then writes the tenant document, the built-in roles
(gateway.roles.Roles.ensure_builtins, the seed's function), the root department
(named after the tenant) and the admin user (the password policy applies to a
given password; without one a password is generated and printed once), and
installs the CRM template through the form service as that admin, as the seed
does for `default` (a failure there is reported after the admin password).

Exit codes: 0 done, 1 bad input or configuration, 2 the template could not be
installed (the tenant exists: run `install-template`), 3 the form service is
unreachable, 4 the key exists.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pymongo.errors import DuplicateKeyError

from crm_runtime.errors import ValidationFailed
from crm_runtime.principal import Principal
from gateway.clients import ServiceClient
from gateway.departments import Departments
from gateway.passwords import Passwords, check_password, generate_password
from gateway.roles import Roles
from gateway.seed import install_template, install_workflow_template
from gateway.settings import Settings
from gateway.store import GatewayStore
from gateway.tokens import TokenService
from gateway.users import Users

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
ADMIN_NAME = "系统管理员"

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_TEMPLATE = 2
EXIT_FORM_UNAVAILABLE = 3
EXIT_EXISTS = 4


class TenantError(Exception):
    """A tenant operation that could not be done; `exit_code` for the CLI."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TenantCreated:
    """What `create_tenant` did; `admin_password` only when it was generated."""

    key: str
    name: str
    admin_id: str
    admin_username: str
    admin_password: str | None
    root_department_id: str
    template_error: str | None = None


def _admin_principal(store: GatewayStore, tenant_id: str, admin_id: str) -> Principal:
    admin = store.users.find_one({"_id": admin_id}) or {}
    return Principal(
        tenant_id=tenant_id,
        user_id=admin_id,
        role="admin",
        roles=("admin",),
        department_id=str(admin.get("department_id") or ""),
        user_name=str(admin.get("name") or admin.get("username") or ""),
    )


def create_tenant(
    settings: Settings,
    store: GatewayStore,
    form: ServiceClient,
    *,
    key: str,
    name: str,
    admin_username: str = "admin",
    admin_password: str | None = None,
    time_zone: str | None = None,
    template_timeout: float = 60.0,
    workflow: ServiceClient | None = None,
) -> TenantCreated:
    """A new tenant with its roles, root department, admin and the CRM template (see the module docstring)."""
    if not KEY_PATTERN.match(key):
        raise TenantError(f"invalid tenant key {key!r}: 2-40 of a-z, 0-9 and '-', starting with a letter")
    name = name.strip()
    if not name:
        raise TenantError("--name must not be empty")
    if not USERNAME_PATTERN.match(admin_username):
        raise TenantError(f"invalid admin username {admin_username!r}")
    zone = time_zone or settings.tenant_tz
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TenantError(f"unknown time zone {zone!r}") from None
    if admin_password is not None:
        try:
            check_password(admin_password, admin_username, "en")
        except ValidationFailed as exc:
            rules = ", ".join(e.rule for e in exc.errors)
            raise TenantError(f"--admin-password breaks the password policy: {rules}") from None
    store.ensure_indexes()
    if store.tenants.find_one({"_id": key}) is not None:
        raise TenantError(f"tenant {key!r} already exists", EXIT_EXISTS)
    if not form.healthy():
        raise TenantError(
            "the form service does not answer (FORM_GRPC_ADDR); nothing was created", EXIT_FORM_UNAVAILABLE
        )
    now = datetime.now(UTC)
    try:
        store.tenants.insert_one({"_id": key, "name": name, "time_zone": zone, "created_at": now})
    except DuplicateKeyError:
        raise TenantError(f"tenant {key!r} already exists", EXIT_EXISTS) from None
    roles = Roles(store)
    roles.ensure_builtins(key)
    departments = Departments(store)
    root = departments.create(key, name, None, 0)
    passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
    users = Users(store, departments, passwords, TokenService(store, settings.jwt_secret), roles)
    password = admin_password if admin_password is not None else generate_password()
    admin = users.create(
        key,
        {
            "username": admin_username,
            "password": password,
            "name": ADMIN_NAME,
            "roles": ["admin"],
            "department_id": root["_id"],
            "active": True,
        },
        actor="operator",
    )
    result = TenantCreated(
        key, name, admin["_id"], admin_username, None if admin_password is not None else password, root["_id"]
    )
    try:
        install_tenant_template(store, form, key, timeout=template_timeout, workflow=workflow)
    except TenantError as exc:
        result.template_error = str(exc)
    return result


def install_tenant_template(
    store: GatewayStore,
    form: ServiceClient,
    key: str,
    *,
    timeout: float = 60.0,
    workflow: ServiceClient | None = None,
) -> None:
    """Install the CRM template in tenant `key` as its first active admin (idempotent in the form service),
    then, with `workflow`, the template's automations and public pool (idempotent in the workflow service)."""
    if store.tenants.find_one({"_id": key}) is None:
        raise TenantError(f"no tenant {key!r}")
    admin_keys: set[str] = set(Roles(store).admin_keys(key))
    admin = next(
        (
            u
            for u in sorted(store.users.find({"tenant_id": key}), key=lambda d: d["created_at"])
            if u.get("active", True) and admin_keys.intersection(u.get("roles") or [u.get("role")])
        ),
        None,
    )
    if admin is None:
        raise TenantError(f"tenant {key!r} has no admin user")
    try:
        install_template(form, _admin_principal(store, key, admin["_id"]), timeout=timeout)
        if workflow is not None:
            install_workflow_template(store, key, admin["_id"], workflow, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any failure of the RPC: tell the operator how to retry
        raise TenantError(
            f"the CRM template could not be installed in {key!r} ({exc.__class__.__name__}: {exc}); "
            f"retry with: python -m gateway tenant install-template {key}",
            EXIT_TEMPLATE,
        ) from None


def list_tenants(store: GatewayStore) -> list[dict[str, Any]]:
    """Every tenant with its number of users, by key."""
    out = []
    for doc in sorted(store.tenants.find({}), key=lambda d: str(d["_id"])):
        out.append(
            {
                "key": doc["_id"],
                "name": doc.get("name") or doc["_id"],
                "time_zone": doc.get("time_zone") or "",
                "created_at": doc.get("created_at"),
                "users": store.users.count_documents({"tenant_id": doc["_id"]}),
            }
        )
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway tenant", description="Create and list tenants.")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a tenant with its admin, roles and the CRM template")
    create.add_argument("key", help="tenant key (2-40 of a-z, 0-9, '-')")
    create.add_argument("--name", required=True, help="display name")
    create.add_argument("--admin-username", default="admin")
    create.add_argument(
        "--admin-password",
        default=os.environ.get("TENANT_ADMIN_PASSWORD") or None,
        help="the admin's password (default: TENANT_ADMIN_PASSWORD, else generated and printed once)",
    )
    create.add_argument("--time-zone", default=None, help="default: TENANT_TZ")
    create.add_argument("--template-timeout", type=float, default=60.0, help="seconds to wait for the form service")
    sub.add_parser("list", help="list tenants")
    install = sub.add_parser("install-template", help="install the CRM template in an existing tenant")
    install.add_argument("key")
    install.add_argument("--template-timeout", type=float, default=60.0)
    return parser


def tenant_main(
    argv: Sequence[str],
    *,
    settings: Settings | None = None,
    store: GatewayStore | None = None,
    form: ServiceClient | None = None,
    workflow: ServiceClient | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """`python -m gateway tenant ...`; returns the exit code. Dependencies default to the environment's."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(list(argv))
    if settings is None:
        from crm_runtime.config import ConfigError

        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            print(f"gateway tenant: {exc}", file=err)
            return EXIT_INPUT
    own_store = store is None
    store = store or GatewayStore.connect(settings.mongo_url, settings.gateway_db)
    if form is None:
        from gateway.clients import Services

        services = Services.grpc(
            settings.form_grpc_addr, settings.record_grpc_addr, settings.workflow_grpc_addr, timeout=30.0
        )
        form = services.form
        workflow = workflow or services.workflow
    try:
        if args.action == "list":
            for t in list_tenants(store):
                created = t["created_at"].isoformat(timespec="seconds") if t["created_at"] else "-"
                print(f"{t['key']}\t{t['name']}\t{t['time_zone']}\tusers={t['users']}\tcreated={created}", file=out)
            return EXIT_OK
        if args.action == "install-template":
            install_tenant_template(store, form, args.key, timeout=args.template_timeout, workflow=workflow)
            print(f"CRM template installed in tenant {args.key}", file=out)
            return EXIT_OK
        result = create_tenant(
            settings,
            store,
            form,
            key=args.key,
            name=args.name,
            admin_username=args.admin_username,
            admin_password=args.admin_password,
            time_zone=args.time_zone,
            template_timeout=args.template_timeout,
            workflow=workflow,
        )
    except TenantError as exc:
        print(f"gateway tenant: {exc}", file=err)
        return exc.exit_code
    finally:
        if own_store:
            store.db.client.close()
    print(f"tenant {result.key} ({result.name}) created", file=out)
    print(f"admin: {result.admin_username}", file=out)
    if result.admin_password is not None:
        print(f"admin password (shown once): {result.admin_password}", file=out)
    if result.template_error is not None:
        print(f"gateway tenant: {result.template_error}", file=err)
        return EXIT_TEMPLATE
    print("CRM template installed", file=out)
    return EXIT_OK
