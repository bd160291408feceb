"""Form listing for the 360° view and merge: relation discovery, and the form client's ListForms (real gRPC)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.errors import NotFound
from crm_runtime.principal import Principal, default_codec
from record_service.domain.forms import FormSchema, SourceCatalog, StaticFormSource, references_to
from record_service.forms.grpc_source import CachedFormSource, FormServiceUnavailable, GrpcFormSource


def schema(key: str, fields: list[dict[str, Any]], tenant: str = "t1") -> FormSchema:
    return FormSchema(f"id-{key}", key, tenant, 1, "name", tuple(fields))


def relation(key: str, target: str, many: bool = False) -> dict[str, Any]:
    return {"key": key, "type": "relation", "relation": {"form_id": target, "many": many}}


def test_references_to_finds_relations_by_target_id_or_key() -> None:
    customer = schema("customer", [{"key": "name", "type": "text"}])
    contact = schema("contact", [relation("customer", "customer")])
    task = schema("task", [relation("customer", "id-customer"), relation("contacts", "contact", many=True)])
    other = schema("other", [{"key": "customer", "type": "text"}, relation("x", "product")])
    refs = references_to([customer, contact, task, other], customer)
    assert [(r.form.key, r.key, r.many) for r in refs] == [("contact", "customer", False), ("task", "customer", False)]
    assert [(r.form.key, r.key, r.many) for r in references_to([task], contact)] == [("task", "contacts", True)]


class FakeFormService(form_pb2_grpc.FormServiceServicer):
    """ListForms over fixed drafts (remembers the metadata of each call); GetPublishedForm from `published`."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.fail = False
        self.published = StaticFormSource()

    def GetPublishedForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        try:
            form = self.published.get_published("t1", request.form_id, request.version)
        except NotFound:
            context.abort(grpc.StatusCode.NOT_FOUND, json.dumps({"title": "not found"}))
        doc = {"id": form.id, "key": form.key, "version": form.version, "title_field": form.title_field}
        return form_pb2.GetPublishedFormResponse(form_json=json.dumps({**doc, "fields": list(form.fields)}))

    def ListForms(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.calls.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if self.fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, json.dumps({"title": "down", "detail": "form store down"}))
        drafts = [
            {"id": "id-customer", "key": "customer", "published_version": 2},
            {"id": "id-contact", "key": "contact", "published_version": 1},
            {"id": "id-draft", "key": "draft", "published_version": 0},
            {"id": "id-gone", "key": "gone", "published_version": 1},
        ]
        return form_pb2.ListFormsResponse(forms_json=[json.dumps(d) for d in drafts])


@pytest.fixture()
def form_service() -> Iterator[tuple[FakeFormService, int]]:
    servicer = FakeFormService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    form_pb2_grpc.add_FormServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def test_grpc_catalog_lists_published_forms_with_the_callers_metadata_and_caches(
    form_service: tuple[FakeFormService, int],
) -> None:
    servicer, port = form_service
    for form in [schema("customer", []), schema("contact", [relation("customer", "customer")]), schema("draft", [])]:
        servicer.published.add(form)
    now = [0.0]
    client = GrpcFormSource(f"127.0.0.1:{port}")
    catalog = CachedFormSource(client, listing_ttl=30.0, clock=lambda: now[0])
    principal = Principal(tenant_id="t1", user_id="u-9", role="manager", locale="en")
    try:
        forms = catalog.published_forms(principal)
        # unpublished drafts are skipped; a form the source no longer knows (unpublished since) is left out
        assert [f.key for f in forms] == ["customer", "contact"]
        # asked as the record service itself, for the caller, in a signed token
        asked = default_codec().verify(servicer.calls[0]["x-crm-principal"])
        assert asked is not None and asked.tenant_id == "t1" and asked.kind == "service"
        assert asked.on_behalf == "u-9" and asked.user_id == "service:record"
        catalog.published_forms(principal)
        assert len(servicer.calls) == 1
        now[0] = 31.0
        catalog.published_forms(principal)
        assert len(servicer.calls) == 2
        servicer.fail = True
        now[0] = 62.0
        with pytest.raises(FormServiceUnavailable) as exc:
            catalog.published_forms(principal)
        assert exc.value.http_status == 503 and "form store down" in exc.value.detail
    finally:
        client.close()


def test_source_catalog_uses_the_sources_listing() -> None:
    class Listing:
        def get_published(self, tenant_id: str, ref: str, version: int = 0) -> FormSchema:
            raise NotFound(ref)

        def list_published(self, tenant_id: str) -> list[FormSchema]:
            return [schema("customer", [], tenant=tenant_id)]

    forms = SourceCatalog(Listing()).published_forms(Principal(tenant_id="t9"))
    assert [(f.key, f.tenant_id) for f in forms] == [("customer", "t9")]
