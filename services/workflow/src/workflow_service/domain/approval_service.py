"""The approval API's use cases: processes (versioned; tenant admins manage them), submitting a record,
task actions, withdrawing, comments, one instance with its timeline, and each user's inbox.

Who sees what: an instance (and its tasks) is visible to its submitter, everyone who
held one of its tasks, its CC'd users and the tenant's admins; to anyone else, and
to another tenant, it does not exist (404). A task is acted on by its assignee or an
admin (403 for another participant). Submitting needs the record to be visible to
the submitter (read as the caller), after which the workflow acts as itself
(`Principal.service(tenant, "workflow", on_behalf="approval:<instance id>")`).
Process definitions are readable by every user of the tenant (to choose one when
submitting); creating, changing and deleting them is for admins.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from crm_runtime.errors import Conflict, NotFound, ValidationFailed
from crm_runtime.principal import Principal
from workflow_service.domain import approval_flow as flow
from workflow_service.domain import approval_messages as amsg
from workflow_service.domain.approval_definitions import node_map, parse_process, user_definition
from workflow_service.domain.approval_engine import Approvals
from workflow_service.domain.common import FormsFor, iso, new_definition
from workflow_service.domain.ports import Doc

DEFAULT_PAGE = 20
MAX_PAGE = 100
MAX_COMMENT = 2000
MAX_REASON = 500
MAX_EVENTS = 500
BOXES = {"todo": "pending", "done": "done", "cc": "cc", "submitted": ""}
ACTION_EVENTS = {
    "approve": "approved",
    "reject": "rejected",
    "transfer": "transferred",
    "add_before": "approver_added",
    "add_after": "approver_added",
}


def encode_cursor(moment: Any, row_id: str) -> str:
    """The opaque cursor after a row: its time and id."""
    if not isinstance(moment, datetime):
        return ""
    text = f"{moment.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, locale: str) -> tuple[datetime, str] | None:
    """(time, id) a cursor stands for; a 422 when it is not one of ours."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment_text, _, row_id = text.partition("|")
        moment = datetime.fromisoformat(moment_text)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise amsg.invalid("cursor", "invalid_cursor", locale) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), row_id


def public_process(doc: Mapping[str, Any]) -> Doc:
    """The API form of a process."""
    keep = (
        "id", "tenant_id", "name", "key", "description", "form_id", "form_key", "enabled", "version", "guard",
        "start", "channels", "nodes", "template_key", "created_at", "updated_at", "created_by", "updated_by",
        "guards_synced", "guards_error",
    )  # fmt: skip
    return {k: iso(doc.get(k)) for k in keep if k in doc}


