"""gRPC client helpers: channels with sane options and principal metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc

from crm_runtime.grpc_server import KEEPALIVE_MS, MAX_MESSAGE_BYTES


def channel(target: str, *, keepalive_ms: int = KEEPALIVE_MS, extra: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """An insecure channel with large message limits and keepalive (which our servers accept)."""
    return grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", keepalive_ms),
            ("grpc.max_metadata_size", 256 * 1024),
            *extra,
        ],
    )


def problem_from_error(error: grpc.RpcError) -> dict[str, Any]:
    """The JSON problem a servicer put in the status details, or a generic one."""
    details = error.details() or ""  # type: ignore[attr-defined]
    try:
        problem = json.loads(details)
        if isinstance(problem, dict):
            return problem
    except ValueError:
        pass
    return {"code": "upstream_error", "title": details or str(error.code()), "detail": details}  # type: ignore[attr-defined]
