"""Shared runtime of every CRM service.

Config, structured logging, the gRPC server bootstrap (health, reflection,
Prometheus interceptor, graceful stop), the MongoDB connection, the event bus
(publish with confirms, outbox relay, idempotent consumption) and the principal
context carried in gRPC metadata.

Importing the package stays pure: it loads no grpc, pika or pymongo. The names
that need them (`EventPublisher`, `build_server`, `serve_forever`) are
imported on first use (PEP 562), so a domain package may use
`crm_runtime.errors` or `crm_runtime.access` without pulling in a client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from crm_runtime.config import BaseSettings, env_int, env_str
from crm_runtime.envelope import make_envelope
from crm_runtime.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
    ValidationFailed,
)
from crm_runtime.logging import configure_logging, get_logger
from crm_runtime.principal import Principal, current_principal

if TYPE_CHECKING:
    from crm_runtime.events import EventPublisher
    from crm_runtime.grpc_server import build_server, serve_forever

# name -> module that defines it; imported on first attribute access
_LAZY = {
    "EventPublisher": "crm_runtime.events",
    "build_server": "crm_runtime.grpc_server",
    "serve_forever": "crm_runtime.grpc_server",
}

__all__ = [
    "BaseSettings",
    "Conflict",
    "DomainError",
    "EventPublisher",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "Principal",
    "TooManyRequests",
    "Unauthenticated",
    "ValidationFailed",
    "build_server",
    "configure_logging",
    "current_principal",
    "env_int",
    "env_str",
    "get_logger",
    "make_envelope",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    """Import the grpc/pika-backed names only when they are used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name, the lazy ones included."""
    return sorted({*globals(), *_LAZY})
