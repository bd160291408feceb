"""Settings of the record service, read once from the environment."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_runtime.config import BaseSettings, ConfigError, env_int, env_str


@dataclass(frozen=True)
class Settings(BaseSettings):
    """RECORD_MONGO_URL (else MONGO_URL; the service and its relay share it), AMQP_URL, GRPC_PORT (50052),
    HTTP_PORT (8082), LOG_LEVEL, RECORD_DB (crm_record), FORM_GRPC_ADDR (127.0.0.1:50051), FIELD_ENCRYPTION_KEY,
    TENANT_TZ (Asia/Shanghai), RELAY_HTTP_PORT (8083),
    RECORD_DIRECTORY_QUEUE (record.directory: the durable queue of the gateway's user events; installations
    sharing one broker each need their own, or they take each other's events), RECORD_POOL_QUEUE (record.pools:
    the workflow's pool events, likewise)."""

    record_db: str = "crm_record"
    form_grpc_addr: str = "127.0.0.1:50051"
    field_encryption_key: str = ""
    tenant_tz: str = "Asia/Shanghai"
    relay_http_port: int = 8083
    directory_queue: str = "record.directory"
    pool_queue: str = "record.pools"

    @classmethod
    def from_env(cls) -> Settings:
        """Read the environment; a malformed value fails start-up with a clear message."""
        base = cls.base_from_env(default_grpc_port=50052, default_http_port=8082)
        # the record service owns its database: its own store locally, the shared MONGO_URL otherwise
        base["mongo_url"] = env_str("RECORD_MONGO_URL", str(base["mongo_url"]))
        tz = env_str("TENANT_TZ", "Asia/Shanghai")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"TENANT_TZ {tz!r} is not a known time zone") from exc
        return cls(
            **base,  # type: ignore[arg-type]
            record_db=env_str("RECORD_DB", "crm_record"),
            form_grpc_addr=env_str("FORM_GRPC_ADDR", "127.0.0.1:50051"),
            field_encryption_key=env_str("FIELD_ENCRYPTION_KEY", ""),
            tenant_tz=tz,
            relay_http_port=env_int("RELAY_HTTP_PORT", 8083),
            directory_queue=env_str("RECORD_DIRECTORY_QUEUE", "record.directory"),
            pool_queue=env_str("RECORD_POOL_QUEUE", "record.pools"),
        )

    def require_encryption_key(self) -> str:
        """The Fernet key for encrypted_text fields; a clear start-up error when missing or malformed."""
        key = self.field_encryption_key
        if not key:
            raise ConfigError(
                "FIELD_ENCRYPTION_KEY is required: a urlsafe base64 32-byte key "
                '(python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
            )
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise ConfigError("FIELD_ENCRYPTION_KEY is not urlsafe base64") from exc
        if len(raw) != 32:
            raise ConfigError(f"FIELD_ENCRYPTION_KEY must decode to 32 bytes, got {len(raw)}")
        return key
