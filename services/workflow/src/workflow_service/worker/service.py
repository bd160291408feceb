"""The workflow worker (nameko): handlers of record and user events, and the timer that fires due items.

Delivery is at least once and effect exactly once:

* nameko acks a message when its handler returns, and by default also when it
  raised: the event would be gone. Here a failure that a retry can fix (the
  store, the broker, the record or form service not answering) makes the
  handler raise with `requeue_on_error=True`, after a pause, so the broker
  delivers the event again; any other failure (a malformed event, a bug) is
  written to the dead-letter list with its error and the event is acked, so a
  poison message never loops. Failures of one action inside a run are the
  engine's: retried with backoff, then dead-lettered (domain/engine.py).
* an event delivered twice, or to a worker that died halfway, finds its runs
  logged (by event id and automation) and does nothing twice.
* two workers: the queues are shared (one delivery per event between them) and
  due items are claimed with a compare-and-set lease.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import eventlet
from nameko.events import event_handler
from nameko.timer import timer
from pymongo.errors import ConnectionFailure, ExecutionTimeout, NetworkTimeout

from crm_runtime import get_logger
from crm_runtime.errors import DeadlineExceeded, Unavailable
from workflow_service.worker.dependencies import EngineCalls, WorkflowEngine

log = get_logger("workflow.worker")

SERVICE_NAME = "workflow"
RETRYABLE = (Unavailable, DeadlineExceeded, ConnectionFailure, NetworkTimeout, ExecutionTimeout, ConnectionError)
REQUEUE_PAUSE = 1.0
TIMER_INTERVAL = float(os.environ.get("WORKFLOW_TIMER_INTERVAL") or 1.0)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class WorkflowWorker:
    """Event handlers (record.*, user.*) and the due-item timer of the flow engine."""

    name = SERVICE_NAME
    engine: EngineCalls = WorkflowEngine()  # type: ignore[assignment]

    def _handle(self, payload: Any, handle: Any) -> None:
        """Run `handle(payload)`; requeue what a retry can fix, dead-letter (and ack) anything else."""
        if not isinstance(payload, Mapping):
            # not an envelope at all (a message someone else put on the exchange): kept, acked
            log.error("event_malformed", body=str(payload)[:200])
            self.engine.dead_letter_event(
                {"id": f"malformed:{hash(str(payload))}", "body": str(payload)[:10_000]}, "not an event envelope"
            )
            return
        try:
            handle(payload)
        except RETRYABLE as exc:
            log.warning("event_requeued", event_id=payload.get("id"), error=_describe(exc))
            eventlet.sleep(REQUEUE_PAUSE)
            raise
        except Exception as exc:  # noqa: BLE001 - poison: kept with its error, acked
            log.error("event_dead_lettered", event_id=payload.get("id"), error=_describe(exc))
            self.engine.dead_letter_event(payload, _describe(exc))

    def _record_event(self, payload: Any) -> None:
        self._handle(payload, self.engine.handle_event)

    @event_handler("record", "record.created", requeue_on_error=True)
    def on_record_created(self, payload: dict[str, Any]) -> None:
        """A record was created."""
        self._record_event(payload)

    @event_handler("record", "record.updated", requeue_on_error=True)
    def on_record_updated(self, payload: dict[str, Any]) -> None:
        """A record's fields changed."""
        self._record_event(payload)

    @event_handler("record", "record.deleted", requeue_on_error=True)
    def on_record_deleted(self, payload: dict[str, Any]) -> None:
        """A record went to the recycle bin."""
        self._record_event(payload)

    @event_handler("record", "record.owner_changed", requeue_on_error=True)
    def on_record_owner_changed(self, payload: dict[str, Any]) -> None:
        """A record changed hands."""
        self._record_event(payload)

    @event_handler("record", "record.change_held", requeue_on_error=True)
    def on_record_change_held(self, payload: dict[str, Any]) -> None:
        """A user's change of a guarded field waits: its approval starts (once per held change)."""
        self._handle(payload, self.engine.change_held)

    def _user_event(self, payload: Any) -> None:
        self._handle(payload, self.engine.user_event)

    @event_handler("gateway", "user.created", requeue_on_error=True)
    def on_user_created(self, payload: dict[str, Any]) -> None:
        """A user joined the directory."""
        self._user_event(payload)

    @event_handler("gateway", "user.updated", requeue_on_error=True)
    def on_user_updated(self, payload: dict[str, Any]) -> None:
        """A user's directory fields changed."""
        self._user_event(payload)

    @event_handler("gateway", "user.deleted", requeue_on_error=True)
    def on_user_deleted(self, payload: dict[str, Any]) -> None:
        """A user left."""
        self._user_event(payload)

    @timer(interval=TIMER_INTERVAL)
    def fire_due(self) -> None:
        """Fire what is due: record timers, retries, schedules (each item leased first)."""
        try:
            fired = self.engine.sweep()
        except RETRYABLE as exc:
            log.warning("sweep_failed", error=_describe(exc))
            return
        if fired:
            log.info("timers_fired", count=fired)
