"""Settings of the form service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from crm_runtime.config import BaseSettings, env_str


@dataclass(frozen=True)
class Settings(BaseSettings):
    """FORM_MONGO_URL (else MONGO_URL), AMQP_URL, GRPC_PORT (50051), HTTP_PORT (8081), LOG_LEVEL, FORM_DB (crm_form).

    The form service owns its database: FORM_MONGO_URL points it at its own store (`make run` starts one per
    service); without it every service shares MONGO_URL (one MongoDB in docker-compose or Kubernetes)."""

    form_db: str = "crm_form"

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; a malformed value fails start-up with a clear message."""
        base = cls.base_from_env(default_grpc_port=50051, default_http_port=8081)
        base["mongo_url"] = env_str("FORM_MONGO_URL", str(base["mongo_url"]))
        return cls(**base, form_db=env_str("FORM_DB", "crm_form"))  # type: ignore[arg-type]
