"""The workflow's clients of the record and form services (domain.ports.RecordPort, FormPort) over gRPC.

Every call is made as the workflow service itself (`Principal.service`,
signed like any principal) for one tenant, with a deadline. Errors come back
as the record service put them (a JSON problem in the status details) and are
raised as the same domain errors (`ValidationFailed` with its field errors,
`NotFound`, `Conflict`, `Unavailable`), so a run log shows the record
service's own message; a stale version is `VersionMoved`, which the actions
answer by reading the record again.

In the worker these run on real threads (eventlet's tpool): grpcio does not
support eventlet's green threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm.record.v1 import record_pb2, record_pb2_grpc
from crm_runtime.client import channel, problem_from_error
from crm_runtime.errors import (
    Conflict,
    DeadlineExceeded,
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from crm_runtime.principal import Principal
from workflow_service.domain.actions import VersionMoved
from workflow_service.domain.definitions import FormInfo
from workflow_service.domain.ports import Doc

TIMEOUT = 10.0
FORM_TTL = 30.0


def domain_error(exc: grpc.RpcError) -> DomainError:
    """The domain error a service's status stands for, with its problem's text and field errors."""
    code = exc.code()  # type: ignore[attr-defined]
    problem = problem_from_error(exc)
    detail = str(problem.get("detail") or problem.get("title") or code)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        errors = [
            FieldError(str(e.get("field") or ""), str(e.get("rule") or ""), str(e.get("message") or ""))
            for e in problem.get("errors") or []
            if isinstance(e, Mapping)
        ]
        return ValidationFailed(errors or [FieldError("", "invalid", detail)], detail)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(detail)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Forbidden(detail)
    if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
        if problem.get("current_version") is not None or "version" in str(problem.get("code") or ""):
            return VersionConflict(detail)
        return Conflict(detail)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(detail)
    return Unavailable(detail)


class VersionConflict(Conflict):
    """The record's version moved (a Conflict the record port turns into VersionMoved)."""


