"""Shared runtime of every CRM service.

Config, structured logging, the gRPC server bootstrap (health, reflection,
Prometheus interceptor, graceful stop), the MongoDB connection, the event bus
(publish with confirms, outbox relay, idempotent consumption) and the principal
context carried in gRPC metadata.
"""

from crm_runtime.config import BaseSettings, env_int, env_str
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
from crm_runtime.events import EventPublisher, make_envelope
from crm_runtime.grpc_server import build_server, serve_forever
from crm_runtime.logging import configure_logging, get_logger
from crm_runtime.principal import Principal, current_principal

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
