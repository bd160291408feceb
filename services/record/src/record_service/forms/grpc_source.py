"""GrpcFormSource: FormSource over crm.form.v1.FormService, and CachedFormSource in front of any source.

The client passes the caller's principal (from the RPC being served) so the
form service applies the same tenant; outside a call it uses a system admin of
the tenant. Published versions are immutable, so numbered versions are cached
for good; "latest" entries are dropped on a form.published event (see
invalidation.py) and after a TTL as a safety net when events are late.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.client import channel, problem_from_error
from crm_runtime.errors import NotFound, Unavailable
from crm_runtime.principal import Principal, optional_principal
from record_service.domain.errors import form_not_found
from record_service.domain.forms import FormSchema, FormSource


class FormServiceUnavailable(Unavailable):
    """The form service did not answer: UNAVAILABLE over gRPC, 503 with Retry-After at the gateway."""

    code = "form_service_unavailable"


class GrpcFormSource:
    """FormSource calling GetPublishedForm on the form service."""

    def __init__(self, target: str, *, timeout: float = 5.0) -> None:
        self._channel = channel(target)
        self._stub = form_pb2_grpc.FormServiceStub(self._channel)
        self._timeout = timeout

    def get_published(self, tenant_id: str, form_id_or_key: str, version: int = 0) -> FormSchema:
        """See FormSource."""
        # the form service is asked as the record service itself, for the caller (if any)
        caller = optional_principal()
        principal = Principal.service(
            tenant_id,
            "record",
            on_behalf=caller.user_id if caller is not None and caller.tenant_id == tenant_id else "",
            locale=caller.locale if caller is not None else "zh-CN",
        )
        try:
            resp = self._stub.GetPublishedForm(
                form_pb2.GetPublishedFormRequest(form_id=form_id_or_key, version=version),
                metadata=principal.to_metadata(),
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise form_not_found(form_id_or_key, principal.locale) from None
            problem = problem_from_error(exc)
            raise FormServiceUnavailable(str(problem.get("detail") or problem.get("title") or code)) from None
        return FormSchema.from_json(tenant_id, json.loads(resp.form_json))

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class CachedFormSource:
    """An in-process cache in front of a FormSource."""

    def __init__(self, inner: FormSource, *, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._inner = inner
        self._ttl = ttl
        self._clock = clock
        self._latest: dict[tuple[str, str], tuple[float, FormSchema]] = {}
        self._versions: dict[tuple[str, str, int], FormSchema] = {}
        self._lock = threading.Lock()

    def get_published(self, tenant_id: str, form_id_or_key: str, version: int = 0) -> FormSchema:
        """Cached; a miss asks the inner source (NotFound is not cached)."""
        if version:
            hit = self._versions.get((tenant_id, form_id_or_key, version))
            if hit is not None:
                return hit
        else:
            entry = self._latest.get((tenant_id, form_id_or_key))
            if entry is not None and self._clock() - entry[0] < self._ttl:
                return entry[1]
        form = self._inner.get_published(tenant_id, form_id_or_key, version)
        with self._lock:
            for ref in {form.id, form.key, form_id_or_key} - {""}:
                self._versions[(tenant_id, ref, form.version)] = form
                if not version:
                    self._latest[(tenant_id, ref)] = (self._clock(), form)
        return form

    def invalidate(self, tenant_id: str, *refs: str) -> None:
        """Forget the latest version of a form (by any of its refs)."""
        with self._lock:
            for ref in refs:
                self._latest.pop((tenant_id, ref), None)

    def on_published(self, envelope: dict[str, Any]) -> None:
        """Handler of form.published: forget the latest version, remember the new one."""
        data = envelope.get("data") or {}
        tenant_id = str(envelope.get("tenant_id") or "")
        form_id = str(data.get("form_id") or "")
        key = str(data.get("key") or "")
        self.invalidate(tenant_id, form_id, key)
        if form_id and data.get("fields") is not None and data.get("version"):
            form = FormSchema.from_json(tenant_id, data)
            with self._lock:
                for ref in {form_id, key} - {""}:
                    self._versions[(tenant_id, ref, form.version)] = form


__all__ = ["CachedFormSource", "FormServiceUnavailable", "GrpcFormSource", "NotFound"]
