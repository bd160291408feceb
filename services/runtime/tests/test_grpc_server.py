"""Integration: the server bootstrap maps domain errors and carries the principal."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm_runtime import Conflict, NotFound, Principal, current_principal
from crm_runtime.client import channel, problem_from_error
from crm_runtime.grpc_server import build_server, start_side_http
from crm_runtime.principal import PrincipalCodec
from crm_runtime.testing import free_port


class _Forms(form_pb2_grpc.FormServiceServicer):
    def GetForm(self, request: Any, context: Any) -> Any:  # noqa: N802 - generated API
        p = current_principal()
        if request.form_id == "missing":
            raise NotFound("no such form", title="表单不存在")
        if request.form_id == "dup":
            raise Conflict("clash", existing_id="x1")
        return form_pb2.GetFormResponse(form_json=json.dumps({"tenant": p.tenant_id, "locale": p.locale}))


def test_errors_principal_health_and_side_port() -> None:
    ready = {"ok": False}
    bundle = build_server(
        0,
        [lambda s: form_pb2_grpc.add_FormServiceServicer_to_server(_Forms(), s)],
        ["crm.form.v1.FormService"],
        checks=[lambda: ready["ok"]],
    )
    bundle.server.start()
    http_port = free_port()
    httpd = start_side_http(bundle, http_port, host="127.0.0.1")
    try:
        ch = channel(f"127.0.0.1:{bundle.port}")
        stub = form_pb2_grpc.FormServiceStub(ch)
        md = Principal(tenant_id="t9", locale="en").to_metadata()
        resp = stub.GetForm(form_pb2.GetFormRequest(form_id="a"), metadata=md)
        assert json.loads(resp.form_json) == {"tenant": "t9", "locale": "en"}
        with pytest.raises(grpc.RpcError) as err:
            stub.GetForm(form_pb2.GetFormRequest(form_id="missing"), metadata=md)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert problem_from_error(err.value)["status"] == 404
        with pytest.raises(grpc.RpcError) as err:
            stub.GetForm(form_pb2.GetFormRequest(form_id="dup"), metadata=md)
        assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert problem_from_error(err.value)["existing_id"] == "x1"
        with pytest.raises(grpc.RpcError) as err:  # no principal token in metadata
            stub.GetForm(form_pb2.GetFormRequest(form_id="a"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # a claimed tenant and role in plain metadata are not believed
        claimed = [("x-tenant-id", "default"), ("x-role", "admin"), ("x-user-id", "u1")]
        with pytest.raises(grpc.RpcError) as err:
            stub.GetForm(form_pb2.GetFormRequest(form_id="a"), metadata=claimed)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # a token signed with another secret is refused
        forged = PrincipalCodec("another-secret-0123456789abcdef-0123456789").metadata(Principal(tenant_id="t9"))
        with pytest.raises(grpc.RpcError) as err:
            stub.GetForm(form_pb2.GetFormRequest(form_id="a"), metadata=forged)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

        health = health_pb2_grpc.HealthStub(ch)
        bundle.refresh_health()
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz")
        assert http_err.value.code == 503
        ready["ok"] = True
        bundle.refresh_health()
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        assert urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz").status == 200
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
        assert 'crm_grpc_requests_total{code="NOT_FOUND",method="/crm.form.v1.FormService/GetForm"}' in metrics
    finally:
        httpd.shutdown()
        bundle.server.stop(0)


def test_a_long_call_survives_the_clients_keepalive_pings() -> None:
    """A client pinging every second during an 8 s call: gRPC's default server policy answers
    GOAWAY "too_many_pings" (UNAVAILABLE); ours accepts our own clients' pings."""
    import time

    def slow(request: bytes, context: Any) -> bytes:
        time.sleep(8)
        return b"done:" + request

    handler = grpc.method_handlers_generic_handler("test.Slow", {"Call": grpc.unary_unary_rpc_method_handler(slow)})
    bundle = build_server(0, [lambda server: server.add_generic_rpc_handlers([handler])], [])
    bundle.server.start()
    try:
        # every second, and not only twice without data: the ping rate a long bulk call meets
        chan = channel(f"127.0.0.1:{bundle.port}", keepalive_ms=1000, extra=[("grpc.http2.max_pings_without_data", 0)])
        md = Principal(tenant_id="t1").to_metadata()
        assert chan.unary_unary("/test.Slow/Call")(b"x", timeout=30, metadata=md) == b"done:x"
        chan.close()
    finally:
        bundle.server.stop(0)


def test_a_problem_echoing_a_huge_input_stays_within_the_status_details_limit() -> None:
    import json as _json

    from crm_runtime.grpc_server import MAX_DETAILS, problem_details

    huge = "A" * 100_000
    problem = {
        "type": "urn:crm:problem:validation_failed",
        "status": 422,
        "code": "validation_failed",
        "errors": [{"field": "level", "rule": "option", "message": "无效的选项", "params": {"value": huge}}],
    }
    text = problem_details(problem)
    assert len(text.encode()) <= MAX_DETAILS
    out = _json.loads(text)
    assert out["code"] == "validation_failed" and out["errors"][0]["field"] == "level"
    assert out["errors"][0]["rule"] == "option" and out["errors"][0]["params"]["value"].startswith("AAAA")
    many = {
        **problem,
        "errors": [{"field": f"rows[{i}].level", "rule": "option", "message": huge} for i in range(2000)],
    }
    out = _json.loads(problem_details(many))
    assert len(problem_details(many).encode()) <= MAX_DETAILS and out["errors"][0]["field"] == "rows[0].level"
    small = {"code": "not_found", "status": 404}
    assert _json.loads(problem_details(small)) == small


def test_a_handler_sees_its_callers_deadline_and_stops_when_it_has_passed() -> None:
    """The call's remaining time is current in the handler: a step after the caller gave up raises."""
    import threading
    import time

    from crm_runtime.calls import check_deadline, time_left
    from crm_runtime.errors import DeadlineExceeded

    seen: dict[str, Any] = {}
    done = threading.Event()

    def stepwise(request: bytes, context: Any) -> bytes:
        seen["left"] = time_left()
        time.sleep(1.5)  # the client's 1 s deadline passes here
        try:
            check_deadline("the second step")
            seen["second"] = "ran"
        except DeadlineExceeded:
            seen["second"] = "refused"
            raise
        finally:
            done.set()
        return b"ok"

    handler = grpc.method_handlers_generic_handler(
        "test.Steps", {"Call": grpc.unary_unary_rpc_method_handler(stepwise)}
    )
    bundle = build_server(0, [lambda server: server.add_generic_rpc_handlers([handler])], [])
    bundle.server.start()
    try:
        chan = channel(f"127.0.0.1:{bundle.port}")
        md = Principal(tenant_id="t1").to_metadata()
        with pytest.raises(grpc.RpcError) as err:
            chan.unary_unary("/test.Steps/Call")(b"x", timeout=1.0, metadata=md)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert done.wait(5)
        assert 0 < seen["left"] <= 1.0 and seen["second"] == "refused"
        assert time_left() is None  # outside a call there is no deadline
        chan.close()
    finally:
        bundle.server.stop(0)
