"""The approvals at work: instances started, moved by their tasks' actions and timers, and their effects on records.

Shared by the API (submit, task actions, withdraw), the worker (`record.change_held`,
the timer sweep) and automations (the `start_approval` action). An instance moves
only by compare-and-set: a task on its state (`pending` -> `done`: so an action is
done once, a retry of the same action by the same user finds it done and goes on
idempotently, anything else is a 409), the instance on its `seq` (so of two
approvals that both complete a 会签 step, one moves it on). What follows from the
tasks (follower tasks of a transfer or an added approver, activating the next of a
sequence, the next step, the outcome) is re-derived by `reconcile` from what is
stored, so a worker that dies halfway leaves nothing that the next call, or the
instance's watchdog timer, does not finish.

What an instance does to the world is a list of named *effects* kept on it and
carried out in order, each idempotent, each taken off the list when done; one that
fails for a reason a retry fixes (the record service not answering) stays, and the
instance's timer (`appr:sync:<id>`, kind "approval" on the engine's timer list,
claimed under a lease) tries again:

    at the start   lock (SetRecordLock, lock id = instance id, name = the process's name;
                   not for a guarded change: the record service already holds that field),
                   status (the form's approval_status field, if it has one), announce
                   (notify the new tasks' assignees and CC'd users, arm their timeouts)
    at the end     close (cancel open tasks), resolve (ResolveHeldChange: apply or drop a
                   guarded change with the reason), status, unlock (ClearRecordLock), tell
                   (notify the submitter), event (approval.completed in the workflow's outbox,
                   its id derived from the instance: written once)

Timeouts per approver node: `remind_after` notifies the assignee once; `escalate_after`
hands the task to the assignee's manager (or the tenant's admins) once, by the same
compare-and-set on the task, so two workers sweeping together never escalate twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_runtime import get_logger
from crm_runtime.envelope import make_envelope
from crm_runtime.errors import Conflict, DeadlineExceeded, DomainError, NotFound, Unavailable, ValidationFailed
from crm_runtime.principal import Principal
from workflow_service.domain import approval_flow as flow
from workflow_service.domain import approval_messages as amsg
from workflow_service.domain.actions import VersionMoved
from workflow_service.domain.approval_definitions import node_map
from workflow_service.domain.approval_ports import ApprovalRecords, ApprovalStore, Timers
from workflow_service.domain.common import iso
from workflow_service.domain.definitions import FormInfo
from workflow_service.domain.engine import plain_record
from workflow_service.domain.ports import Channel, DirectoryPort, DirectoryUser, Doc, FormPort, Message, TimerItem

log = get_logger("workflow.approvals")

SERVICE = "workflow"
TIMER_KIND = "approval"
EVENT_TYPE = "approval.completed"
RETRY_SECONDS = 30.0
WATCHDOG_SECONDS = 60.0
RETRYABLE: tuple[type[BaseException], ...] = (Unavailable, DeadlineExceeded, OSError, TimeoutError)
FINAL = ("approved", "rejected", "withdrawn")
_NS = uuid.UUID("6f1c8c1e-6a59-4b41-9d5e-1d2f6b1b2a10")


def derived_id(*parts: str) -> str:
    """A stable id from what caused something (a held change, an automation run's key): repeats find it."""
    return uuid.uuid5(_NS, "|".join(parts)).hex


def sync_timer_id(instance_id: str) -> str:
    """The instance's watchdog / effect-retry timer."""
    return f"appr:sync:{instance_id}"


def remind_timer_id(task_id: str) -> str:
    """A task's reminder."""
    return f"appr:remind:{task_id}"


def escalate_timer_id(task_id: str) -> str:
    """A task's escalation."""
    return f"appr:escalate:{task_id}"


def guards_timer_id(process_id: str) -> str:
    """The retry of a process's guard sync."""
    return f"appr:guards:{process_id}"


class Approvals:
    """Starts and moves approval instances (see the module docstring)."""

    def __init__(
        self,
        store: ApprovalStore,
        records: ApprovalRecords,
        forms: FormPort,
        directory: DirectoryPort,
        channels: Mapping[str, Channel],
        timers: Timers,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.forms = forms
        self.directory = directory
        self.channels = channels
        self.timers = timers
        self.clock = clock or (lambda: datetime.now(UTC))
        self._versions: dict[tuple[str, int], Doc] = {}

    # ------------------------------------------------------------ helpers

    @staticmethod
    def service(tenant_id: str, instance_id: str) -> Principal:
        """The principal every record call of an instance is made as."""
        return Principal.service(tenant_id, SERVICE, on_behalf=f"approval:{instance_id}")

    def form(self, tenant_id: str, form_ref: str) -> FormInfo | None:
        """A published form."""
        return self.forms.published(Principal.service(tenant_id, SERVICE), form_ref)

    def live_process(self, tenant_id: str, ref: str) -> Doc | None:
        """A process that is not deleted, by id or key."""
        if not ref:
            return None
        doc = self.store.get_process(tenant_id, ref) or self.store.process_by_key(tenant_id, ref)
        return None if doc is None or doc.get("deleted") else doc

    def process_of(self, instance: Mapping[str, Any]) -> Doc:
        """The process version an instance started with (immutable: cached)."""
        key = (str(instance["process_id"]), int(instance["process_version"]))
        if key not in self._versions:
            found = self.store.process_version(str(instance["tenant_id"]), *key)
            if found is None:
                raise NotFound(f"process version {key} is gone")
            if len(self._versions) > 1024:
                self._versions.clear()
            self._versions[key] = found
        return self._versions[key]

    def _people(self, tenant_id: str, submitter: str) -> Callable[[Sequence[Mapping[str, Any]]], list[str]]:
        return lambda specs: flow.resolve(tenant_id, specs, submitter, self.directory)

    def _admins(self, tenant_id: str) -> Callable[[], list[str]]:
        return lambda: flow.admins(tenant_id, self.directory)

    @staticmethod
    def title(form: FormInfo | None, record: Mapping[str, Any]) -> str:
        """What a person calls the record: its first number or text value, else its id."""
        data = record.get("data") or {}
        for key, definition in (form.fields if form else {}).items():
            if definition.get("type") in ("auto_number", "text") and isinstance(data.get(key), str | int) and data[key]:
                return str(data[key])
        return str(record.get("id") or "")

    @staticmethod
    def view(record: Mapping[str, Any], change: Mapping[str, Any] | None) -> Doc:
        """The record as conditions read it: as it is, or as it would be after a held change."""
        out = plain_record(record)
        if change:
            data = dict(out.get("data") or {})
            for key, values in (change.get("fields") or {}).items():
                data[key] = values.get("new") if isinstance(values, Mapping) else values
            out["data"] = plain_record({"data": data})["data"]
        return out

    def _event(self, kind: str, by: str, key: str, **extra: Any) -> Doc:
        return {"key": key, "type": kind, "at": self.clock(), "by": by, **extra}

    def _passed(self, instance_id: str, visit: int, passed: Sequence[Doc]) -> list[Doc]:
        return [self._event(p["type"], "system", f"{p['type']}:{visit}:{p['node_id']}", **p) for p in passed]

    # ------------------------------------------------------------ starting

    def start(
        self,
        *,
        tenant_id: str,
        process: Mapping[str, Any],
        record: Mapping[str, Any],
        submitted_by: str,
        comment: str = "",
        kind: str = "record",
        change: Mapping[str, Any] | None = None,
        instance_id: str = "",
        via: str = "",
        locale: str = "zh-CN",
    ) -> Doc:
        """A new instance for a record (or a held change of it); a repeat of the same start returns the first one."""
        instance_id = instance_id or uuid.uuid4().hex
        form = self.form(tenant_id, str(process["form_id"]))
        if form is None:
            raise amsg.invalid("form", "form_not_found", locale, ref=process.get("form_key"))
        record_id = str(record.get("id"))
        view = self.view(record, change)
        step = flow.route(
            node_map(process),
            str(process["start"]),
            view,
            form.fields,
            self._people(tenant_id, submitted_by),
            self._admins(tenant_id),
        )
        now = self.clock()
        open_key = f"change:{change['id']}" if kind == "change" and change else record_id
        users = step.users
        events = [self._event("submitted", submitted_by, "submitted", comment=comment[:2000])]
        events += self._passed(instance_id, 1, step.passed)
        doc: Doc = {
            "_id": instance_id,
            "tenant_id": tenant_id,
            "process_id": str(process["id"]),
            "process_version": int(process["version"]),
            "process_name": dict(process.get("name") or {}),
            "process_key": process.get("key") or "",
            "channels": list(process.get("channels") or ["in_app"]),
            "form_id": form.id,
            "form_key": form.key,
            "record_id": record_id,
            "record_title": self.title(form, record),
            "kind": kind,
            "change": dict(change) if change else None,
            "state": "pending",
            "open_key": open_key,
            "submitted_by": submitted_by,
            "submitted_at": now,
            "updated_at": now,
            "finished_at": None,
            "node_id": step.node["id"] if step.node else "",
            "visit": 1,
            "trail": [step.node["id"]] if step.node else [],
            "current_users": users,
            "current_cc": step.cc,
            "participants": list(dict.fromkeys([submitted_by, *users, *step.cc])),
            "decided_by": "",
            "reason": "",
            "seq": 0,
            "effects": (["lock"] if kind == "record" else []) + ["status", "announce"],
            "events": events,
            "via": via,
        }
        outcome = self.store.insert_instance(doc)
        if outcome == "exists":
            return self.store.instance(instance_id) or doc
        if outcome == "open":
            other = self.store.open_instance(tenant_id, open_key) or {}
            if other.get("process_id") == doc["process_id"] and other.get("submitted_by") == submitted_by:
                return other  # the same submission again (a retried request)
            name = (other.get("process_name") or {}).get(locale) or (other.get("process_name") or {}).get("zh-CN")
            raise amsg.already_in_approval(str(name or ""), str(other.get("_id") or ""), locale)
        tasks = flow.cc_tasks(tenant_id, instance_id, 1, doc["node_id"] or "end", step.cc, now)
        if step.node is not None:
            tasks = flow.new_tasks(tenant_id, instance_id, 1, step.node, users, now) + tasks
        self.store.insert_tasks(tasks)
        self._arm_sync(doc, WATCHDOG_SECONDS)
        if kind == "record":
            try:
                self.records.set_lock(
                    self.service(tenant_id, instance_id),
                    record_id,
                    {"id": instance_id, "kind": "approval", "name": doc["process_name"].get("zh-CN") or ""},
                )
            except Conflict as exc:
                self.store.delete_instance(instance_id)
                self.timers.disarm(sync_timer_id(instance_id))
                raise amsg.already_in_approval(
                    str((exc.extra.get("lock") or {}).get("name") or ""), "", locale
                ) from None
            except NotFound:
                self.store.delete_instance(instance_id)
                self.timers.disarm(sync_timer_id(instance_id))
                raise NotFound(amsg.message("record_not_found", locale, ref=record_id), record_id=record_id) from None
            except RETRYABLE as exc:
                log.warning("approval_lock_deferred", instance_id=instance_id, error=str(exc))
            else:
                self.store.pull_effect(instance_id, "lock")
        if step.node is None:
            current = self.store.instance(instance_id) or doc
            self._finish(current, "approved", "system", "")
        elif self._run_effects(instance_id):
            self.timers.disarm(sync_timer_id(instance_id))
        return self.store.instance(instance_id) or doc

    # ------------------------------------------------------------ task actions

    def act(
        self,
        task: Mapping[str, Any],
        action: str,
        actor: str,
        *,
        comment: str = "",
        reason: str = "",
        to: str = "",
        user_id: str = "",
        locale: str = "zh-CN",
    ) -> Doc:
        """Do `action` on a pending task of the instance's current step, once; returns the instance after it."""

        def repeat(current: Mapping[str, Any]) -> bool:
            return (
                current.get("state") == "done"
                and current.get("action") == action
                and current.get("acted_by") == actor
                and (action not in flow.FOLLOWER or current.get("to_user") == user_id)
            )

        instance_id = str(task["instance_id"])
        if repeat(task):
            return self.reconcile(instance_id)  # a retry of an action that was done: finish what follows
        instance = self.store.instance(instance_id) or {}
        if instance.get("state") != "pending":
            raise amsg.not_pending(str(instance.get("state")), locale)
        now = self.clock()
        fields: Doc = {"state": "done", "action": action, "acted_by": actor, "acted_at": now, "box_at": now}
        fields["comment"] = comment[:2000]
        if action == "reject":
            fields.update(reason=reason[:500], reject_to=to or "submitter")
        if action in flow.FOLLOWER:
            fields["to_user"] = user_id
        current = task
        if int(task.get("visit") or 0) == int(instance.get("visit") or 0):
            self._arm_sync(instance, WATCHDOG_SECONDS)
            if self.store.cas_task(str(task["_id"]), ["pending"], fields):
                self.timers.disarm(remind_timer_id(str(task["_id"])))
                self.timers.disarm(escalate_timer_id(str(task["_id"])))
                return self.reconcile(instance_id)
            current = self.store.task(str(task["_id"])) or task
            if repeat(current):
                return self.reconcile(instance_id)
        state = str(current.get("state"))
        if state == "pending":
            state = "stale"  # a task of an earlier step
        raise amsg.task_not_pending(state, locale)

    def withdraw(self, instance: Mapping[str, Any], actor: str, reason: str, *, locale: str = "zh-CN") -> Doc:
        """End a pending instance as withdrawn."""
        current: Mapping[str, Any] = instance
        for _attempt in range(5):
            if current.get("state") != "pending":
                if current.get("state") == "withdrawn" and current.get("decided_by") == actor:
                    return dict(current)  # a retried withdrawal
                raise amsg.not_pending(str(current.get("state")), locale)
            if self._finish(current, "withdrawn", actor, reason or amsg.message("withdrawn_reason", locale)):
                return self.store.instance(str(instance["_id"])) or dict(current)
            current = self.store.instance(str(instance["_id"])) or {}
        raise Unavailable("the approval kept changing")

    def comment(self, instance: Mapping[str, Any], actor: str, text: str) -> Doc:
        """A comment on the timeline."""
        self.store.push_event(str(instance["_id"]), self._event("commented", actor, uuid.uuid4().hex, comment=text))
        return self.store.instance(str(instance["_id"])) or dict(instance)

    # ------------------------------------------------------------ moving on

    def reconcile(self, instance_id: str) -> Doc:
        """Derive and apply what the stored tasks decide (idempotent), then carry out pending effects."""
        for _attempt in range(20):
            instance = self.store.instance(instance_id)
            if instance is None:
                return {}
            if instance.get("state") != "pending":
                self._run_effects(instance_id)
                return self.store.instance(instance_id) or instance
            visit = int(instance.get("visit") or 0)
            every = self.store.tasks_of(instance_id)
            tasks = [t for t in every if int(t.get("visit") or 0) == visit]
            if any(int(t.get("visit") or 0) < visit and t.get("state") in flow.OPEN for t in every):
                for old in {int(t.get("visit") or 0) for t in every if int(t.get("visit") or 0) < visit}:
                    self.store.close_tasks(instance_id, old, self.clock())
            if not any(t.get("kind") == "approve" for t in tasks) and instance.get("node_id"):
                # the step was entered but its tasks not yet written (a worker died in between)
                node = node_map(self.process_of(instance)).get(str(instance["node_id"])) or {}
                self._insert_step_tasks(instance, node, visit)
                continue
            ids = {str(t["_id"]) for t in every}
            now = self.clock()
            new = [f for t in tasks for f in flow.followers(t, now) if f["_id"] not in ids]
            if new:
                self.store.insert_tasks(new)
                self.store.update_instance(
                    instance_id,
                    int(instance["seq"]),
                    {"$addToSet": {"participants": {"$each": [f["user_id"] for f in new]}, "effects": "announce"}},
                )
                continue
            nodes = node_map(self.process_of(instance))
            node = nodes.get(str(instance["node_id"])) or {}
            decision = flow.decide(str(node.get("mode") or "any"), tasks)
            if decision.outcome == "wait":
                activating = {"state": "pending", "box_at": now}
                activated = [t for t in decision.activate if self.store.cas_task(t, ["queued"], activating)]
                if activated and not self.store.update_instance(
                    instance_id, int(instance["seq"]), {"$addToSet": {"effects": "announce"}}
                ):
                    continue
                if self._run_effects(instance_id):
                    self.timers.disarm(sync_timer_id(instance_id))
                return self.store.instance(instance_id) or instance
            if decision.outcome == "complete":
                approvals = [t for t in tasks if t.get("state") == "done" and t.get("action") == "approve"]
                approvals.sort(key=lambda t: (str(t.get("acted_at") or ""), str(t["_id"])))
                by = str(approvals[-1].get("acted_by")) if approvals else "system"
                moved = self._advance(instance, str(node.get("next") or ""), list(instance.get("trail") or []), by)
            else:
                rejected = decision.rejected or {}
                trail = list(instance.get("trail") or [])
                if rejected.get("reject_to") == "previous" and len(trail) >= 2:
                    moved = self._advance(instance, trail[-2], trail[:-2], str(rejected.get("acted_by")), back=True)
                else:
                    moved = self._finish(
                        instance, "rejected", str(rejected.get("acted_by") or ""), str(rejected.get("reason") or "")
                    )
            if moved:
                continue
        raise Unavailable(f"approval {instance_id} kept changing")

    def _insert_step_tasks(self, instance: Mapping[str, Any], node: Mapping[str, Any], visit: int) -> None:
        now = self.clock()
        tenant_id, instance_id = str(instance["tenant_id"]), str(instance["_id"])
        tasks = flow.new_tasks(tenant_id, instance_id, visit, node, list(instance.get("current_users") or []), now)
        tasks += flow.cc_tasks(
            tenant_id, instance_id, visit, str(node.get("id")), list(instance.get("current_cc") or []), now
        )
        self.store.insert_tasks(tasks)

    def _advance(
        self, instance: Mapping[str, Any], from_id: str, trail: list[str], by: str, *, back: bool = False
    ) -> bool:
        """Walk to the next step (or back to an earlier one) and enter it; False when another write was first."""
        tenant_id, instance_id = str(instance["tenant_id"]), str(instance["_id"])
        process = self.process_of(instance)
        form = self.form(tenant_id, str(instance["form_id"]))
        record = self.records.get(self.service(tenant_id, instance_id), str(instance["record_id"]))
        if record is None or form is None:
            return self._finish(instance, "withdrawn", "system", amsg.message("record_gone", "zh-CN"))
        step = flow.route(
            node_map(process),
            from_id,
            self.view(record, instance.get("change")),
            form.fields,
            self._people(tenant_id, str(instance["submitted_by"])),
            self._admins(tenant_id),
        )
        visit = int(instance.get("visit") or 0) + 1
        events = self._passed(instance_id, visit, step.passed)
        if back:
            events.insert(0, self._event("sent_back", by, f"sent_back:{visit}", node_id=from_id))
        if step.node is None:
            if step.cc:
                self.store.insert_tasks(flow.cc_tasks(tenant_id, instance_id, visit - 1, "end", step.cc, self.clock()))
            return self._finish(instance, "approved", by, "", events=events, cc=step.cc)
        update: Doc = {
            "$set": {
                "node_id": step.node["id"],
                "visit": visit,
                "trail": [*trail, step.node["id"]],
                "current_users": step.users,
                "current_cc": step.cc,
                "updated_at": self.clock(),
            },
            "$addToSet": {
                "participants": {"$each": [*step.users, *step.cc]},
                "effects": "announce",
            },
        }
        if events:
            update["$push"] = {"events": {"$each": events}}
        if not self.store.update_instance(instance_id, int(instance["seq"]), update):
            return False
        self.store.close_tasks(instance_id, visit - 1, self.clock())
        self._insert_step_tasks({**instance, "current_users": step.users, "current_cc": step.cc}, step.node, visit)
        return True

    def _finish(
        self,
        instance: Mapping[str, Any],
        outcome: str,
        by: str,
        reason: str,
        *,
        events: Sequence[Doc] = (),
        cc: Sequence[str] = (),
    ) -> bool:
        """End a pending instance (compare-and-set on its seq) and carry out the end's effects."""
        instance_id = str(instance["_id"])
        effects = ["close"]
        if instance.get("kind") == "change":
            effects.append("resolve")
        effects.append("status")
        if instance.get("kind") == "record":
            effects.append("unlock")
        effects += ["announce", "tell", "event"]
        now = self.clock()
        update: Doc = {
            "$set": {
                "state": outcome,
                "finished_at": now,
                "updated_at": now,
                "decided_by": by,
                "reason": reason[:500],
                "effects": effects,
            },
            "$unset": {"open_key": ""},
            "$push": {"events": {"$each": [*events, self._event(outcome, by, outcome, reason=reason[:500])]}},
        }
        if cc:
            update["$addToSet"] = {"participants": {"$each": list(cc)}}
        if not self.store.update_instance(instance_id, int(instance["seq"]), update):
            return False
        self._arm_sync(instance, WATCHDOG_SECONDS)
        self._run_effects(instance_id)
        return True

    # ------------------------------------------------------------ effects

    def _arm_sync(self, instance: Mapping[str, Any], seconds: float) -> None:
        self.timers.arm(
            sync_timer_id(str(instance["_id"])),
            kind=TIMER_KIND,
            tenant_id=str(instance["tenant_id"]),
            automation_id=str(instance.get("process_id") or ""),
            record_id=str(instance.get("record_id") or ""),
            due_at=self.clock() + timedelta(seconds=seconds),
            payload={"stage": "sync", "instance_id": str(instance["_id"])},
        )

    def _run_effects(self, instance_id: str) -> bool:
        """Carry out the instance's pending effects in order; True when none is left.

        A retryable failure leaves it and the rest on the list for the instance's timer.
        """
        instance = self.store.instance(instance_id)
        if instance is None:
            return True
        for name in list(instance.get("effects") or []):
            try:
                finished = getattr(self, f"_effect_{name}")(instance)
            except RETRYABLE as exc:
                log.warning("approval_effect_deferred", instance_id=instance_id, effect=name, error=str(exc))
                self._arm_sync(instance, RETRY_SECONDS)
                return False
            if finished == "restart":
                return False  # the effect ended the instance: the end's own effects ran (or wait for the timer)
            self.store.pull_effect(instance_id, name)
        if instance.get("state") in FINAL:
            self.timers.disarm(sync_timer_id(instance_id))
        return True

    def _effect_lock(self, instance: Doc) -> str:
        if instance.get("state") != "pending":
            return ""
        tenant_id, instance_id = str(instance["tenant_id"]), str(instance["_id"])
        try:
            self.records.set_lock(
                self.service(tenant_id, instance_id),
                str(instance["record_id"]),
                {"id": instance_id, "kind": "approval", "name": (instance.get("process_name") or {}).get("zh-CN", "")},
            )
        except Conflict as exc:
            name = str((exc.extra.get("lock") or {}).get("name") or "")
            self.store.pull_effect(instance_id, "lock")
            self._finish(instance, "withdrawn", "system", amsg.message("lock_conflict", "zh-CN", name=name))
            return "restart"
        except NotFound:
            self.store.pull_effect(instance_id, "lock")
            self._finish(instance, "withdrawn", "system", amsg.message("record_gone", "zh-CN"))
            return "restart"
        return ""

    def _effect_status(self, instance: Doc) -> str:
        tenant_id, instance_id = str(instance["tenant_id"]), str(instance["_id"])
        form = self.form(tenant_id, str(instance["form_id"]))
        key = next((k for k, d in (form.fields if form else {}).items() if d.get("type") == "approval_status"), None)
        if key is None:
            return ""
        principal = self.service(tenant_id, instance_id)
        state = str(instance["state"])
        for _attempt in range(3):
            record = self.records.get(principal, str(instance["record_id"]))
            if record is None or (record.get("data") or {}).get(key) == state:
                return ""
            try:
                self.records.update(
                    principal, str(instance["record_id"]), {key: state}, int(record.get("version") or 0)
                )
            except VersionMoved:
                continue
            except (ValidationFailed, NotFound) as exc:
                # not a failure a retry fixes: the timeline says so, the approval goes on
                detail = "; ".join(e.message for e in getattr(exc, "errors", [])) or exc.detail
                self.store.push_event(
                    instance_id, self._event("status_not_written", "system", f"status:{state}", reason=detail[:500])
                )
                log.warning("approval_status_not_written", instance_id=instance_id, error=detail)
            return ""
        raise Unavailable("the record kept changing while its approval status was written")

    def _effect_announce(self, instance: Doc) -> str:
        """Notify the assignees of new pending tasks and the CC'd users; arm the tasks' timeouts."""
        tenant_id = str(instance["tenant_id"])
        nodes = node_map(self.process_of(instance))
        for task in self.store.tasks_of(str(instance["_id"])):
            if task.get("announced") or task.get("state") not in ("pending", "cc"):
                continue
            if task.get("state") == "pending" and instance.get("state") != "pending":
                continue
            if task["state"] == "cc":
                rule = "notify_cc"
            elif (task.get("origin") or {}).get("action") == "escalate":
                rule = "notify_escalated"
            else:
                rule = "notify_task"
            self._notify(instance, [str(task["user_id"])], f"appr:{task['_id']}", rule)
            node = nodes.get(str(task.get("node_id"))) or {}
            timeouts = node.get("timeouts") or {}
            if task["state"] == "pending" and timeouts:
                start = task.get("box_at") or self.clock()
                for stage, seconds, item in (
                    ("remind", timeouts.get("remind_after"), remind_timer_id(str(task["_id"]))),
                    ("escalate", None if task.get("escalated") else timeouts.get("escalate_after"),
                     escalate_timer_id(str(task["_id"]))),
                ):  # fmt: skip
                    if not seconds:
                        continue
                    self.timers.arm(
                        item,
                        kind=TIMER_KIND,
                        tenant_id=tenant_id,
                        automation_id=str(instance["process_id"]),
                        record_id=str(instance["record_id"]),
                        due_at=start + timedelta(seconds=int(seconds)),
                        payload={"stage": stage, "task_id": str(task["_id"]), "instance_id": str(instance["_id"])},
                    )
            self.store.cas_task(str(task["_id"]), [str(task["state"])], {"announced": True})
        return ""

    def _effect_close(self, instance: Doc) -> str:
        self.store.close_tasks(str(instance["_id"]), None, self.clock())
        return ""

    def _effect_resolve(self, instance: Doc) -> str:
        change = instance.get("change") or {}
        if not change.get("id"):
            return ""
        approve = instance.get("state") == "approved"
        principal = self.service(str(instance["tenant_id"]), str(instance["_id"]))
        try:
            self.records.resolve_change(
                principal, str(instance["record_id"]), str(change["id"]), approve, str(instance.get("reason") or "")
            )
        except (Conflict, NotFound):
            return ""  # resolved already (a repeat), or the record is gone
        except ValidationFailed as exc:
            detail = "; ".join(e.message for e in exc.errors) or exc.detail
            self.store.push_event(
                str(instance["_id"]),
                self._event("change_not_applied", "system", "change_not_applied", reason=detail[:500]),
            )
        return ""

    def _effect_unlock(self, instance: Doc) -> str:
        try:
            self.records.clear_lock(
                self.service(str(instance["tenant_id"]), str(instance["_id"])),
                str(instance["record_id"]),
                str(instance["_id"]),
            )
        except NotFound:
            pass
        return ""

    def _effect_tell(self, instance: Doc) -> str:
        state = str(instance.get("state"))
        rule = {"approved": "notify_approved", "rejected": "notify_rejected", "withdrawn": "notify_withdrawn"}[state]
        to = [str(instance["submitted_by"])]
        if state == "withdrawn":
            # the assignees of the step it was taken back from are told too
            to += [str(u) for u in instance.get("current_users") or []]
        self._notify(instance, to, f"appr:{instance['_id']}:{state}", rule, reason=str(instance.get("reason") or ""))
        return ""

    def _effect_event(self, instance: Doc) -> str:
        decided_by = str(instance.get("decided_by") or "system")
        data: Doc = {
            "instance_id": str(instance["_id"]),
            "process_id": str(instance["process_id"]),
            "process_version": int(instance["process_version"]),
            "record_id": str(instance["record_id"]),
            "form_id": str(instance["form_id"]),
            "outcome": str(instance["state"]),
            "submitted_by": str(instance["submitted_by"]),
            "decided_by": decided_by,
            "reason": str(instance.get("reason") or ""),
            "kind": str(instance.get("kind") or "record"),
            "change_id": str((instance.get("change") or {}).get("id") or ""),
        }
        envelope = make_envelope(EVENT_TYPE, str(instance["tenant_id"]), data, source=SERVICE, actor=decided_by)
        envelope["id"] = derived_id(EVENT_TYPE, str(instance["_id"]))
        self.store.put_event(
            {"_id": envelope["id"], "tenant_id": envelope["tenant_id"], "event": envelope, "published": False}
        )
        return ""

    def _notify(self, instance: Mapping[str, Any], user_ids: Sequence[str], key: str, rule: str, **params: Any) -> None:
        tenant_id = str(instance["tenant_id"])
        users: list[DirectoryUser] = []
        for user_id in dict.fromkeys(user_ids):
            user = self.directory.user(tenant_id, user_id) if user_id and not user_id.startswith("service:") else None
            if user is not None and user.active:
                users.append(user)
        if not users:
            return
        name = (instance.get("process_name") or {}).get("zh-CN") or ""
        text = amsg.message(rule, "zh-CN", process=name, title=instance.get("record_title") or "", **params)
        msg = Message(
            tenant_id=tenant_id,
            recipients=tuple(users),
            title=text,
            body=text,
            record_id=str(instance.get("record_id") or ""),
            form_id=str(instance.get("form_id") or ""),
            key=key,
        )
        for channel_name in instance.get("channels") or ["in_app"]:
            channel = self.channels.get(str(channel_name))
            if channel is None or not channel.configured:
                continue
            try:
                channel.send(msg)
            except (OSError, DomainError) as exc:  # a notification is not worth holding the approval back
                log.warning("approval_notify_failed", key=key, channel=channel_name, error=str(exc))

    # ------------------------------------------------------------ timers

    def fire(self, item: TimerItem) -> str:
        """One due approval item: the instance's watchdog, a reminder, an escalation, or a guard sync."""
        stage = str(item.payload.get("stage") or "")
        if stage == "sync":
            self.reconcile(str(item.payload.get("instance_id")))
            return "synced"
        if stage == "guards":
            self.sync_guards(item.tenant_id, str(item.payload.get("process_id")))
            return "guards"
        task = self.store.task(str(item.payload.get("task_id") or ""))
        if task is None or task.get("state") != "pending":
            return "not_pending"
        instance = self.store.instance(str(task["instance_id"])) or {}
        if instance.get("state") != "pending" or int(instance.get("visit") or 0) != int(task.get("visit") or 0):
            return "not_pending"
        if stage == "remind":
            self._notify(instance, [str(task["user_id"])], f"appr-remind:{task['_id']}", "notify_remind")
            self.store.push_event(
                str(instance["_id"]),
                self._event(
                    "reminded", "system", f"remind:{task['_id']}", task_id=task["_id"], users=[task["user_id"]]
                ),
            )
            return "reminded"
        if stage == "escalate":
            target = self._escalation_target(instance, task)
            if not target:
                return "nobody"
            now = self.clock()
            fields = {
                "state": "done", "action": "escalate", "acted_by": "system", "acted_at": now, "box_at": now,
                "to_user": target, "comment": "",
            }  # fmt: skip
            if not self.store.cas_task(str(task["_id"]), ["pending"], fields):
                return "not_pending"
            self.timers.disarm(remind_timer_id(str(task["_id"])))
            self.store.push_event(
                str(instance["_id"]),
                self._event("escalated", "system", f"escalate:{task['_id']}", task_id=task["_id"],
                            users=[task["user_id"]], to_user=target),
            )  # fmt: skip
            self.reconcile(str(instance["_id"]))
            return "escalated"
        return "unknown"

    def _escalation_target(self, instance: Mapping[str, Any], task: Mapping[str, Any]) -> str:
        tenant_id = str(instance["tenant_id"])
        node = node_map(self.process_of(instance)).get(str(task.get("node_id"))) or {}
        to = (node.get("timeouts") or {}).get("escalate_to", "manager")
        assignee = str(task["user_id"])
        if to == "manager":
            user = self.directory.user(tenant_id, assignee)
            manager = self.directory.user(tenant_id, user.manager_id) if user and user.manager_id else None
            if manager is not None and manager.active and manager.user_id != assignee:
                return manager.user_id
        return next((a for a in flow.admins(tenant_id, self.directory) if a != assignee), "")

    # ------------------------------------------------------------ guarded changes

    def sync_guards(self, tenant_id: str, process_id: str) -> bool:
        """Tell the record service the guard a process keeps on its form (none when disabled or deleted)."""
        process = self.store.get_process(tenant_id, process_id)
        if process is None:
            return True
        guard = process.get("guard")
        live = bool(guard) and bool(process.get("enabled")) and not process.get("deleted")
        guards = (
            [{"id": process_id, "field": guard["field"], "condition": guard.get("condition"),
              "name": (process.get("name") or {}).get("zh-CN", "")}]
            if live and guard else []
        )  # fmt: skip
        principal = Principal.service(tenant_id, SERVICE, on_behalf=f"approval_process:{process_id}")
        try:
            self.records.set_guards(principal, str(process["form_id"]), f"approval:{process_id}", guards)
        except RETRYABLE as exc:
            log.warning("approval_guards_deferred", process_id=process_id, error=str(exc))
            self.store.set_process_fields(process_id, {"guards_synced": False})
            self.timers.arm(
                guards_timer_id(process_id),
                kind=TIMER_KIND,
                tenant_id=tenant_id,
                automation_id=process_id,
                record_id="",
                due_at=self.clock() + timedelta(seconds=RETRY_SECONDS),
                payload={"stage": "guards", "process_id": process_id},
            )
            return False
        except (ValidationFailed, NotFound) as exc:
            self.store.set_process_fields(process_id, {"guards_synced": False, "guards_error": exc.detail[:500]})
            return False
        self.store.set_process_fields(process_id, {"guards_synced": True, "guards_error": ""})
        self.timers.disarm(guards_timer_id(process_id))
        return True

    def on_change_held(self, envelope: Mapping[str, Any]) -> str:
        """A user's change of a guarded field waits: start its approval (once per held change)."""
        tenant_id = str(envelope.get("tenant_id") or "")
        data = envelope.get("data") or {}
        owner = str(data.get("guard_owner") or "")
        change_id = str(data.get("change_id") or "")
        record_id = str(data.get("record_id") or "")
        if not tenant_id or not owner.startswith("approval:") or not change_id or not record_id:
            return ""
        process_id = owner.split(":", 1)[1]
        instance_id = derived_id(tenant_id, "change", change_id)
        process = self.store.get_process(tenant_id, process_id)
        principal = self.service(tenant_id, instance_id)
        if process is None or process.get("deleted") or not process.get("enabled") or not process.get("guard"):
            # the rule that held the change is gone: nothing to wait for
            try:
                self.records.resolve_change(principal, record_id, change_id, True, "")
            except (Conflict, NotFound):
                pass
            log.info("held_change_released", process_id=process_id, change_id=change_id)
            return ""
        record = self.records.get(principal, record_id)
        if record is None:
            return ""
        change = {
            "id": change_id,
            "guard_id": str(data.get("guard_id") or ""),
            "fields": dict(data.get("changes") or {}),
        }
        instance = self.start(
            tenant_id=tenant_id,
            process=process,
            record=record,
            submitted_by=str(data.get("requested_by") or envelope.get("actor") or ""),
            kind="change",
            change=change,
            instance_id=instance_id,
            via=f"event:{envelope.get('id')}",
        )
        return str(instance.get("_id") or "")

    def transfer_tasks(self, tenant_id: str, from_user: str, to_user: str) -> int:
        """A handover: every pending approval task of `from_user` transferred to `to_user` (each its own action,
        in the instance's timeline, by the handover); returns how many moved."""
        moved = 0
        for _ in range(100):  # pages of 100, newest first, until none is pending
            page = self.store.list_box(tenant_id, from_user, "pending", before=None, size=100)
            if not page:
                break
            for task in page:
                try:
                    self.act(task, "transfer", "service:workflow", user_id=to_user, comment="离职交接")
                    moved += 1
                except DomainError as exc:  # a task that moved on meanwhile: the next page no longer has it
                    log.warning("handover_task_kept", task=task.get("_id"), error=str(exc))
            if len(page) < 100:
                break
        return moved

    def start_for_automation(
        self, tenant_id: str, process: Mapping[str, Any], record: Mapping[str, Any], key: str
    ) -> Doc:
        """The start_approval action: the record submitted as its owner (once per run key)."""
        submitter = str(record.get("owner_id") or record.get("created_by") or "")
        instance_id = derived_id(tenant_id, "automation", key)
        try:
            instance = self.start(
                tenant_id=tenant_id, process=process, record=record, submitted_by=submitter,
                instance_id=instance_id, via=f"automation:{key}",
            )  # fmt: skip
        except Conflict as exc:
            return {"skipped": "already_in_approval", "instance_id": exc.extra.get("instance_id")}
        return {"instance_id": instance.get("_id"), "state": instance.get("state")}


def public_time(value: Any) -> Any:
    """A stored time as API text."""
    return iso(value)
