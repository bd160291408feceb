"""Handover (离职交接): a leaving user's records go to a colleague, or back to a public pool, in one job.

`start` records a job {from_user, to_user | pool_id, state, progress}; the
worker's timer claims it (a lease, like every due item) and works through
every published form of the tenant in pages: each record the user owns gets
the new owner (or goes back to the pool, for the pool's form), and each record
whose user field (e.g. 销售任务.负责人) names the user gets the colleague there. The
writes are the workflow's, on behalf of the job (`via: handover:<job id>` on
the events) and under the name "离职交接 <from> → <to>", so every record's
history says who handed it over to whom. Progress (records done, of the forms
done so far) is readable while it runs; a job cut short by a worker that died
resumes where it stopped (the records already moved no longer match).
Pending approval tasks are handed over by the approvals engine when it is
wired in (`transfer_tasks`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from crm_runtime.principal import Principal
from workflow_service.domain import errors as werr
from workflow_service.domain.actions import VersionMoved
from workflow_service.domain.common import iso
from workflow_service.domain.ports import DirectoryPort, Doc, RecordPort, WorkflowStore

PAGE = 100
USER_FIELD_TYPES = frozenset({"user"})


class FormLister(Protocol):
    """The published forms of a tenant (FormService.ListForms)."""

    def list_published(self, principal: Principal) -> list[Mapping[str, Any]]:
        """Published forms: {id, key, fields}."""
        ...


class HandoverStore(WorkflowStore, Protocol):
    """Jobs in the workflow's store."""

    def save_job(self, job: Doc) -> None:
        """Insert or replace a job."""
        ...

    def job(self, tenant_id: str, job_id: str) -> Doc | None:
        """One job of the tenant."""
        ...


