"""Which published forms a tenant has, and which of their relation fields point at a given form.

The 360° view and merge need "every form of the tenant that relates to form X".
`FormSource` only fetches one form by id or key, so the list comes from a
`FormCatalog`: `SourceCatalog` uses a FormSource that can list
(`list_published(tenant_id)`), `GrpcFormCatalog` asks the form service's
ListForms (with the caller's principal) and fetches each published version
through the (cached) FormSource.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.client import channel, problem_from_error
from crm_runtime.errors import NotFound, Unavailable
from crm_runtime.principal import Principal
from record_service.domain.forms import FormSchema, FormSource


class FormCatalog(Protocol):
    """The latest published version of every published form of a tenant."""

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """Every form of the caller's tenant that has a published version."""
        ...


class ListingFormSource(FormSource, Protocol):
    """A FormSource that can also list a tenant's published forms."""

    def list_published(self, tenant_id: str) -> list[FormSchema]:
        """The latest published version of each form of the tenant."""
        ...


class SourceCatalog:
    """A FormCatalog over a FormSource that offers `list_published`."""

    def __init__(self, source: ListingFormSource) -> None:
        self._source = source

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """See FormCatalog."""
        return list(self._source.list_published(principal.tenant_id))


class FormCatalogUnavailable(Unavailable):
    """The form service did not answer the form listing: UNAVAILABLE, 503 with Retry-After at the gateway."""

    code = "form_service_unavailable"


class GrpcFormCatalog:
    """A FormCatalog over crm.form.v1 ListForms, plus GetPublishedForm through `forms` (cached there).

    The listing is cached per tenant for `ttl` seconds: a 360° view or a merge
    needs it on every call, and a newly published relation shows up after the
    TTL at the latest.
    """

    def __init__(
        self,
        target: str,
        forms: FormSource,
        *,
        timeout: float = 5.0,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._channel = channel(target)
        self._stub = form_pb2_grpc.FormServiceStub(self._channel)
        self._forms = forms
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def _published_ids(self, principal: Principal) -> list[str]:
        hit = self._cache.get(principal.tenant_id)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        try:
            resp = self._stub.ListForms(
                form_pb2.ListFormsRequest(),
                metadata=Principal.service(principal.tenant_id, "record", on_behalf=principal.user_id).to_metadata(),
                timeout=self._timeout,
            )
        except grpc.RpcError as exc:
            problem = problem_from_error(exc)
            raise FormCatalogUnavailable(str(problem.get("detail") or problem.get("title") or exc)) from None
        ids = []
        for text in resp.forms_json:
            doc = json.loads(text)
            if int(doc.get("published_version") or 0) > 0 and doc.get("id"):
                ids.append(str(doc["id"]))
        with self._lock:
            self._cache[principal.tenant_id] = (self._clock(), ids)
        return ids

    def published_forms(self, principal: Principal) -> list[FormSchema]:
        """See FormCatalog; a form unpublished since the listing is left out."""
        out = []
        for form_id in self._published_ids(principal):
            try:
                out.append(self._forms.get_published(principal.tenant_id, form_id))
            except NotFound:
                continue
        return out

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


@dataclass(frozen=True)
class Reference:
    """A relation field of `form` whose target is some other form."""

    form: FormSchema
    field: dict[str, Any]

    @property
    def key(self) -> str:
        """The relation field's key."""
        return str(self.field["key"])

    @property
    def many(self) -> bool:
        """True for a to-many relation (a list of ids)."""
        return bool((self.field.get("relation") or {}).get("many"))


def relation_target(field: dict[str, Any]) -> str:
    """The form id or key a relation field points to ("" for a non-relation)."""
    if field.get("type") != "relation":
        return ""
    return str((field.get("relation") or {}).get("form_id") or "")


def references_to(forms: Iterable[FormSchema], target: FormSchema) -> list[Reference]:
    """Every relation field, in any of `forms`, that points at `target` (named by its id or its key)."""
    refs = {target.id, target.key} - {""}
    out = []
    for form in forms:
        for field in form.of_type("relation"):
            if relation_target(field) in refs:
                out.append(Reference(form, field))
    return out
