"""The flow engine: record events and due timers in, automation runs out.

`handle_event(envelope)` is called for every `record.*` event (the nameko
worker's handlers). For each enabled automation of the record's form it

* runs the automation when its event trigger fires (created, updated with the
  chosen fields / from-to values, saved, deleted, owner changed, owner assigned);
* keeps the automation's timer for the record current when its trigger is a
  timer (date_relative: due at the date field + offset; inactivity: due
  `after` the last activity), with a snapshot of the record's values that the
  due scan filters by the compiled condition;
* for an inactivity trigger on a related form, a new related record resets or
  cancels the timer of the record it points to.

`sweep(now)` (the worker's timer) claims due items with an atomic lease and
fires them: record timers (the condition checked again in Python on the
current record), retries of failed actions, and cron schedules (the records
matching the condition, listed by the record service, which compiles the same
tree to its own MongoDB query).

A run is identified by what caused it (event id + automation, or the timer
item + due time), so an event delivered again, or a timer re-claimed after a
worker died, finds its run and does nothing twice; the actions' own keys make
each effect idempotent inside a run that was cut short. Every run is logged
with the automation's version, the condition's result, each action's outcome
and the duration. A failed action is retried with exponential backoff
(a retry timer), then dead-lettered; `replay` runs a dead letter again.

Loops: an action's writes carry `via = automation:<id>:<depth>` (the record
service puts it on the events they cause); a run at `max_depth` is cut and
says so in the log.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from croniter import croniter

from crm_runtime import get_logger
from crm_runtime.errors import DomainError
from crm_runtime.principal import Principal
from workflow_service.domain import templating
from workflow_service.domain.actions import EXECUTORS, ActionContext, ActionFailed
from workflow_service.domain.conditions import Condition, parse_condition, snapshot
from workflow_service.domain.definitions import EVENT_TRIGGERS, TIMER_TRIGGERS, FormInfo
from workflow_service.domain.errors import message
from workflow_service.domain.pools import PoolRecycler
from workflow_service.domain.ports import Channel, DirectoryPort, Doc, FormPort, RecordPort, TimerItem, WorkflowStore

log = get_logger("workflow.engine")

LEASE_SECONDS = 120.0
SCHEDULE_PAGE = 200
LATE_LIMIT = timedelta(days=1)  # a date timer already this far past when armed is not fired
SERVICE = "workflow"

RECORD_CREATED = "record.created"
RECORD_UPDATED = "record.updated"
RECORD_DELETED = "record.deleted"
RECORD_OWNER_CHANGED = "record.owner_changed"


def record_timer_id(automation_id: str, record_id: str) -> str:
    """The timer item of an automation for one record."""
    return f"rec:{automation_id}:{record_id}"


def schedule_timer_id(automation_id: str) -> str:
    """The timer item of a scheduled automation."""
    return f"sched:{automation_id}"


def parse_via(via: Any) -> tuple[str, int]:
    """(automation id, depth) of an event's `via`, ("", 0) when no automation caused it."""
    if isinstance(via, str) and via.startswith("automation:"):
        parts = via.split(":")
        if len(parts) == 3 and parts[2].isdigit():
            return parts[1], int(parts[2])
    return "", 0


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping) and "id" in value and ("display" in value or len(value) == 1):
        return value["id"]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plain_record(record: Mapping[str, Any]) -> Doc:
    """A record in the shape conditions and templates read: relations and users as plain ids."""
    out = dict(record)
    out["data"] = {k: _plain(v) for k, v in (record.get("data") or {}).items()}
    return out


def _parse_time(value: Any) -> datetime | None:
    return templating.parse_moment(value, UTC)


@dataclass
class EngineSettings:
    """The engine's knobs (from workflow_service.settings)."""

    tz: tzinfo
    max_depth: int = 5
    retries: int = 3
    retry_base: float = 10.0
    worker: str = ""
    push_conditions: bool = False  # put compiled conditions into the due query (MongoDB; not SecantusDB)


