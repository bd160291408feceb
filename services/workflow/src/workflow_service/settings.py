"""Settings of the workflow service (its gRPC API, its worker and its relay), read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_runtime.config import BaseSettings, ConfigError, env_int, env_str


def _env_float(name: str, default: float) -> float:
    raw = env_str(name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"environment variable {name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings(BaseSettings):
    """WORKFLOW_MONGO_URL (else MONGO_URL), AMQP_URL, GRPC_PORT (50053), HTTP_PORT (8084), LOG_LEVEL,
    WORKFLOW_DB (crm_workflow), RECORD_GRPC_ADDR (127.0.0.1:50052), FORM_GRPC_ADDR (127.0.0.1:50051),
    TENANT_TZ (Asia/Shanghai), WORKER_HTTP_PORT (8085), WORKFLOW_RELAY_HTTP_PORT (8086),
    WORKFLOW_TIMER_INTERVAL (seconds between timer sweeps, 1), WORKFLOW_RETRY_BASE (seconds before the first
    retry of a failed action, 10; doubled each time), WORKFLOW_RETRIES (3), WORKFLOW_MAX_DEPTH (automation
    chain depth at which a loop is cut, 5), WORKFLOW_QUEUE_PREFIX (empty; installations sharing one broker
    each need their own), SMTP_HOST / SMTP_PORT (25) / SMTP_FROM / SMTP_USER / SMTP_PASSWORD / SMTP_STARTTLS
    (e-mail notifications; without SMTP_HOST the e-mail channel is "not configured"), WORKFLOW_PUSH_CONDITIONS
    (0; 1 where the store is MongoDB: timer conditions go into the due query, see Engine.sweep)."""

    workflow_db: str = "crm_workflow"
    record_grpc_addr: str = "127.0.0.1:50052"
    form_grpc_addr: str = "127.0.0.1:50051"
    tenant_tz: str = "Asia/Shanghai"
    worker_http_port: int = 8085
    relay_http_port: int = 8086
    timer_interval: float = 1.0
    retry_base: float = 10.0
    retries: int = 3
    max_depth: int = 5
    queue_prefix: str = ""
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "crm@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    push_conditions: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; a malformed value fails start-up with a clear message."""
        base = cls.base_from_env(default_grpc_port=50053, default_http_port=8084)
        base["mongo_url"] = env_str("WORKFLOW_MONGO_URL", str(base["mongo_url"]))
        tz = env_str("TENANT_TZ", "Asia/Shanghai")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"TENANT_TZ {tz!r} is not a known time zone") from exc
        retries = env_int("WORKFLOW_RETRIES", 3)
        depth = env_int("WORKFLOW_MAX_DEPTH", 5)
        if retries < 0 or depth < 1:
            raise ConfigError("WORKFLOW_RETRIES must be >= 0 and WORKFLOW_MAX_DEPTH >= 1")
        return cls(
            **base,  # type: ignore[arg-type]
            workflow_db=env_str("WORKFLOW_DB", "crm_workflow"),
            record_grpc_addr=env_str("RECORD_GRPC_ADDR", "127.0.0.1:50052"),
            form_grpc_addr=env_str("FORM_GRPC_ADDR", "127.0.0.1:50051"),
            tenant_tz=tz,
            worker_http_port=env_int("WORKER_HTTP_PORT", 8085),
            relay_http_port=env_int("WORKFLOW_RELAY_HTTP_PORT", 8086),
            timer_interval=_env_float("WORKFLOW_TIMER_INTERVAL", 1.0),
            retry_base=_env_float("WORKFLOW_RETRY_BASE", 10.0),
            retries=retries,
            max_depth=depth,
            queue_prefix=env_str("WORKFLOW_QUEUE_PREFIX", ""),
            smtp_host=env_str("SMTP_HOST", ""),
            smtp_port=env_int("SMTP_PORT", 25),
            smtp_from=env_str("SMTP_FROM", "crm@localhost"),
            smtp_user=env_str("SMTP_USER", ""),
            smtp_password=env_str("SMTP_PASSWORD", ""),
            smtp_starttls=env_str("SMTP_STARTTLS", "0").lower() in ("1", "true", "yes"),
            push_conditions=env_str("WORKFLOW_PUSH_CONDITIONS", "0").lower() in ("1", "true", "yes"),
        )
