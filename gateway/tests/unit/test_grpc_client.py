"""GrpcServiceClient against a real in-process gRPC server built with crm_runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime.errors import NotFound
from crm_runtime.grpc_server import build_server
from crm_runtime.principal import Principal, current_principal
from crm_runtime.testing import free_port
from gateway.clients import GrpcServiceClient
from gateway.errors import rpc_error_response


class _Forms(form_pb2_grpc.FormServiceServicer):
    """Answers ListApps with the caller's principal; GetForm always misses."""

    def ListApps(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC name
        p = current_principal()
        return form_pb2.ListAppsResponse(
            apps_json=[json.dumps({"tenant": p.tenant_id, "scope": list(p.scope_departments), "locale": p.locale})]
        )

    def GetForm(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise NotFound("没有这个表单", title="未找到")


@pytest.fixture
def server() -> Iterator[Any]:
    bundle = build_server(free_port(), [lambda s: form_pb2_grpc.add_FormServiceServicer_to_server(_Forms(), s)], [])
    bundle.server.start()
    bundle.refresh_health()
    yield bundle
    bundle.server.stop(0)


PRINCIPAL = Principal("t1", "u1", "manager", "d1", ("d1", "d2"), "en", "rid", "经理")


def test_unary_call_carries_the_principal(server: Any) -> None:
    client = GrpcServiceClient("form", f"127.0.0.1:{server.port}", form_pb2_grpc.FormServiceStub, timeout=5)
    resp = client.unary("ListApps", form_pb2.ListAppsRequest(), PRINCIPAL)
    assert json.loads(resp.apps_json[0]) == {"tenant": "t1", "scope": ["d1", "d2"], "locale": "en"}
    assert client.healthy()
    client.close()


def test_service_problem_reaches_the_http_mapping(server: Any) -> None:
    from flask import Flask

    client = GrpcServiceClient("form", f"127.0.0.1:{server.port}", form_pb2_grpc.FormServiceStub, timeout=5)
    with pytest.raises(grpc.RpcError) as info:
        client.unary("GetForm", form_pb2.GetFormRequest(form_id="x"), PRINCIPAL)
    with Flask(__name__).test_request_context("/api/v1/forms/x"):
        resp = rpc_error_response(info.value, "form")
    body = resp.get_json()
    assert resp.status_code == 404 and body["detail"] == "没有这个表单" and body["code"] == "not_found"


def test_unreachable_service_is_unhealthy_and_503() -> None:
    from flask import Flask

    client = GrpcServiceClient(
        "record", f"127.0.0.1:{free_port()}", form_pb2_grpc.FormServiceStub, timeout=1, health_timeout=0.3
    )
    assert client.healthy() is False
    with pytest.raises(grpc.RpcError) as info:
        client.unary("ListApps", form_pb2.ListAppsRequest(), PRINCIPAL)
    with Flask(__name__).test_request_context("/", headers={"Accept-Language": "en"}):
        resp = rpc_error_response(info.value, getattr(info.value, "gateway_service", ""))
    assert resp.status_code == 503
    assert resp.get_json()["detail"] == "Service temporarily unavailable (record); please retry later"