class GrpcRecords:
    """RecordPort over crm.record.v1.RecordService."""

    def __init__(self, target: str, *, timeout: float = TIMEOUT) -> None:
        self._channel = channel(target)
        self._stub = record_pb2_grpc.RecordServiceStub(self._channel)
        self._timeout = timeout

    def _call(self, method: str, request: Any, principal: Principal) -> Any:
        try:
            return getattr(self._stub, method)(request, metadata=principal.to_metadata(), timeout=self._timeout)
        except grpc.RpcError as exc:
            raise domain_error(exc) from None

    def get(self, principal: Principal, record_id: str) -> Doc | None:
        """See RecordPort."""
        try:
            resp = self._call("GetRecord", record_pb2.GetRecordRequest(record_id=record_id), principal)
        except NotFound:
            return None
        return dict(json.loads(resp.record_json))

    def create(self, principal: Principal, form_id: str, data: Mapping[str, Any], owner_id: str, key: str) -> Doc:
        """See RecordPort."""
        request = record_pb2.CreateRecordRequest(
            form_id=form_id,
            data_json=json.dumps(dict(data), ensure_ascii=False),
            owner_id=owner_id,
            idempotency_key=key,
        )
        return dict(json.loads(self._call("CreateRecord", request, principal).record_json))

    def update(
        self, principal: Principal, record_id: str, data: Mapping[str, Any], expected_version: int, owner_id: str = ""
    ) -> Doc:
        """See RecordPort (a stale version raises VersionMoved)."""
        request = record_pb2.UpdateRecordRequest(
            record_id=record_id,
            data_json=json.dumps(dict(data), ensure_ascii=False),
            expected_version=expected_version,
            owner_id=owner_id,
        )
        try:
            return dict(json.loads(self._call("UpdateRecord", request, principal).record_json))
        except VersionConflict:
            raise VersionMoved(record_id) from None

    def move_to_pool(
        self, principal: Principal, record_id: str, pool_id: str, reason: str, data: Mapping[str, Any]
    ) -> Doc:
        """See RecordPort."""
        request = record_pb2.MoveToPoolRequest(
            record_id=record_id, pool_id=pool_id, reason=reason, data_json=json.dumps(dict(data), ensure_ascii=False)
        )
        return dict(json.loads(self._call("MoveToPool", request, principal).record_json))

    def assign_from_pool(self, principal: Principal, record_id: str, owner_id: str) -> Doc:
        """See RecordPort."""
        request = record_pb2.AssignFromPoolRequest(record_id=record_id, owner_id=owner_id)
        return dict(json.loads(self._call("AssignFromPool", request, principal).record_json))

    def count(self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None) -> int:
        """See RecordPort."""
        request = record_pb2.ListRecordsRequest(
            form_id=form_id,
            filter_json=json.dumps(filter_tree, ensure_ascii=False) if filter_tree else "",
            page_size=1,
            count_mode=record_pb2.COUNT_MODE_CAPPED,
        )
        return int(self._call("ListRecords", request, principal).total)

    def page(
        self, principal: Principal, form_id: str, filter_tree: Mapping[str, Any] | None, cursor: str, size: int
    ) -> tuple[list[Doc], str]:
        """See RecordPort."""
        request = record_pb2.ListRecordsRequest(
            form_id=form_id,
            filter_json=json.dumps(filter_tree, ensure_ascii=False) if filter_tree else "",
            page_size=size,
            cursor=cursor,
            count_mode=record_pb2.COUNT_MODE_NONE,
        )
        resp = self._call("ListRecords", request, principal)
        return [dict(json.loads(r)) for r in resp.records_json], str(resp.next_cursor)

    # approvals: the record service's approval gate

    def set_lock(self, principal: Principal, record_id: str, lock: Mapping[str, Any]) -> Doc:
        """SetRecordLock (the same lock again is a no-op; another approval's lock is a Conflict)."""
        request = record_pb2.SetRecordLockRequest(
            record_id=record_id, lock_json=json.dumps(dict(lock), ensure_ascii=False)
        )
        resp = self._call("SetRecordLock", request, principal)
        return dict(json.loads(resp.lock_json)) if resp.lock_json else {}

    def clear_lock(self, principal: Principal, record_id: str, lock_id: str) -> None:
        """ClearRecordLock (only if it is `lock_id`)."""
        self._call(
            "ClearRecordLock", record_pb2.ClearRecordLockRequest(record_id=record_id, lock_id=lock_id), principal
        )

    def set_guards(self, principal: Principal, form_id: str, owner: str, guards: Any) -> int:
        """SetFieldGuards: replace the guards `owner` keeps on a form."""
        request = record_pb2.SetFieldGuardsRequest(
            form_id=form_id, owner=owner, guards_json=json.dumps(list(guards), ensure_ascii=False)
        )
        return int(self._call("SetFieldGuards", request, principal).count)

    def resolve_change(
        self, principal: Principal, record_id: str, change_id: str, approve: bool, reason: str = ""
    ) -> Doc:
        """ResolveHeldChange: apply (approve) or drop a held change."""
        request = record_pb2.ResolveHeldChangeRequest(
            record_id=record_id, change_id=change_id, approve=approve, reason=reason
        )
        resp = self._call("ResolveHeldChange", request, principal)
        return dict(json.loads(resp.record_json)) if resp.record_json else {}

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class GrpcForms:
    """FormPort over crm.form.v1.FormService, with a short per-process cache of the latest versions."""

    def __init__(self, target: str, *, timeout: float = TIMEOUT, ttl: float = FORM_TTL) -> None:
        self._channel = channel(target)
        self._stub = form_pb2_grpc.FormServiceStub(self._channel)
        self._timeout = timeout
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, FormInfo | None]] = {}
        self._lock = threading.Lock()

    def published(self, principal: Principal, form_ref: str) -> FormInfo | None:
        """See FormPort (asked as the workflow service of the caller's tenant)."""
        key = (principal.tenant_id, form_ref)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        service = Principal.service(principal.tenant_id, "workflow", on_behalf=principal.user_id)
        try:
            resp = self._stub.GetPublishedForm(
                form_pb2.GetPublishedFormRequest(form_id=form_ref),
                metadata=service.to_metadata(),
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            error = domain_error(exc)
            if isinstance(error, NotFound | ValidationFailed):
                return None
            raise error from None
        doc = json.loads(resp.form_json)
        info = form_info(doc, int(resp.version))
        with self._lock:
            for ref in {form_ref, info.id, info.key}:
                self._cache[(principal.tenant_id, ref)] = (time.monotonic(), info)
        return info

    def list_published(self, principal: Principal) -> list[dict[str, Any]]:
        """The tenant's published forms ({id, key, fields}), each its latest published version."""
        service = Principal.service(principal.tenant_id, "workflow", on_behalf=principal.user_id)
        try:
            resp = self._stub.ListForms(
                form_pb2.ListFormsRequest(), metadata=service.to_metadata(), timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise domain_error(exc) from None
        out = []
        for text in resp.forms_json:
            doc = json.loads(text)
            if int(doc.get("published_version") or 0) < 1:
                continue
            info = self.published(principal, str(doc.get("id")))
            if info is not None:
                out.append({"id": info.id, "key": info.key, "fields": list(info.fields.values())})
        return out

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def form_info(doc: Mapping[str, Any], version: int = 0) -> FormInfo:
    """A FormInfo from a published form's JSON."""
    name = doc.get("name")
    display = str(name.get("zh-CN") or name.get("en") or "") if isinstance(name, Mapping) else str(name or "")
    fields = {str(f["key"]): dict(f) for f in doc.get("fields") or [] if isinstance(f, Mapping) and f.get("key")}
    return FormInfo(
        id=str(doc.get("form_id") or doc.get("id") or ""),
        key=str(doc.get("key") or ""),
        name=display or str(doc.get("key") or ""),
        fields=fields,
        version=version or int(doc.get("version") or 0),
        names={str(k): str(v) for k, v in name.items()} if isinstance(name, Mapping) else {},
    )
