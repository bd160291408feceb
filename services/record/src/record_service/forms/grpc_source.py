"""The record service's one client of crm.form.v1.FormService: GrpcFormSource, and CachedFormSource in front.

GrpcFormSource asks GetPublishedForm (one form) and ListForms (which forms of
a tenant are published) over one channel; a form service that does not answer
is FormServiceUnavailable (UNAVAILABLE over gRPC, 503 with Retry-After at the
gateway). It asks as the record service itself, for the caller of the RPC
being served (outside a call: for nobody), so the form service applies the
same tenant.

CachedFormSource is the FormSource and the FormCatalog (domain/forms.py) the
use cases get: published versions are immutable, so numbered versions are
cached for good; "latest" entries are dropped on a form.published event (see
invalidation.py) and after a TTL as a safety net when events are late; a
tenant's listing is cached for a shorter TTL (the 360° view and merge need it
on every call; a newly published relation shows up after that TTL at the latest).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.client import channel, problem_from_error
from crm_runtime.errors import NotFound, Unavailable
from crm_runtime.principal import Principal, optional_principal
from record_service.domain.errors import form_not_found
from record_service.domain.forms import FormSchema, FormSource


class ListingSource(FormSource, Protocol):
    """A FormSource that can also name a tenant's published forms (GrpcFormSource)."""

    def published_form_ids(self, principal: Principal) -> list[str]:
        """Ids of the forms of the caller's tenant that have a published version."""
        ...


class FormServiceUnavailable(Unavailable):
    """The form service did not answer: UNAVAILABLE over gRPC, 503 with Retry-After at the gateway."""

    code = "form_service_unavailable"


class GrpcFormSource:
    """FormSource (GetPublishedForm) and form listing (ListForms) over one channel to the form service."""

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

    def published_form_ids(self, principal: Principal) -> list[str]:
        """See ListingSource: ListForms as the record service, on behalf of the caller."""
        try:
            resp = self._stub.ListForms(
                form_pb2.ListFormsRequest(),
                metadata=Principal.service(principal.tenant_id, "record", on_behalf=principal.user_id).to_metadata(),
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            problem = problem_from_error(exc)
            raise FormServiceUnavailable(str(problem.get("detail") or problem.get("title") or exc)) from None
        ids = []
        for text in resp.forms_json:
            doc = json.loads(text)
            if int(doc.get("published_version") or 0) > 0 and doc.get("id"):
                ids.append(str(doc["id"]))
        return ids

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


class CachedFormSource:
    """An in-process cache in front of a FormSource; a FormCatalog too when the source can list (ListingSource)."""

    def __init__(
        self,
        inner: FormSource,
        *,
        ttl: float = 300.0,
        listing_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl = ttl
        self._listing_ttl = listing_ttl
        self._clock = clock
        self._latest: dict[tuple[str, str], tuple[float, FormSchema]] = {}
        self._versions: dict[tuple[str, str, int], FormSchema] = {}
        self._listings: dict[str, tuple[float, list[str]]] = {}
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

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """The FormCatalog: the latest version of each published form; one unpublished since the listing is left out."""
        list_ids = getattr(self._inner, "published_form_ids", None)
        if list_ids is None:
            raise TypeError(f"{type(self._inner).__name__} cannot list a tenant's forms")
        hit = self._listings.get(principal.tenant_id)
        if hit is not None and self._clock() - hit[0] < self._listing_ttl:
            ids = hit[1]
        else:
            ids = list(list_ids(principal))
            with self._lock:
                self._listings[principal.tenant_id] = (self._clock(), ids)
        out = []
        for form_id in ids:
            try:
                out.append(self.get_published(principal.tenant_id, form_id))
            except NotFound:
                continue
        return out

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
        with self._lock:
            self._listings.pop(tenant_id, None)  # a first publish adds a form to the listing
        if form_id and data.get("fields") is not None and data.get("version"):
            form = FormSchema.from_json(tenant_id, data)
            with self._lock:
                for ref in {form_id, key} - {""}:
                    self._versions[(tenant_id, ref, form.version)] = form


__all__ = ["CachedFormSource", "FormServiceUnavailable", "GrpcFormSource", "ListingSource", "NotFound"]