class ApprovalUseCases:
    """The approval RPCs as plain methods over the approvals engine and its store."""

    def __init__(self, approvals: Approvals, *, clock: Callable[[], datetime] | None = None) -> None:
        self.approvals = approvals
        self.store = approvals.store
        self.clock = clock or approvals.clock

    # ------------------------------------------------------------ access

    @staticmethod
    def _admin(principal: Principal) -> bool:
        return principal.is_admin or principal.kind == "service"

    def _require_admin(self, principal: Principal) -> None:
        if not self._admin(principal):
            raise amsg.manage_forbidden(principal.locale)

    def _live_process(self, principal: Principal, ref: str) -> Doc:
        doc = self.store.get_process(principal.tenant_id, ref) or self.store.process_by_key(principal.tenant_id, ref)
        if doc is None or doc.get("deleted"):
            raise amsg.process_not_found(ref, principal.locale)
        return doc

    def lookup(self, principal: Principal, ref: str) -> Doc | None:
        """A live process by id or key (the start_approval action's check at save), or None."""
        try:
            return self._live_process(principal, ref) if ref else None
        except NotFound:
            return None

    def _visible(self, principal: Principal, instance: Mapping[str, Any] | None) -> bool:
        if instance is None or instance.get("tenant_id") != principal.tenant_id:
            return False
        return self._admin(principal) or principal.user_id in (instance.get("participants") or [])

    def _instance(self, principal: Principal, instance_id: str) -> Doc:
        instance = self.store.instance(instance_id)
        if not self._visible(principal, instance):
            raise amsg.approval_not_found(instance_id, principal.locale)
        assert instance is not None
        return instance

    def _task(self, principal: Principal, task_id: str) -> tuple[Doc, Doc]:
        task = self.store.task(task_id)
        if task is None or task.get("tenant_id") != principal.tenant_id or task.get("kind") != "approve":
            raise amsg.task_not_found(task_id, principal.locale)
        instance = self.store.instance(str(task["instance_id"]))
        if not self._visible(principal, instance):
            raise amsg.task_not_found(task_id, principal.locale)
        if task.get("user_id") != principal.user_id and not self._admin(principal):
            raise amsg.not_assignee(principal.locale)
        assert instance is not None
        return task, instance

    # ------------------------------------------------------------ processes

    def create_process(self, principal: Principal, spec: Any, *, template_key: str = "") -> Doc:
        """Check and store a new process (version 1); a guard is published to the record service."""
        self._require_admin(principal)
        parsed = parse_process(spec, FormsFor(self.approvals.forms, principal), locale=principal.locale)
        if parsed["key"] and self.store.process_by_key(principal.tenant_id, parsed["key"]) is not None:
            raise amsg.key_taken(parsed["key"], principal.locale)
        now = self.clock()
        doc = new_definition(principal, parsed, now, template_key)
        try:
            created = self.store.insert_process(doc)
        except Conflict:
            if template_key and self.store.template_process(principal.tenant_id, template_key) is not None:
                raise
            raise amsg.key_taken(parsed["key"], principal.locale) from None
        if parsed["guard"]:
            self.approvals.sync_guards(principal.tenant_id, str(created["id"]))
        return public_process(self.store.get_process(principal.tenant_id, str(created["id"])) or created)

    def update_process(self, principal: Principal, process_id: str, patch: Any, expected_version: int) -> Doc:
        """Change a process (optimistic on expected_version): new instances take the new version, running ones
        keep theirs."""
        self._require_admin(principal)
        if not expected_version or expected_version < 1:
            raise amsg.invalid("expected_version", "required", principal.locale)
        current = self._live_process(principal, process_id)
        if int(current.get("version") or 0) != expected_version:
            raise amsg.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        parsed = parse_process(
            patch,
            FormsFor(self.approvals.forms, principal),
            locale=principal.locale,
            partial_of=user_definition(current),
        )
        if parsed["key"] and parsed["key"] != current.get("key"):
            other = self.store.process_by_key(principal.tenant_id, parsed["key"])
            if other is not None and other["id"] != current["id"]:
                raise amsg.key_taken(parsed["key"], principal.locale)
        stored = {k: v for k, v in current.items() if k not in ("id", "guards_synced", "guards_error")}
        stored.update(parsed, updated_at=self.clock(), updated_by=principal.user_id)
        try:
            moved = self.store.replace_process(principal.tenant_id, str(current["id"]), expected_version, stored)
        except Conflict:
            raise amsg.key_taken(parsed["key"], principal.locale) from None
        if not moved:
            latest = self._live_process(principal, process_id)
            raise amsg.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
        if parsed["guard"] or current.get("guard"):
            self.approvals.sync_guards(principal.tenant_id, str(current["id"]))
        return public_process(self._live_process(principal, str(current["id"])))

    def get_process(self, principal: Principal, ref: str) -> Doc:
        """One process by id or key."""
        return public_process(self._live_process(principal, ref))

    def list_processes(self, principal: Principal, form_ref: str = "") -> list[Doc]:
        """The processes of a form (id or key), or of the tenant; non-admins see the enabled ones."""
        form_id = ""
        if form_ref:
            form = self.approvals.forms.published(principal, form_ref)
            if form is None:
                return []
            form_id = form.id
        found = self.store.list_processes(principal.tenant_id, form_id)
        admin = self._admin(principal)
        return [public_process(d) for d in found if admin or d.get("enabled")]

    def delete_process(self, principal: Principal, process_id: str, expected_version: int) -> None:
        """Delete a process (kept for the instances that name its versions; they run on); its guard goes."""
        self._require_admin(principal)
        if not expected_version or expected_version < 1:
            raise amsg.invalid("expected_version", "required", principal.locale)
        current = self._live_process(principal, process_id)
        if int(current.get("version") or 0) != expected_version:
            raise amsg.version_conflict(int(current.get("version") or 0), expected_version, principal.locale)
        stored = {k: v for k, v in current.items() if k != "id"}
        stored.update(deleted=True, enabled=False, updated_at=self.clock(), updated_by=principal.user_id)
        stored.pop("template_key", None)
        if not self.store.replace_process(principal.tenant_id, str(current["id"]), expected_version, stored):
            latest = self._live_process(principal, process_id)
            raise amsg.version_conflict(int(latest.get("version") or 0), expected_version, principal.locale)
        if current.get("guard"):
            self.approvals.sync_guards(principal.tenant_id, str(current["id"]))

    def install_template(
        self,
        principal: Principal,
        items: list[Mapping[str, Any]],
        bindings: Mapping[str, Mapping[str, str]],
        bind: Callable[[Any, Mapping[str, Mapping[str, str]], list[str]], Any],
    ) -> tuple[int, int]:
        """A template's processes, each once (by its key); one whose organisation is missing is installed disabled.
        Returns (created, already there)."""
        created = existing = 0
        for item in items:
            key = str(item["key"])
            if self.store.template_process(principal.tenant_id, key) is not None:
                existing += 1
                continue
            missing: list[str] = []
            own = {k: v for k, v in item.items() if k not in ("key", "process_key")}
            spec = bind(copy.deepcopy(own), bindings, missing)
            if item.get("process_key"):
                spec["key"] = item["process_key"]
            if missing:
                spec["enabled"] = False
                spec["description"] = "missing organisation: " + ", ".join(sorted(set(missing)))
            try:
                self.create_process(principal, spec, template_key=key)
            except Conflict:
                existing += 1
                continue
            except ValidationFailed:
                if missing:
                    continue
                raise
            created += 1
        return created, existing

    # ------------------------------------------------------------ instances

    def submit(self, principal: Principal, record_id: str, process_ref: str = "", comment: str = "") -> Doc:
        """Submit a record the caller sees for approval; it is read-only for users until the outcome."""
        locale = principal.locale
        if len(comment) > MAX_COMMENT:
            raise amsg.invalid("comment", "too_long", locale, max=MAX_COMMENT)
        if not record_id or self.approvals.records.get(principal, record_id) is None:
            raise NotFound(amsg.message("record_not_found", locale, ref=record_id), record_id=record_id)
        service = Principal.service(principal.tenant_id, "workflow", on_behalf=f"approval_submit:{principal.user_id}")
        record = self.approvals.records.get(service, record_id)
        if record is None:
            raise NotFound(amsg.message("record_not_found", locale, ref=record_id), record_id=record_id)
        if process_ref:
            process = self._live_process(principal, process_ref)
        else:
            choices = [
                p
                for p in self.store.list_processes(principal.tenant_id, str(record.get("form_id")))
                if p.get("enabled") and not p.get("guard")
            ]
            if len(choices) != 1:
                raise amsg.invalid("process", "process_required", locale, count=len(choices))
            process = choices[0]
        name = str((process.get("name") or {}).get(locale) or (process.get("name") or {}).get("zh-CN") or "")
        if not process.get("enabled"):
            raise amsg.invalid("process", "process_disabled", locale, name=name)
        if process.get("guard"):
            raise amsg.invalid("process", "guard_process", locale, name=name)
        if str(process.get("form_id")) != str(record.get("form_id")):
            raise amsg.invalid("process", "process_form", locale, name=name)
        instance = self.approvals.start(
            tenant_id=principal.tenant_id,
            process=process,
            record=record,
            submitted_by=principal.user_id,
            comment=comment,
            locale=locale,
        )
        return self.view(principal, instance)

    def get(self, principal: Principal, instance_id: str) -> Doc:
        """One instance with its tasks and timeline."""
        return self.view(principal, self._instance(principal, instance_id))

    def approve(self, principal: Principal, task_id: str, comment: str = "") -> Doc:
        """Approve a task."""
        task, _instance = self._task(principal, task_id)
        self._comment_ok(comment, principal.locale)
        return self.view(principal, self.approvals.act(task, "approve", principal.user_id, comment=comment,
                                                       locale=principal.locale))  # fmt: skip

    def reject(self, principal: Principal, task_id: str, reason: str, comment: str = "", to: str = "") -> Doc:
        """Reject a task: back to the submitter (the instance is rejected) or to the previous step."""
        locale = principal.locale
        task, instance = self._task(principal, task_id)
        self._comment_ok(comment, locale)
        if not reason or not reason.strip():
            raise amsg.invalid("reason", "required", locale)
        if len(reason) > MAX_REASON:
            raise amsg.invalid("reason", "too_long", locale, max=MAX_REASON)
        to = to or "submitter"
        if to not in ("submitter", "previous"):
            raise amsg.invalid("to", "unknown_choice", locale, value=to, choices="submitter, previous")
        if to == "previous" and len(instance.get("trail") or []) < 2 and self._current(task, instance):
            raise amsg.invalid("to", "no_previous_node", locale)
        done = self.approvals.act(task, "reject", principal.user_id, comment=comment, reason=reason.strip(), to=to,
                                  locale=locale)  # fmt: skip
        return self.view(principal, done)

    def transfer(self, principal: Principal, task_id: str, user_id: str, comment: str = "") -> Doc:
        """Hand a task to another active user."""
        task, instance = self._task(principal, task_id)
        self._handoff_ok(task, instance, user_id, comment, principal.locale)
        return self.view(principal, self.approvals.act(task, "transfer", principal.user_id, comment=comment,
                                                       user_id=user_id, locale=principal.locale))  # fmt: skip

    def add_approver(
        self, principal: Principal, task_id: str, user_id: str, position: str = "", comment: str = ""
    ) -> Doc:
        """Add an approver before me (they approve first, then it comes back) or after me (my approval counts,
        theirs is needed too)."""
        position = position or "after"
        if position not in ("before", "after"):
            raise amsg.invalid("position", "unknown_choice", principal.locale, value=position, choices="before, after")
        task, instance = self._task(principal, task_id)
        self._handoff_ok(task, instance, user_id, comment, principal.locale)
        action = "add_before" if position == "before" else "add_after"
        return self.view(principal, self.approvals.act(task, action, principal.user_id, comment=comment,
                                                       user_id=user_id, locale=principal.locale))  # fmt: skip

    def withdraw(self, principal: Principal, instance_id: str, reason: str = "") -> Doc:
        """The submitter (or an admin) takes a pending instance back."""
        instance = self._instance(principal, instance_id)
        if instance.get("submitted_by") != principal.user_id and not self._admin(principal):
            raise amsg.withdraw_forbidden(principal.locale)
        if len(reason) > MAX_REASON:
            raise amsg.invalid("reason", "too_long", principal.locale, max=MAX_REASON)
        return self.view(principal, self.approvals.withdraw(instance, principal.user_id, reason.strip(),
                                                            locale=principal.locale))  # fmt: skip

    def comment(self, principal: Principal, instance_id: str, text: str) -> Doc:
        """A comment on an instance, by anyone who sees it."""
        instance = self._instance(principal, instance_id)
        if not text or not text.strip():
            raise amsg.invalid("comment", "required", principal.locale)
        self._comment_ok(text, principal.locale)
        if len(instance.get("events") or []) >= MAX_EVENTS:
            raise amsg.invalid("comment", "too_many_comments", principal.locale, max=MAX_EVENTS)
        return self.view(principal, self.approvals.comment(instance, principal.user_id, text.strip()))

    @staticmethod
    def _comment_ok(comment: str, locale: str) -> None:
        if len(comment) > MAX_COMMENT:
            raise amsg.invalid("comment", "too_long", locale, max=MAX_COMMENT)

    @staticmethod
    def _current(task: Mapping[str, Any], instance: Mapping[str, Any]) -> bool:
        return (
            instance.get("state") == "pending"
            and task.get("state") == "pending"
            and int(task.get("visit") or 0) == int(instance.get("visit") or 0)
        )

    def _handoff_ok(
        self, task: Mapping[str, Any], instance: Mapping[str, Any], user_id: str, comment: str, locale: str
    ) -> None:
        self._comment_ok(comment, locale)
        if not self._current(task, instance):
            return  # the action itself answers (409, or an idempotent repeat)
        tenant_id = str(instance["tenant_id"])
        user = (
            self.approvals.directory.user(tenant_id, user_id)
            if user_id and not user_id.startswith("service:")
            else None
        )
        if user is None or not user.active:
            raise amsg.invalid("user_id", "unknown_user", locale, id=user_id)
        open_users = {
            str(t.get("user_id"))
            for t in self.store.tasks_of(str(instance["_id"]), int(instance.get("visit") or 0))
            if t.get("kind") == "approve" and t.get("state") in flow.OPEN
        }
        if user_id in open_users:
            raise amsg.invalid("user_id", "already_assignee", locale, id=user_id)
        if flow.chain_length(str(task["_id"])) >= flow.MAX_CHAIN:
            raise amsg.invalid("user_id", "too_many_handoffs", locale, max=flow.MAX_CHAIN)

    # ------------------------------------------------------------ the inbox

    def inbox(self, principal: Principal, box: str = "", cursor: str = "", size: int = 0) -> tuple[list[Doc], str]:
        """A page of the caller's inbox (todo, done, cc, submitted), newest first, and the next cursor."""
        locale = principal.locale
        box = box or "todo"
        if box not in BOXES:
            raise amsg.invalid("box", "unknown_choice", locale, value=box, choices=", ".join(BOXES))
        if size == 0:
            size = DEFAULT_PAGE
        if not 1 <= size <= MAX_PAGE:
            raise amsg.invalid("page_size", "invalid_page_size", locale, max=MAX_PAGE)
        before = decode_cursor(cursor, locale)
        if box == "submitted":
            rows = self.store.list_submitted(principal.tenant_id, principal.user_id, before=before, size=size + 1)
            more, rows = len(rows) > size, rows[:size]
            items = [{"at": iso(r.get("submitted_at")), "approval": self._summary(r, locale)} for r in rows]
            last = rows[-1] if rows else {}
            return items, encode_cursor(last.get("submitted_at"), str(last.get("_id"))) if more and rows else ""
        rows = self.store.list_box(principal.tenant_id, principal.user_id, BOXES[box], before=before, size=size + 1)
        more, rows = len(rows) > size, rows[:size]
        instances = self.store.instances(principal.tenant_id, [str(r["instance_id"]) for r in rows])
        items = []
        for row in rows:
            instance = instances.get(str(row["instance_id"]))
            if instance is None:
                continue
            items.append(
                {
                    **self._task_out(row, instance, locale),
                    "at": iso(row.get("box_at")),
                    "approval": self._summary(instance, locale),
                }
            )
        last = rows[-1] if rows else {}
        return items, encode_cursor(last.get("box_at"), str(last.get("_id"))) if more and rows else ""

    # ------------------------------------------------------------ views

    def _node_name(self, instance: Mapping[str, Any], node_id: str, locale: str) -> str:
        try:
            node = node_map(self.approvals.process_of(instance)).get(node_id) or {}
        except NotFound:
            return node_id
        name = node.get("name") or {}
        return str(name.get(locale) or name.get("zh-CN") or node_id)

    def _summary(self, instance: Mapping[str, Any], locale: str) -> Doc:
        name = instance.get("process_name") or {}
        return {
            "id": instance["_id"],
            "process_id": instance.get("process_id"),
            "process_version": instance.get("process_version"),
            "process_key": instance.get("process_key") or "",
            "process_name": name.get(locale) or name.get("zh-CN") or "",
            "form_id": instance.get("form_id"),
            "form_key": instance.get("form_key"),
            "record_id": instance.get("record_id"),
            "record_title": instance.get("record_title"),
            "kind": instance.get("kind"),
            "state": instance.get("state"),
            "submitted_by": instance.get("submitted_by"),
            "submitted_at": iso(instance.get("submitted_at")),
            "finished_at": iso(instance.get("finished_at")),
            "node_id": instance.get("node_id") if instance.get("state") == "pending" else "",
            "node_name": self._node_name(instance, str(instance.get("node_id")), locale)
            if instance.get("state") == "pending" and instance.get("node_id")
            else "",
        }

    def _task_out(self, task: Mapping[str, Any], instance: Mapping[str, Any], locale: str) -> Doc:
        out = {
            "task_id": task["_id"],
            "kind": task.get("kind"),
            "node_id": task.get("node_id"),
            "node_name": self._node_name(instance, str(task.get("node_id")), locale),
            "visit": task.get("visit"),
            "user_id": task.get("user_id"),
            "state": task.get("state"),
            "action": task.get("action") or "",
            "created_at": iso(task.get("created_at")),
        }
        for key in ("acted_by", "acted_at", "comment", "reason", "reject_to", "to_user", "origin"):
            if task.get(key):
                out[key] = iso(task[key])
        return out

    def view(self, principal: Principal, instance: Mapping[str, Any]) -> Doc:
        """The API form of an instance: its tasks, the caller's open ones, the timeline."""
        locale = principal.locale
        tasks = self.store.tasks_of(str(instance["_id"]))
        summary = self._summary(instance, locale)
        out: Doc = {
            **summary,
            "change": iso(instance.get("change")),
            "decided_by": instance.get("decided_by") or "",
            "reason": instance.get("reason") or "",
            "updated_at": iso(instance.get("updated_at")),
            "current_step": None,
            "tasks": [self._task_out(t, instance, locale) for t in tasks if t.get("kind") == "approve"],
            "cc": [t.get("user_id") for t in tasks if t.get("kind") == "cc"],
            "my_tasks": [
                t["_id"]
                for t in tasks
                if t.get("user_id") == principal.user_id and t.get("state") == "pending" and t.get("kind") == "approve"
            ],
        }
        if instance.get("state") == "pending" and instance.get("node_id"):
            node = node_map(self.approvals.process_of(instance)).get(str(instance["node_id"])) or {}
            out["current_step"] = {
                "node_id": instance["node_id"],
                "name": self._node_name(instance, str(instance["node_id"]), locale),
                "mode": node.get("mode"),
                "users": [
                    t.get("user_id")
                    for t in tasks
                    if int(t.get("visit") or 0) == int(instance.get("visit") or 0)
                    and t.get("kind") == "approve"
                    and t.get("state") in flow.OPEN
                ],
            }
        timeline: list[Doc] = []
        for event in instance.get("events") or []:
            entry = {k: v for k, v in event.items() if k != "key"}
            timeline.append(entry)
        for task in tasks:
            kind = ACTION_EVENTS.get(str(task.get("action") or ""))
            if task.get("state") != "done" or kind is None:
                continue
            entry = {
                "type": kind,
                "at": task.get("acted_at"),
                "by": task.get("acted_by"),
                "task_id": task["_id"],
                "node_id": task.get("node_id"),
                "user_id": task.get("user_id"),
                "comment": task.get("comment") or "",
            }
            if task.get("action") == "reject":
                entry.update(reason=task.get("reason") or "", to=task.get("reject_to") or "submitter")
            if task.get("to_user"):
                entry["to_user"] = task["to_user"]
            if task.get("action") in ("add_before", "add_after"):
                entry["position"] = "before" if task["action"] == "add_before" else "after"
            timeline.append(entry)
        order = {"submitted": 0}
        timeline.sort(key=lambda e: (e.get("at") or datetime.min.replace(tzinfo=UTC), order.get(str(e["type"]), 1)))
        out["timeline"] = [iso(e) for e in timeline]
        return out