class Engine:
    """Runs automations; shared by the worker (events, timers) and the API (replay)."""

    def __init__(
        self,
        store: WorkflowStore,
        records: RecordPort,
        forms: FormPort,
        directory: DirectoryPort,
        channels: Mapping[str, Channel],
        settings: EngineSettings,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.forms = forms
        self.directory = directory
        self.channels = channels
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.worker = settings.worker or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._conditions: dict[tuple[str, int], Condition | None] = {}
        self._automation_cache: dict[tuple[str, str], tuple[int, list[Doc]]] = {}
        # handover jobs (domain/handover.py), when wired in (server.py)
        self.handover: Any = None
        # approvals (domain/approval_engine.py), when wired in (server.py)
        self.approvals: Any = None
        # public pools' recycling (domain/pools.py), when the store keeps pools
        self.pools: PoolRecycler | None = None
        pools_watching = getattr(store, "pools_watching", None)
        get_pool = getattr(store, "get_pool", None)
        if pools_watching is not None and get_pool is not None:
            self.pools = PoolRecycler(
                store, records, forms, directory, channels, clock=self.clock, pools_of=pools_watching, pool=get_pool
            )

    # ------------------------------------------------------------ helpers

    def _service(self, tenant_id: str, automation_id: str = "", depth: int = 0) -> Principal:
        on_behalf = f"automation:{automation_id}:{depth}" if automation_id else ""
        return Principal.service(tenant_id, SERVICE, on_behalf=on_behalf)

    def form(self, tenant_id: str, form_id: str) -> FormInfo | None:
        """A published form (cached by the form port)."""
        return self.forms.published(self._service(tenant_id), form_id)

    def condition(self, automation: Mapping[str, Any], fields: Mapping[str, Any]) -> Condition | None:
        """The parsed condition of an automation version (parsed once per version)."""
        key = (str(automation["id"]), int(automation.get("version") or 0))
        if key not in self._conditions:
            if len(self._conditions) > 4096:
                self._conditions.clear()
            self._conditions[key] = parse_condition(automation.get("condition"), fields)
        return self._conditions[key]

    # ------------------------------------------------------------ events

    def _automations(self, tenant_id: str, form_id: str) -> list[Doc]:
        """The enabled automations of a form (and those watching it), kept while the tenant's definitions
        revision stays (one point read an event instead of the automation queries; any write moves it)."""
        revision = getattr(self.store, "definitions_revision", None)
        if revision is None:
            return self.store.automations_for(tenant_id, form_id)
        rev = int(revision(tenant_id))
        key = (tenant_id, form_id)
        hit = self._automation_cache.get(key)
        if hit is not None and hit[0] == rev:
            return hit[1]
        found = self.store.automations_for(tenant_id, form_id)
        if len(self._automation_cache) > 10_000:
            self._automation_cache.clear()
        self._automation_cache[key] = (rev, found)
        return found

    def handle_event(self, envelope: Mapping[str, Any]) -> list[str]:
        """Run what a record event triggers and keep timers current; returns the ids of the runs it logged."""
        tenant_id = str(envelope.get("tenant_id") or "")
        data = envelope.get("data") or {}
        form_id = str(data.get("form_id") or "")
        record_id = str(data.get("record_id") or "")
        event_type = str(envelope.get("type") or "")
        if event_type == "record.change_held":
            # a guarded field change waits (also one dead-lettered and replayed): its approval starts
            if self.approvals is not None:
                self.approvals.on_change_held(envelope)
            return []
        if not tenant_id or not form_id or not record_id:
            return []
        runs: list[str] = []
        cache: dict[str, Doc | None] = {}

        def current() -> Doc | None:
            if "record" not in cache:
                cache["record"] = self._record_of(envelope)
            return cache["record"]

        automations = self._automations(tenant_id, form_id)
        firing = [
            f"{envelope['id']}:{a['id']}"
            for a in automations
            if a.get("form_id") == form_id
            and (a.get("trigger") or {}).get("type") in EVENT_TRIGGERS
            and self._fires(a.get("trigger") or {}, event_type, data)
        ]
        # one read for the whole event: which of its runs are logged already (a redelivery)
        logged = self.store.logged_runs(firing) if firing else set()
        for automation in automations:
            trigger = automation.get("trigger") or {}
            kind = trigger.get("type")
            if automation.get("form_id") == form_id:
                if kind in EVENT_TRIGGERS and self._fires(trigger, event_type, data):
                    run_id = f"{envelope['id']}:{automation['id']}"
                    if self._run(automation, run_id, envelope, current, data.get("changes"), logged=logged):
                        runs.append(run_id)
                elif kind in TIMER_TRIGGERS:
                    self._keep_timer(automation, envelope, current)
            if trigger.get("related_form_id") == form_id and event_type == RECORD_CREATED:
                self._related_activity(automation, envelope)
        if self.pools is not None:
            self.pools.on_event(envelope, current)
        return runs

    @staticmethod
    def _fires(trigger: Mapping[str, Any], event_type: str, data: Mapping[str, Any]) -> bool:
        kind = trigger.get("type")
        if kind == "record_created":
            return event_type == RECORD_CREATED
        if kind == "record_deleted":
            return event_type == RECORD_DELETED
        if kind == "owner_changed":
            return event_type == RECORD_OWNER_CHANGED
        if kind == "owner_assigned":
            if event_type == RECORD_CREATED:
                return bool(data.get("owner_id"))
            return event_type == RECORD_OWNER_CHANGED and bool(data.get("new_owner_id"))
        if kind in ("record_updated", "record_saved"):
            if kind == "record_saved" and event_type == RECORD_CREATED:
                return True
            if event_type != RECORD_UPDATED:
                return False
            changes = data.get("changes") or {}
            keys = trigger.get("fields") or []
            if keys and not any(k in changes for k in keys):
                return False
            if keys and ("from" in trigger or "to" in trigger):
                change = changes.get(keys[0]) or {}
                if "from" in trigger and _plain(change.get("old")) != trigger["from"]:
                    return False
                if "to" in trigger and _plain(change.get("new")) != trigger["to"]:
                    return False
            return True
        return False

    def _record_of(self, envelope: Mapping[str, Any]) -> Doc | None:
        """The record an event is about: a created event's own data (the record as it was created, whatever
        happened to it since), else the record as the record service has it now (None once it is gone)."""
        data = envelope.get("data") or {}
        tenant_id = str(envelope.get("tenant_id") or "")
        as_created = {
            "id": data.get("record_id"),
            "form_id": data.get("form_id"),
            "owner_id": data.get("owner_id"),
            "department_id": data.get("department_id"),
            "created_by": envelope.get("actor"),
            "created_at": envelope.get("occurred_at"),
            "updated_at": envelope.get("occurred_at"),
            "version": 1,
            "data": data.get("data") or {},
        }
        if envelope.get("type") == RECORD_CREATED:
            return plain_record(as_created)
        record = self.records.get(self._service(tenant_id), str(data.get("record_id")))
        if record is None and envelope.get("type") == RECORD_DELETED:
            record = as_created
        return plain_record(record) if record is not None else None

    # ------------------------------------------------------------ a run

    def run_manual(self, automation: Mapping[str, Any], record: Doc, *, by: str, options: list[str]) -> Doc | None:
        """Run a manual automation on a record now (the caller waits); returns the logged run."""
        run_id = f"manual:{uuid.uuid4().hex}"
        cause = {"id": run_id, "type": "manual", "actor": by, "data": {"record_id": record.get("id")}}
        plain = plain_record(record)
        self._run(automation, run_id, cause, _constant(plain), options=options)
        return self.store.run(run_id)

    def _run(
        self,
        automation: Mapping[str, Any],
        run_id: str,
        cause: Mapping[str, Any],
        record_of: Callable[[], Doc | None],
        changes: Any = None,
        options: list[str] | None = None,
        logged: set[str] | None = None,
    ) -> bool:
        """Log and carry out one run (once per run id); True when a run was logged now."""
        if (run_id in logged) if logged is not None else self.store.run(run_id) is not None:
            return False
        started = time.perf_counter()
        tenant_id = str(automation["tenant_id"])
        _via_automation, depth = parse_via((cause.get("data") or {}).get("via"))
        run: Doc = {
            "_id": run_id,
            "tenant_id": tenant_id,
            "automation_id": automation["id"],
            "automation_version": int(automation.get("version") or 0),
            "form_id": automation.get("form_id"),
            "record_id": str((cause.get("data") or {}).get("record_id") or cause.get("record_id") or ""),
            "event_id": cause.get("id"),
            "event_type": cause.get("type"),
            "trigger": (automation.get("trigger") or {}).get("type"),
            "depth": depth,
            "started_at": self.clock(),
            "condition": None,
            "actions": [],
            "status": "running",
        }
        if options:
            run["options"] = list(options)
            run["run_by"] = cause.get("actor")
        if depth >= self.settings.max_depth:
            run.update(status="cut", message=message("loop_cut", "en", max=self.settings.max_depth))
            return self._save(run, started)
        record = record_of()
        if record is None:
            run.update(status="skipped", message="record_gone")
            return self._save(run, started)
        form = self.form(tenant_id, str(automation["form_id"]))
        if form is None:
            run.update(status="failed", message=f"form {automation['form_id']} is not published")
            return self._save(run, started)
        condition = self.condition(automation, form.fields)
        matched = condition is None or condition.matches(record, changes if isinstance(changes, Mapping) else None)
        run["condition"] = matched
        if not matched:
            run["status"] = "skipped"
            return self._save(run, started)
        run["record"] = {k: record.get(k) for k in ("id", "form_id", "owner_id", "department_id", "created_by", "data")}
        self._execute(run, automation, record, form, start=0, attempt=0, started=started)
        return True

    def _save(self, run: Doc, started: float) -> bool:
        run["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
        run["finished_at"] = self.clock()
        self.store.save_run(run)
        return True

    def _execute(
        self,
        run: Doc,
        automation: Mapping[str, Any],
        record: Doc,
        form: FormInfo,
        *,
        start: int,
        attempt: int,
        started: float,
    ) -> None:
        tenant_id = str(run["tenant_id"])
        chosen = set(run.get("options") or [])
        ctx = ActionContext(
            tenant_id=tenant_id,
            automation=automation,
            record=record,
            fields=form.fields,
            principal=self._service(tenant_id, str(automation["id"]), int(run.get("depth") or 0) + 1),
            now=self.clock(),
            tz=self.settings.tz,
            key="",
            records=self.records,
            forms=self.forms,
            directory=self.directory,
            store=self.store,
            channels=self.channels,
            steps=[dict(a.get("result") or {}) for a in run["actions"][:start]],
            approvals=self.approvals,
        )
        actions = list(automation.get("actions") or [])
        outcomes = list(run["actions"][:start])
        for index in range(start, len(actions)):
            action = actions[index]
            ctx.key = f"{run['_id']}:{index}"
            t0 = time.perf_counter()
            if action.get("optional") and action["optional"] not in chosen:
                outcomes.append({"index": index, "type": action["type"], "outcome": "skipped", "result": {}})
                ctx.steps.append({})
                continue
            try:
                result = EXECUTORS[str(action["type"])](ctx, action)
            except (ActionFailed, DomainError, OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
                error = _describe(exc)
                outcomes.append(
                    {
                        "index": index,
                        "type": action["type"],
                        "outcome": "failed",
                        "error": error,
                        "attempt": attempt,
                        "ms": round((time.perf_counter() - t0) * 1000, 1),
                    }
                )
                run["actions"] = outcomes
                self._failed(run, index, attempt, error)
                self._save(run, started)
                return
            ctx.steps.append(result)
            outcomes.append(
                {
                    "index": index,
                    "type": action["type"],
                    "outcome": "skipped" if "skipped" in result else "ok",
                    "result": result,
                    "attempt": attempt,
                    "ms": round((time.perf_counter() - t0) * 1000, 1),
                }
            )
        run["actions"] = outcomes
        run["status"] = "done"
        run.pop("retry", None)
        run.pop("message", None)  # a replayed run that now succeeded keeps no old error
        self._save(run, started)

    def _failed(self, run: Doc, index: int, attempt: int, error: str) -> None:
        if attempt < self.settings.retries:
            delay = self.settings.retry_base * (2**attempt)
            due = self.clock() + timedelta(seconds=delay)
            run.update(status="retrying", retry={"index": index, "attempt": attempt + 1, "due_at": due})
            self.store.arm(
                f"retry:{run['_id']}",
                kind="retry",
                tenant_id=str(run["tenant_id"]),
                automation_id=str(run["automation_id"]),
                record_id=str(run.get("record_id") or ""),
                due_at=due,
                payload={"run_id": run["_id"], "index": index, "attempt": attempt + 1},
            )
            return
        run.update(status="failed", message=error)
        run.pop("retry", None)
        self.store.add_dead_letter(
            {
                "_id": f"dl:{run['_id']}:{index}:{uuid.uuid4().hex[:8]}",
                "kind": "action",
                "tenant_id": run["tenant_id"],
                "run_id": run["_id"],
                "automation_id": run["automation_id"],
                "automation_version": run.get("automation_version"),
                "record_id": run.get("record_id"),
                "action_index": index,
                "action_type": (run["actions"][-1] if run["actions"] else {}).get("type"),
                "error": error,
                "attempts": attempt + 1,
                "created_at": self.clock(),
                "replayed_at": None,
            }
        )
        log.warning("action_dead_lettered", run_id=run["_id"], index=index, error=error)

    def resume(self, run_id: str, index: int, attempt: int) -> Doc | None:
        """Run a logged run again from action `index` (a retry, or a replayed dead letter); returns the run."""
        run = self.store.run(run_id)
        if run is None:
            return None
        tenant_id = str(run["tenant_id"])
        automation = self.store.automation_version(
            tenant_id, str(run["automation_id"]), int(run.get("automation_version") or 0)
        )
        if automation is None:
            return None
        form = self.form(tenant_id, str(automation["form_id"]))
        if form is None:
            return None
        stored = run.get("record") or {}
        fresh = self.records.get(self._service(tenant_id), str(stored.get("id") or run.get("record_id") or ""))
        record = plain_record(fresh) if fresh is not None else dict(stored)
        run["actions"] = list(run.get("actions") or [])[:index]
        run["status"] = "running"
        self._execute(run, automation, record, form, start=index, attempt=attempt, started=time.perf_counter())
        return self.store.run(run_id)

    # ------------------------------------------------------------ timers kept by events

    def _keep_timer(
        self, automation: Mapping[str, Any], envelope: Mapping[str, Any], record_of: Callable[[], Doc | None]
    ) -> None:
        trigger = automation.get("trigger") or {}
        data = envelope.get("data") or {}
        event_type = envelope.get("type")
        record_id = str(data.get("record_id"))
        item_id = record_timer_id(str(automation["id"]), record_id)
        if event_type == RECORD_DELETED:
            self.store.disarm(item_id)
            return
        changes = data.get("changes") or {}
        now = _parse_time(envelope.get("occurred_at")) or self.clock()
        due: datetime | None = None
        disarm = False
        if trigger.get("type") == "date_relative":
            key = str(trigger.get("field"))
            if event_type == RECORD_CREATED or key in changes:
                value = (data.get("data") or {}).get(key) if event_type == RECORD_CREATED else changes[key].get("new")
                moment = templating.parse_moment(value, self.settings.tz)
                if moment is None:
                    disarm = True
                else:
                    due = moment + timedelta(seconds=int(trigger.get("offset") or 0))
                    if due < now - LATE_LIMIT:
                        disarm, due = True, None
        else:  # inactivity
            after = timedelta(seconds=int(trigger.get("after") or 0))
            since = trigger.get("since", "changed")
            if since == "owner_assigned":
                if event_type == RECORD_CREATED and data.get("owner_id"):
                    due = now + after
                elif event_type == RECORD_OWNER_CHANGED:
                    due, disarm = (now + after, False) if data.get("new_owner_id") else (None, True)
            elif since == "created":
                if event_type == RECORD_CREATED:
                    due = now + after
            elif event_type == RECORD_CREATED or (
                event_type == RECORD_UPDATED and (not trigger.get("field") or trigger.get("field") in changes)
            ):
                due = now + after
        if disarm:
            self.store.disarm(item_id)
            return
        if due is None:
            # not a re-arming event: keep the timer's snapshot in step with the record
            if event_type in (RECORD_UPDATED, RECORD_OWNER_CHANGED):
                self._refresh_snapshot(automation, item_id, record_of)
            return
        record = record_of()
        if record is None:
            return
        self.store.arm(
            item_id,
            kind="record",
            tenant_id=str(automation["tenant_id"]),
            automation_id=str(automation["id"]),
            record_id=record_id,
            due_at=due,
            payload={"trigger": trigger.get("type")},
            snapshot=self._snapshot(automation, record),
        )

    def _snapshot(self, automation: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
        form = self.form(str(automation["tenant_id"]), str(automation["form_id"]))
        return snapshot(form.fields if form else {}, record)

    def _refresh_snapshot(
        self, automation: Mapping[str, Any], item_id: str, record_of: Callable[[], Doc | None]
    ) -> None:
        if not self.store.has_pending(item_id):
            return
        record = record_of()
        if record is not None:
            self.store.refresh_snapshot(item_id, self._snapshot(automation, record))

    def _related_activity(self, automation: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
        """A related record (a 跟进记录 of a 客户) was created: the customer's inactivity timer restarts or ends."""
        trigger = automation.get("trigger") or {}
        value = ((envelope.get("data") or {}).get("data") or {}).get(str(trigger.get("related_field")))
        target = _plain(value)
        for record_id in target if isinstance(target, list) else [target]:
            if not record_id:
                continue
            item_id = record_timer_id(str(automation["id"]), str(record_id))
            if trigger.get("on_related", "restart") == "restart":
                now = _parse_time(envelope.get("occurred_at")) or self.clock()
                self.store.move_pending(item_id, now + timedelta(seconds=int(trigger.get("after") or 0)))
            else:
                self.store.disarm(item_id)

    # ------------------------------------------------------------ due items

    def sweep(self, *, limit: int = 1000, now: datetime | None = None) -> int:
        """Fire due items (each leased first, so another worker never fires it too); returns how many fired.

        Record timers: the condition is checked in Python on the current record when the run starts; with
        `push_conditions` (a store that filters residual predicates, i.e. MongoDB) the compiled condition
        also goes into the due query and items it leaves out are marked skipped without a run.
        """
        now = now or self.clock()
        fired = 0
        for automation in self.store.timer_automations():
            form = self.form(str(automation["tenant_id"]), str(automation["form_id"]))
            if form is None:
                continue
            condition = self.condition(automation, form.fields)
            match = condition.to_mongo("data.") if condition is not None and self.settings.push_conditions else None
            items = self.store.claim_due(
                now=now,
                lease_seconds=LEASE_SECONDS,
                worker=self.worker,
                automation_id=str(automation["id"]),
                kind="record",
                match=match,
                limit=max(limit - fired, 0),
            )
            for item in items:
                self._fire_record(automation, item)
                fired += 1
            if match is not None:
                self.store.skip_due(now=now, automation_id=str(automation["id"]), match=match)
        handlers = {
            "retry": self._fire_retry,
            "schedule": self._fire_schedule,
            "pool_warn": self._fire_pool,
            "pool": self._fire_pool,
            "handover": self._fire_handover,
            "approval": self._fire_approval,
        }
        for kind, fire in handlers.items():
            if fired >= limit:
                break
            items = self.store.claim_due(
                now=now, lease_seconds=LEASE_SECONDS, worker=self.worker, kind=kind, limit=limit - fired
            )
            for item in items:
                fire(item)
                fired += 1
        return fired

    def _fire_record(self, automation: Mapping[str, Any], item: TimerItem) -> None:
        tenant_id = item.tenant_id
        cause = {
            "id": f"timer:{item.id}:{int(item.due_at.timestamp())}",
            "type": f"timer.{(automation.get('trigger') or {}).get('type')}",
            "record_id": item.record_id,
            "data": {"record_id": item.record_id},
        }

        def current() -> Doc | None:
            found = self.records.get(self._service(tenant_id), item.record_id)
            return plain_record(found) if found is not None else None

        try:
            self._run(automation, str(cause["id"]), cause, current)
        finally:
            self.store.finish(item.id, self.worker, due_at=item.due_at)

    def _fire_handover(self, item: TimerItem) -> None:
        """Work on a handover job for a while; an unfinished one is due again at once (the next sweep goes on)."""
        if self.handover is None:
            return
        try:
            finished = self.handover.run(item.tenant_id, str(item.payload.get("job_id") or ""))
        except (DomainError, OSError, RuntimeError, ValueError, KeyError) as exc:
            log.warning("handover_paused", item=item.id, error=_describe(exc))
            return  # the lease runs out and a sweep resumes it
        if finished:
            self.store.finish(item.id, self.worker, due_at=item.due_at)
        else:
            self.store.move_pending(item.id, self.clock())

    def _fire_approval(self, item: TimerItem) -> None:
        """An approval's due item: its watchdog, a reminder, an escalation, a guard sync (domain/approval_engine.py)."""
        try:
            if self.approvals is not None:
                outcome = self.approvals.fire(item)
                log.info("approval_timer_fired", item=item.id, outcome=outcome)
        except (DomainError, OSError, RuntimeError, ValueError, KeyError) as exc:
            log.warning("approval_timer_failed", item=item.id, error=_describe(exc))
            return  # the lease runs out and another sweep tries again
        self.store.finish(item.id, self.worker, due_at=item.due_at)

    def _fire_pool(self, item: TimerItem) -> None:
        try:
            if self.pools is not None:
                outcome = self.pools.fire(item)
                log.info("pool_timer_fired", item=item.id, outcome=outcome)
        except (DomainError, OSError, RuntimeError, ValueError, KeyError) as exc:
            # the lease runs out and another sweep tries again (a record service that did not answer)
            log.warning("pool_timer_failed", item=item.id, error=_describe(exc))
            return
        self.store.finish(item.id, self.worker, due_at=item.due_at)

    def _fire_retry(self, item: TimerItem) -> None:
        payload = item.payload
        try:
            self.resume(str(payload["run_id"]), int(payload["index"]), int(payload["attempt"]))
        finally:
            self.store.finish(item.id, self.worker, due_at=item.due_at)

    def _fire_schedule(self, item: TimerItem) -> None:
        automation = self.store.automation(item.tenant_id, item.automation_id)
        try:
            if automation is None or not automation.get("enabled") or automation.get("deleted"):
                return
            trigger = automation.get("trigger") or {}
            tenant_id = item.tenant_id
            stamp = int(item.due_at.timestamp())
            cursor, seen = "", 0
            principal = self._service(tenant_id)
            while seen < int(trigger.get("limit") or 10_000):
                page, cursor = self.records.page(
                    principal, str(automation["form_id"]), automation.get("condition"), cursor, SCHEDULE_PAGE
                )
                for record in page:
                    seen += 1
                    plain = plain_record(record)
                    cause = {
                        "id": f"sched:{automation['id']}:{stamp}:{record.get('id')}",
                        "type": "timer.schedule",
                        "record_id": record.get("id"),
                        "data": {"record_id": record.get("id")},
                    }
                    self._run(automation, str(cause["id"]), cause, _constant(plain))
                if not cursor:
                    break
        finally:
            self.store.finish(item.id, self.worker, due_at=item.due_at)
            if automation is not None and automation.get("enabled") and not automation.get("deleted"):
                self.arm_schedule(automation, after=item.due_at)

    def arm_all_schedules(self) -> int:
        """Arm the next firing of every enabled scheduled automation that has none (worker start)."""
        armed = 0
        for automation in self.store.schedule_automations():
            if not self.store.has_pending(schedule_timer_id(str(automation["id"]))):
                self.arm_schedule(automation)
                armed += 1
        return armed

    def dead_letter_event(self, envelope: Mapping[str, Any], error: str) -> None:
        """Keep an event the engine could not handle (a malformed event, a bug) with its error, for replay."""
        self.store.add_dead_letter(
            {
                "_id": f"dl:event:{envelope.get('id')}",
                "kind": "event",
                "tenant_id": str(envelope.get("tenant_id") or ""),
                "event_id": envelope.get("id"),
                "event_type": envelope.get("type"),
                "record_id": str((envelope.get("data") or {}).get("record_id") or ""),
                "envelope": dict(envelope),
                "error": error,
                "attempts": 1,
                "created_at": self.clock(),
                "replayed_at": None,
            }
        )

    def arm_schedule(self, automation: Mapping[str, Any], *, after: datetime | None = None) -> None:
        """Put a scheduled automation's next firing (cron in its time zone) on the timer list."""
        trigger = automation.get("trigger") or {}
        if trigger.get("type") != "schedule":
            return
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(trigger["time_zone"]) if trigger.get("time_zone") else self.settings.tz
        base = (after or self.clock()).astimezone(tz)
        due = croniter(str(trigger["cron"]), base).get_next(datetime)
        self.store.arm(
            schedule_timer_id(str(automation["id"])),
            kind="schedule",
            tenant_id=str(automation["tenant_id"]),
            automation_id=str(automation["id"]),
            record_id="",
            due_at=due.astimezone(UTC),
            payload={"cron": trigger["cron"]},
        )


def _constant(record: Doc) -> Callable[[], Doc | None]:
    """A record provider for a record already read."""
    return lambda: record


def _describe(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        problem = exc.to_problem()
        errors = problem.get("errors") or []
        detail = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors if isinstance(e, Mapping))
        return f"{problem.get('code')}: {detail or problem.get('detail') or problem.get('title')}"
    return f"{type(exc).__name__}: {exc}"
