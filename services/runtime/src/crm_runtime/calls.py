"""The deadline of the call being served, for use cases that write in steps (pure: no grpc import).

A gRPC client gives up at its deadline (the gateway answers 504), but the
server's handler thread goes on: a bulk create of 10,000 rows would commit
after its caller had been told it failed, and a retry would create the rows
twice. `grpc_server` makes the call's remaining time current; a use case that
commits in several transactions calls `check_deadline()` between them and
before it makes its work visible, and undoes what it wrote when it raises.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from crm_runtime.errors import DeadlineExceeded

Remaining = Callable[[], float | None]
"""Seconds the caller still waits (None: no deadline), e.g. grpc's ServicerContext.time_remaining."""

_remaining: contextvars.ContextVar[Remaining | None] = contextvars.ContextVar("call_deadline", default=None)


@contextmanager
def call_deadline(remaining: Remaining | None) -> Iterator[None]:
    """Make `remaining` the current call's clock for the duration of the block."""
    token = _remaining.set(remaining)
    try:
        yield
    finally:
        _remaining.reset(token)


def time_left() -> float | None:
    """Seconds until the current call's deadline; None outside a call or without a deadline."""
    remaining = _remaining.get()
    return None if remaining is None else remaining()


def check_deadline(step: str) -> None:
    """Raise DeadlineExceeded when the caller has stopped waiting (`step` names where, for the log)."""
    left = time_left()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"the caller's deadline passed before {step}")
