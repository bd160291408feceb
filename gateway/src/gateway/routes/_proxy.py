"""Calling a service as the request's principal."""

from __future__ import annotations

from typing import Any

from gateway.auth import current_principal
from gateway.context import gateway


def form_call(method: str, request: Any) -> Any:
    """A FormService RPC as the current principal (errors reach the boundary in gateway.errors)."""
    return gateway().services.form.unary(method, request, current_principal())


def record_call(method: str, request: Any, timeout: float | None = None) -> Any:
    """A RecordService RPC as the current principal (deadline `timeout` s, default the client's)."""
    return gateway().services.record.unary(method, request, current_principal(), timeout)
