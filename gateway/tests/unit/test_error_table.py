"""Every domain error class through the gRPC boundary and the gateway: the status and problem type a client sees."""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any

import flask
import grpc
import pytest

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime import errors
from crm_runtime.client import channel
from crm_runtime.grpc_server import build_server
from crm_runtime.principal import Principal
from gateway.errors import rpc_error_response
from record_service.extras.catalog import FormCatalogUnavailable
from record_service.forms.grpc_source import FormServiceUnavailable

# class -> (gRPC code, HTTP status, problem code at the gateway)
TABLE: dict[type[errors.DomainError], tuple[grpc.StatusCode, int, str]] = {
    errors.ValidationFailed: (grpc.StatusCode.INVALID_ARGUMENT, 422, "validation_failed"),
    errors.BadRequest: (grpc.StatusCode.FAILED_PRECONDITION, 400, "bad_request"),
    errors.NotFound: (grpc.StatusCode.NOT_FOUND, 404, "not_found"),
    errors.Conflict: (grpc.StatusCode.ALREADY_EXISTS, 409, "conflict"),
    errors.Forbidden: (grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
    errors.Unauthenticated: (grpc.StatusCode.UNAUTHENTICATED, 401, "unauthenticated"),
    errors.PayloadTooLarge: (grpc.StatusCode.RESOURCE_EXHAUSTED, 413, "payload_too_large"),
    errors.TooManyRequests: (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "too_many_requests"),
    errors.Unavailable: (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"),
    FormServiceUnavailable: (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"),
    FormCatalogUnavailable: (grpc.StatusCode.UNAVAILABLE, 503, "service_unavailable"),
}


def _all_classes(base: type[errors.DomainError]) -> set[type[errors.DomainError]]:
    out: set[type[errors.DomainError]] = set()
    for sub in base.__subclasses__():
        out |= {sub} | _all_classes(sub)
    return out


def _instance(cls: type[errors.DomainError]) -> errors.DomainError:
    if issubclass(cls, errors.ValidationFailed):
        return cls([errors.FieldError("name", "required", "必填")])
    if issubclass(cls, errors.TooManyRequests):
        return cls("slow down", retry_after=7)
    return cls("detail of " + cls.__name__)


class _Raising(form_pb2_grpc.FormServiceServicer):
    def GetForm(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated API
        classes = {c.__name__: c for c in TABLE}
        raise _instance(classes[request.form_id])


@pytest.fixture(scope="module")
def stub() -> Any:
    bundle = build_server(
        0, [lambda s: form_pb2_grpc.add_FormServiceServicer_to_server(_Raising(), s)], ["crm.form.v1.FormService"]
    )
    bundle.server.start()
    yield form_pb2_grpc.FormServiceStub(channel(f"127.0.0.1:{bundle.port}"))
    bundle.server.stop(0)


def test_the_table_covers_every_domain_error_class_that_exists() -> None:
    for package in ("crm_runtime", "form_service", "record_service", "gateway"):  # every class defined anywhere
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)

    missing = {c.__qualname__ for c in _all_classes(errors.DomainError)} - {c.__qualname__ for c in TABLE}
    assert not missing, f"domain errors without a row in the table: {missing}"


@pytest.mark.parametrize("cls", list(TABLE), ids=lambda c: c.__name__)
def test_each_error_class_reaches_the_client_as_its_status(stub: Any, cls: type[errors.DomainError]) -> None:
    code, status, problem_code = TABLE[cls]
    md = Principal(tenant_id="t1", locale="en").to_metadata()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetForm(form_pb2.GetFormRequest(form_id=cls.__name__), metadata=md)
    assert err.value.code() == code
    app = flask.Flask(__name__)
    with app.test_request_context("/api/v1/x"):
        resp = rpc_error_response(err.value, "form")
    body = json.loads(resp.get_data())
    assert resp.status_code == status and body["status"] == status
    assert resp.mimetype == "application/problem+json" and body["type"] == f"urn:crm:problem:{problem_code}"
    if status == 503:
        assert resp.headers["Retry-After"] == "5"
    if status == 429:
        assert resp.headers["Retry-After"] == "7"
    if status == 422:
        assert body["errors"][0]["field"] == "name"
