"""Reading settings from the environment once, failing fast on bad values."""

from __future__ import annotations

import os
from dataclasses import dataclass


class ConfigError(RuntimeError):
    """A setting is missing or malformed; raised at start-up."""


def env_str(name: str, default: str | None = None) -> str:
    """Return the variable `name`, or `default`; a missing required value is an error."""
    value = os.environ.get(name)
    if value is None or value == "":
        if default is None:
            raise ConfigError(f"environment variable {name} is required")
        return default
    return value


def env_int(name: str, default: int) -> int:
    """Return the variable `name` as an int, or `default`."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class BaseSettings:
    """Settings every service shares. Defaults work for `make run` on one machine."""

    mongo_url: str
    amqp_url: str
    grpc_port: int
    http_port: int
    log_level: str

    @classmethod
    def base_from_env(cls, *, default_grpc_port: int, default_http_port: int) -> dict[str, object]:
        """Read the shared settings as keyword arguments for a subclass."""
        return {
            "mongo_url": env_str("MONGO_URL", "mongodb://127.0.0.1:27018/?directConnection=true"),
            "amqp_url": env_str("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
            "grpc_port": env_int("GRPC_PORT", default_grpc_port),
            "http_port": env_int("HTTP_PORT", default_http_port),
            "log_level": env_str("LOG_LEVEL", "INFO"),
        }