class Handover:
    """StartHandover / GetHandover, and the job's work (`run`)."""

    def __init__(
        self,
        store: HandoverStore,
        records: RecordPort,
        forms: FormLister,
        directory: DirectoryPort,
        *,
        clock: Callable[[], datetime] | None = None,
        transfer_tasks: Callable[[str, str, str], int] | None = None,
    ) -> None:
        self.store = store
        self.records = records
        self.forms = forms
        self.directory = directory
        self.clock = clock or (lambda: datetime.now(UTC))
        self.transfer_tasks = transfer_tasks

    def start(self, principal: Principal, from_user: str, to_user: str, pool_id: str) -> Doc:
        """A new job (tenant admins); exactly one of `to_user` / `pool_id`; the target must be an active user."""
        if not (principal.is_admin or principal.kind == "service"):
            raise werr.manage_forbidden(principal.locale)
        if not from_user or self.directory.user(principal.tenant_id, from_user) is None:
            raise werr.invalid("user_id", "unknown_user", principal.locale, ref=from_user)
        if bool(to_user) == bool(pool_id):
            raise werr.invalid("to_user_id", "handover_target", principal.locale)
        if to_user:
            target = self.directory.user(principal.tenant_id, to_user)
            if target is None or not target.active or to_user == from_user:
                raise werr.invalid("to_user_id", "unknown_user", principal.locale, ref=to_user)
        now = self.clock()
        job = {
            "_id": uuid.uuid4().hex,
            "tenant_id": principal.tenant_id,
            "from_user": from_user,
            "to_user": to_user,
            "pool_id": pool_id,
            "state": "pending",
            "progress": {"records": 0, "fields": 0, "approval_tasks": 0, "forms_done": 0, "forms": 0},
            "errors": [],
            "created_at": now,
            "created_by": principal.user_id,
        }
        self.store.save_job(job)
        self.store.arm(
            f"handover:{job['_id']}",
            kind="handover",
            tenant_id=principal.tenant_id,
            automation_id="",
            record_id="",
            due_at=now,
            payload={"job_id": job["_id"]},
        )
        return public(job)

    def get(self, principal: Principal, job_id: str) -> Doc:
        """A job and its progress."""
        job = self.store.job(principal.tenant_id, job_id) if job_id else None
        if job is None or not (principal.is_admin or principal.kind == "service"):
            raise werr.job_not_found(job_id, principal.locale)
        return public(job)

    # ------------------------------------------------------------ the work

    def _actor(self, tenant_id: str, job: Mapping[str, Any]) -> Principal:
        names = {}
        for key in ("from_user", "to_user"):
            user = self.directory.user(tenant_id, str(job.get(key) or "")) if job.get(key) else None
            names[key] = user.name if user and user.name else str(job.get(key) or "公海")
        robot = Principal.service(tenant_id, "workflow", on_behalf=f"handover:{job['_id']}")
        return dataclasses.replace(robot, user_name=f"离职交接 {names['from_user']} → {names['to_user']}")

    def run(self, tenant_id: str, job_id: str, *, budget: timedelta = timedelta(minutes=1)) -> bool:
        """Work on a job for up to `budget`; True when it is finished (done or failed)."""
        job = self.store.job(tenant_id, job_id)
        if job is None or job.get("state") in ("done", "failed"):
            return True
        started = self.clock()
        actor = self._actor(tenant_id, job)
        forms = [f for f in self.forms.list_published(actor) if f.get("id")]
        job["state"] = "running"
        job["progress"]["forms"] = len(forms)
        done_forms = set(job.get("forms_done") or [])
        for form in forms:
            if form["id"] in done_forms:
                continue
            finished = self._form(actor, job, form, started + budget)
            self.store.save_job(job)
            if not finished:
                return False
            done_forms.add(form["id"])
            job["forms_done"] = sorted(done_forms)
            job["progress"]["forms_done"] = len(done_forms)
        if self.transfer_tasks is not None and job.get("to_user"):
            job["progress"]["approval_tasks"] = self.transfer_tasks(tenant_id, job["from_user"], job["to_user"])
        job["state"] = "done"
        job["finished_at"] = self.clock()
        self.store.save_job(job)
        return True

    def _form(self, actor: Principal, job: Doc, form: Mapping[str, Any], deadline: datetime) -> bool:
        """Hand over one form's records (owner, then user fields); False when the budget ran out first."""
        from_user, to_user, pool_id = job["from_user"], job.get("to_user") or "", job.get("pool_id") or ""
        owned: dict[str, Any] = {"field": "owner_id", "op": "eq", "value": from_user}
        cursor = ""
        while True:
            # pages in creation order: a moved record leaves the filter, the cursor goes on after the last one
            page, cursor = self.records.page(actor, str(form["id"]), owned, cursor, PAGE)
            for record in page:
                self._move(actor, job, record, to_user, pool_id)
            if not cursor:
                break
            if self.clock() > deadline:
                return False
        if not to_user:
            return True
        for field in form.get("fields") or []:
            if field.get("type") not in USER_FIELD_TYPES or not field.get("filterable"):
                continue
            key = str(field["key"])
            named = {"field": key, "op": "eq", "value": from_user}
            cursor = ""
            while True:
                page, cursor = self.records.page(actor, str(form["id"]), named, cursor, PAGE)
                for record in page:
                    self._set_field(actor, job, record, key, to_user)
                if not cursor:
                    break
                if self.clock() > deadline:
                    return False
        return True

    def _move(self, actor: Principal, job: Doc, record: Mapping[str, Any], to_user: str, pool_id: str) -> None:
        record_id = str(record.get("id"))
        try:
            if pool_id:
                self.records.move_to_pool(actor, record_id, pool_id, actor.user_name, {})
            else:
                self.records.update(actor, record_id, {}, int(record.get("version") or 0), owner_id=to_user)
            job["progress"]["records"] += 1
        except VersionMoved:
            return  # changed meanwhile: the next page reads it again
        except Exception as exc:  # noqa: BLE001 - one record that cannot move does not stop the job
            self._error(job, record_id, exc)

    def _set_field(self, actor: Principal, job: Doc, record: Mapping[str, Any], key: str, to_user: str) -> None:
        record_id = str(record.get("id"))
        try:
            self.records.update(actor, record_id, {key: to_user}, int(record.get("version") or 0))
            job["progress"]["fields"] += 1
        except VersionMoved:
            return
        except Exception as exc:  # noqa: BLE001
            self._error(job, record_id, exc)

    @staticmethod
    def _error(job: Doc, record_id: str, exc: BaseException) -> None:
        errors = job.setdefault("errors", [])
        if len(errors) < 100:
            errors.append({"record_id": record_id, "error": f"{type(exc).__name__}: {exc}"[:300]})
        job["state"] = "running"


def public(job: Mapping[str, Any]) -> Doc:
    """The API form of a job."""
    out = {k: iso(v) for k, v in job.items() if k not in ("_id", "forms_done")}
    out["id"] = job.get("_id")
    return out
