"""Settings of the gateway, read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from crm_runtime.config import ConfigError, env_int, env_str

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the gateway reads from the environment.

    GATEWAY_MONGO_URL (else MONGO_URL: the gateway's own store, or the one MongoDB every service shares),
    GATEWAY_DB (crm_gateway), FORM_GRPC_ADDR, RECORD_GRPC_ADDR, WORKFLOW_GRPC_ADDR, AMQP_URL, GATEWAY_PORT (8080),
    GATEWAY_WORKERS (2), GATEWAY_THREADS (16), JWT_SECRET (required by `serve`), CRM_DATA_DIR (.data),
    CRM_ADMIN_PASSWORD, TENANT_TZ (Asia/Shanghai), LOG_LEVEL,
    GATEWAY_GRPC_TIMEOUT (60 s per call), GATEWAY_BULK_GRPC_TIMEOUT (600 s for bulk create),
    GATEWAY_RATE_LIMIT (100 requests/s per client and worker, 0 = off), GATEWAY_RATE_BURST (400),
    GATEWAY_TRUSTED_PROXIES (0: the client address is the socket peer; N: the N-th X-Forwarded-For from the right).
    """

    jwt_secret: str
    mongo_url: str = "mongodb://127.0.0.1:27018/?directConnection=true"
    gateway_db: str = "crm_gateway"
    form_grpc_addr: str = "127.0.0.1:50051"
    record_grpc_addr: str = "127.0.0.1:50052"
    workflow_grpc_addr: str = "127.0.0.1:50053"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    port: int = 8080
    workers: int = 2
    threads: int = 16
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    admin_password: str | None = None
    tenant_tz: str = "Asia/Shanghai"
    log_level: str = "INFO"
    access_token_seconds: int = 15 * 60
    refresh_token_seconds: int = 7 * 24 * 3600
    login_max_failures: int = 20
    login_lock_seconds: int = 15 * 60
    max_json_bytes: int = MIB
    max_bulk_bytes: int = 32 * MIB
    max_upload_bytes: int = 50 * MIB
    grpc_timeout: float = 60.0
    # a 10,000-row bulk create writes records, history and outbox in one call
    bulk_grpc_timeout: float = 600.0
    # reverse proxies in front of the gateway whose X-Forwarded-For is believed (operation log addresses)
    trusted_proxies: int = 0
    # requests a second per client (token or address) and burst, per worker; 0 turns it off
    rate_limit_per_second: float = 100.0
    rate_limit_burst: int = 400
    # argon2 cost; tests lower it so twenty failed logins take milliseconds
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; a malformed or missing value fails start-up with a clear message."""
        secret = env_str("JWT_SECRET", "")
        if len(secret) < 16:
            raise ConfigError("environment variable JWT_SECRET is required (at least 16 characters)")
        return cls(
            jwt_secret=secret,
            mongo_url=env_str("GATEWAY_MONGO_URL", env_str("MONGO_URL", cls.mongo_url)),
            gateway_db=env_str("GATEWAY_DB", cls.gateway_db),
            form_grpc_addr=env_str("FORM_GRPC_ADDR", cls.form_grpc_addr),
            record_grpc_addr=env_str("RECORD_GRPC_ADDR", cls.record_grpc_addr),
            workflow_grpc_addr=env_str("WORKFLOW_GRPC_ADDR", cls.workflow_grpc_addr),
            amqp_url=env_str("AMQP_URL", cls.amqp_url),
            port=env_int("GATEWAY_PORT", cls.port),
            workers=env_int("GATEWAY_WORKERS", cls.workers),
            threads=env_int("GATEWAY_THREADS", cls.threads),
            data_dir=Path(env_str("CRM_DATA_DIR", ".data")),
            admin_password=os.environ.get("CRM_ADMIN_PASSWORD") or None,
            tenant_tz=env_str("TENANT_TZ", cls.tenant_tz),
            log_level=env_str("LOG_LEVEL", cls.log_level),
            grpc_timeout=float(env_int("GATEWAY_GRPC_TIMEOUT", int(cls.grpc_timeout))),
            rate_limit_per_second=float(env_int("GATEWAY_RATE_LIMIT", int(cls.rate_limit_per_second))),
            rate_limit_burst=env_int("GATEWAY_RATE_BURST", cls.rate_limit_burst),
            bulk_grpc_timeout=float(env_int("GATEWAY_BULK_GRPC_TIMEOUT", int(cls.bulk_grpc_timeout))),
            trusted_proxies=env_int("GATEWAY_TRUSTED_PROXIES", cls.trusted_proxies),
        )
