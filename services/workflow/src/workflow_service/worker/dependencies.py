"""The worker's dependency provider: the workflow engine, called on real threads.

grpcio does not support eventlet's green threads, and the engine calls the
record and form services over gRPC: every engine call made by a handler or a
timer runs in eventlet's thread pool (`tpool.execute`, real OS threads), while
the nameko side (consuming, acking, the timer) stays on green threads. The
process patches everything but threads (see `__main__`), so pymongo's and
grpc's locks are real locks.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from eventlet import tpool
from nameko.extensions import DependencyProvider

from crm_runtime import get_logger
from workflow_service.directory import apply_user_event
from workflow_service.server import Wiring, build_wiring, connect_store
from workflow_service.settings import Settings

log = get_logger("workflow.worker")
T = TypeVar("T")

# When the timer last swept the due items without an error (time.monotonic()): the worker's readiness.
# The side port reads it from its own thread; it cannot use the engine's (green) connections there.
HEALTH = {"last_sweep": 0.0}


class EngineCalls:
    """What a handler may ask of the engine; each call runs on a real thread."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring

    @staticmethod
    def _on_thread(fn: Callable[..., T], *args: Any) -> T:
        return tpool.execute(fn, *args)  # type: ignore[no-any-return]

    def handle_event(self, envelope: Mapping[str, Any]) -> list[str]:
        """engine.handle_event on a real thread."""
        return self._on_thread(self._wiring.engine.handle_event, envelope)

    def sweep(self) -> int:
        """engine.sweep on a real thread; a sweep that worked marks the worker ready."""
        fired = self._on_thread(self._wiring.engine.sweep)
        HEALTH["last_sweep"] = time.monotonic()
        return fired

    def user_event(self, envelope: Mapping[str, Any]) -> None:
        """Apply a gateway user event to the directory replica."""
        self._on_thread(apply_user_event, self._wiring.store, envelope)

    def dead_letter_event(self, envelope: Mapping[str, Any], error: str) -> None:
        """Keep an event whose handling failed for a reason a retry will not fix (replayable from the API)."""
        self._on_thread(self._wiring.engine.dead_letter_event, envelope, error)

    def change_held(self, envelope: Mapping[str, Any]) -> str:
        """A record.change_held event: the approvals start the held change's instance (on a real thread)."""
        return self._on_thread(self._wiring.engine.approvals.on_change_held, envelope)

    def arm_schedules(self) -> int:
        """Make sure every enabled scheduled automation has its next firing armed."""
        return self._on_thread(self._wiring.engine.arm_all_schedules)


class WorkflowEngine(DependencyProvider):
    """Builds the production wiring once per worker process (settings from the environment)."""

    def setup(self) -> None:
        """Connect to the store and build the engine (the clients connect lazily)."""
        settings = Settings.from_env()
        db = tpool.execute(connect_store, settings.mongo_url, settings.workflow_db)
        worker = os.environ.get("WORKFLOW_WORKER_ID") or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.wiring = tpool.execute(build_wiring, db, settings, worker=worker)
        self.calls = EngineCalls(self.wiring)
        armed = self.calls.arm_schedules()
        log.info("worker_engine_ready", worker=worker, schedules_armed=armed)

    def get_dependency(self, worker_ctx: Any) -> EngineCalls:
        """The same engine for every worker (it holds no per-call state)."""
        return self.calls
