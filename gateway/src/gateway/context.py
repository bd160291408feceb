"""The gateway's dependencies for one app instance, reachable from a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from gateway.audit import AuditLog
from gateway.clients import Services
from gateway.departments import Departments
from gateway.metrics import Metrics
from gateway.passwords import Passwords
from gateway.roles import PolicyCache, Roles
from gateway.settings import Settings
from gateway.store import GatewayStore
from gateway.throttle import LoginThrottle
from gateway.tokens import TokenService
from gateway.users import Users


@dataclass
class Gateway:
    """Everything a route needs, built once per app by `create_app`."""

    settings: Settings
    store: GatewayStore
    services: Services
    passwords: Passwords
    tokens: TokenService
    departments: Departments
    users: Users
    throttle: LoginThrottle
    metrics: Metrics
    audit: AuditLog
    roles: Roles
    policies: PolicyCache

    @classmethod
    def build(cls, settings: Settings, store: GatewayStore, services: Services, metrics: Metrics) -> Gateway:
        """Wire the domain objects together."""
        passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
        tokens = TokenService(store, settings.jwt_secret, settings.access_token_seconds, settings.refresh_token_seconds)
        departments = Departments(store)
        roles = Roles(store)
        return cls(
            settings=settings,
            store=store,
            services=services,
            passwords=passwords,
            tokens=tokens,
            departments=departments,
            users=Users(store, departments, passwords, tokens, roles),
            throttle=LoginThrottle(store.login_attempts, settings.login_max_failures, settings.login_lock_seconds),
            metrics=metrics,
            audit=AuditLog(store.audit_log, store.audit_head, store.audit_settings),
            roles=roles,
            policies=PolicyCache(roles),
        )


def gateway() -> Gateway:
    """The Gateway of the app serving this request."""
    gw: Any = current_app.extensions["crm_gateway"]
    return gw  # type: ignore[no-any-return]
