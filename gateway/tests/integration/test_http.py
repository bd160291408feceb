"""The HTTP surface: problem+json, limits, gRPC error mapping, proxy shapes, OpenAPI, health."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from crm.record.v1 import record_pb2

pytestmark = pytest.mark.integration

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "errors"}


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    return body  # type: ignore[no-any-return]


def test_malformed_json_is_400(client: Any) -> None:
    body = _problem(client.post("/api/v1/auth/login", data="{nope", content_type="application/json"), 400)
    assert body["code"] == "bad_request"
    assert "JSON" in body["detail"]


def test_non_object_body_is_422(client: Any) -> None:
    body = _problem(client.post("/api/v1/auth/login", json=[1, 2]), 422)
    assert body["code"] == "not_an_object"
    assert body["detail"] == "请求体必须是 JSON 对象"


def test_unknown_keys_on_own_endpoints_are_422(client: Any) -> None:
    resp = client.post(
        "/api/v1/auth/login",
        json={"username": "a", "password": "b", "colour": "red"},
        headers={"Accept-Language": "en"},
    )
    body = _problem(resp, 422)
    assert body["errors"] == [
        {"field": "colour", "rule": "unknown_field", "message": "Unknown field: colour", "location": "json"}
    ]


def test_missing_required_field_is_422_in_chinese(client: Any) -> None:
    body = _problem(client.post("/api/v1/auth/login", json={"username": "a"}), 422)
    assert {"field": "password", "rule": "required", "message": "必填字段：password", "location": "json"} in body[
        "errors"
    ]


def test_body_over_one_mib_is_413(client: Any, helpers: Any) -> None:
    big = json.dumps({"username": "a", "password": "x" * (1024 * 1024 + 10)})
    body = _problem(
        client.post("/api/v1/auth/login", data=big, content_type="application/json", headers={"Accept-Language": "en"}),
        413,
    )
    assert body["detail"] == "Request body too large (limit 1 MiB)"


def test_bulk_accepts_more_than_one_mib(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    record_service.handlers["BulkCreateRecords"] = lambda req, p: record_pb2.BulkCreateRecordsResponse(
        record_ids=[str(i) for i in range(len(json.loads(req.records_json)))]
    )
    rows = [{"customer_name": f"北京华信恒通科技有限公司{i}号", "level": "A"} for i in range(10_000)]
    payload = json.dumps({"records": rows})
    assert len(payload) > 1024 * 1024
    resp = client.post(
        "/api/v1/forms/customer/records/bulk",
        data=payload,
        content_type="application/json",
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["count"] == 10_000
    req, _ = record_service.last("BulkCreateRecords")
    assert req.form_id == "customer" and json.loads(req.records_json)[5] == rows[5]


def test_unknown_route_and_method(client: Any) -> None:
    body = _problem(client.get("/api/v1/nothing-here", headers={"Accept-Language": "en"}), 404)
    assert body["detail"] == "No such endpoint: /api/v1/nothing-here"
    assert _problem(client.get("/api/v1/nothing-here"), 404)["detail"] == "接口不存在：/api/v1/nothing-here"
    assert _problem(client.put("/api/v1/auth/login"), 405)["code"] == "method_not_allowed"


def test_proxied_create_passes_json_and_principal(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    def create(req: Any, principal: Any) -> Any:
        data = json.loads(req.data_json)
        return record_pb2.CreateRecordResponse(record_json=json.dumps({"id": "r1", "data": data, "version": 1}))

    record_service.handlers["CreateRecord"] = create
    resp = client.post(
        "/api/v1/forms/customer/records",
        json={"data": {"customer_name": "华信", "level": "A"}},
        headers={**helpers.bearer(admin_token), "X-Request-Id": "req-42"},
    )
    assert resp.status_code == 201
    assert resp.get_json() == {"id": "r1", "data": {"customer_name": "华信", "level": "A"}, "version": 1}
    assert resp.headers["X-Request-Id"] == "req-42"
    req, principal = record_service.last("CreateRecord")
    assert req.form_id == "customer" and req.owner_id == ""
    assert principal.tenant_id == "default" and principal.role == "admin" and principal.locale == "zh-CN"
    assert principal.request_id == "req-42"
    assert principal.user_name == "系统管理员"


def test_list_records_maps_parameters_and_capped_total(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    record_service.handlers["ListRecords"] = lambda req, p: record_pb2.ListRecordsResponse(
        records_json=['{"id": "a"}', '{"id": "b"}'], next_cursor="c2", total=10_000, total_capped=True
    )
    flt = '{"and": [{"field": "level", "op": "eq", "value": "B"}]}'
    resp = client.get(
        "/api/v1/forms/customer/records",
        query_string={"filter": flt, "sort": "-created_at,customer_name", "page_size": 50, "q": "华信"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 200
    assert resp.get_json() == {
        "items": [{"id": "a"}, {"id": "b"}],
        "next_cursor": "c2",
        "total": 10_000,
        "total_display": "10,000+",
    }
    req, _ = record_service.last("ListRecords")
    assert json.loads(req.filter_json) == json.loads(flt)
    assert json.loads(req.sort_json) == [
        {"field": "created_at", "direction": "desc"},
        {"field": "customer_name", "direction": "asc"},
    ]
    assert req.page_size == 50 and req.keyword == "华信" and req.count_mode == record_pb2.COUNT_MODE_CAPPED


def test_query_in_body_and_uncounted_total(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    record_service.handlers["ListRecords"] = lambda req, p: record_pb2.ListRecordsResponse(total=-1)
    resp = client.post(
        "/api/v1/forms/customer/records/query",
        json={"filter": {"and": []}, "sort": [{"field": "name", "direction": "asc"}], "count": "none", "deleted": True},
        headers=helpers.bearer(admin_token),
    )
    assert resp.get_json() == {"items": [], "next_cursor": None, "total": None, "total_display": None}
    req, _ = record_service.last("ListRecords")
    assert req.count_mode == record_pb2.COUNT_MODE_NONE and req.deleted is True
    assert json.loads(req.filter_json) == {"and": []}


def test_bad_filter_parameter_is_400(client: Any, helpers: Any, admin_token: str) -> None:
    resp = client.get(
        "/api/v1/forms/customer/records", query_string={"filter": "{oops"}, headers=helpers.bearer(admin_token)
    )
    assert _problem(resp, 400)["code"] == "invalid_json_param"


@pytest.mark.parametrize(
    ("code", "problem", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, {"code": "validation_failed", "status": 422}, 422),
        (grpc.StatusCode.NOT_FOUND, {"code": "not_found", "status": 404}, 404),
        (grpc.StatusCode.ALREADY_EXISTS, {"code": "conflict", "status": 409}, 409),
        (grpc.StatusCode.ABORTED, {"code": "conflict", "status": 409}, 409),
        (grpc.StatusCode.PERMISSION_DENIED, {"code": "forbidden", "status": 403}, 403),
        (grpc.StatusCode.UNAUTHENTICATED, {"code": "unauthenticated", "status": 401}, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, {"code": "payload_too_large", "status": 413}, 413),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, {"code": "too_many_requests", "status": 429}, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, {"code": "bad_request", "status": 400}, 400),
    ],
)
def test_grpc_errors_map_to_http(
    client: Any, helpers: Any, admin_token: str, record_service: Any, code: Any, problem: dict[str, Any], status: int
) -> None:
    doc = {**problem, "title": "t", "detail": "from the service"}

    def fail(req: Any, p: Any) -> Any:
        raise helpers.FakeRpcError(code, doc)

    record_service.handlers["GetRecord"] = fail
    body = _problem(client.get("/api/v1/records/r1", headers=helpers.bearer(admin_token)), status)
    assert body["code"] == problem["code"]
    assert body["detail"] == "from the service"


def test_validation_problem_from_a_service_keeps_field_errors(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    errors = [{"field": "customer_name", "rule": "required", "message": "Customer name is required"}]

    def fail(req: Any, p: Any) -> Any:
        raise helpers.FakeRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            {"code": "validation_failed", "status": 422, "title": "Invalid", "detail": "x", "errors": errors},
        )

    record_service.handlers["CreateRecord"] = fail
    resp = client.post("/api/v1/forms/customer/records", json={"data": {}}, headers=helpers.bearer(admin_token, "en"))
    body = _problem(resp, 422)
    assert body["errors"] == errors
    assert body["title"] == "Invalid"


def test_service_down_is_503_localised(client: Any, helpers: Any, admin_token: str, form_service: Any) -> None:
    def down(req: Any, p: Any) -> Any:
        err = helpers.FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
        err.gateway_service = "form"
        raise err

    form_service.handlers["ListApps"] = down
    zh = _problem(client.get("/api/v1/apps", headers=helpers.bearer(admin_token)), 503)
    assert zh["detail"] == "服务暂不可用（form），请稍后重试"
    en = _problem(client.get("/api/v1/apps", headers=helpers.bearer(admin_token, "en")), 503)
    assert en["detail"] == "Service temporarily unavailable (form); please retry later"


def test_form_routes(client: Any, helpers: Any, admin_token: str, form_service: Any) -> None:
    form_service.handlers.update(
        ListApps=lambda req, p: form_pb2.ListAppsResponse(apps_json=['{"id": "app1", "key": "crm"}']),
        UpdateForm=lambda req, p: form_pb2.UpdateFormResponse(form_json=req.form_json),
        PublishForm=lambda req, p: form_pb2.PublishFormResponse(form_json='{"id": "f1"}', version=3),
        InstallTemplate=lambda req, p: form_pb2.InstallTemplateResponse(app_json='{"id": "app1"}', created=False),
    )
    h = helpers.bearer(admin_token)
    assert client.get("/api/v1/apps", headers=h).get_json() == {"items": [{"id": "app1", "key": "crm"}]}
    patched = client.patch("/api/v1/forms/customer", json={"name": {"en": "Client"}, "expected_revision": 4}, headers=h)
    assert patched.get_json() == {"name": {"en": "Client"}}
    req, _ = form_service.last("UpdateForm")
    assert req.expected_revision == 4 and req.form_id == "customer"
    assert client.post("/api/v1/forms/customer/publish", headers=h).get_json() == {"id": "f1", "version": 3}
    installed = client.post("/api/v1/templates/crm/install", headers=h).get_json()
    assert installed == {"app": {"id": "app1"}, "created": False}
    assert form_service.last("InstallTemplate")[0].template == "crm"


def test_record_update_requires_a_version(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    bad = client.patch("/api/v1/records/r1", json={"data": {"a": 1}}, headers=helpers.bearer(admin_token))
    assert _problem(bad, 422)["errors"][0]["field"] == "version"
    record_service.handlers["UpdateRecord"] = lambda req, p: record_pb2.UpdateRecordResponse(record_json='{"v": 2}')
    ok = client.patch(
        "/api/v1/records/r1",
        json={"data": {"a": 1}, "version": 1, "owner_id": "u2"},
        headers=helpers.bearer(admin_token),
    )
    assert ok.get_json() == {"v": 2}
    req, _ = record_service.last("UpdateRecord")
    assert req.expected_version == 1 and req.owner_id == "u2" and json.loads(req.data_json) == {"a": 1}


def test_attachment_upload_and_streamed_download(
    client: Any, helpers: Any, admin_token: str, record_service: Any
) -> None:
    record_service.handlers["UploadAttachment"] = lambda req, p: record_pb2.UploadAttachmentResponse(
        attachment_json=json.dumps({"id": "att1", "filename": req.filename, "size": len(req.content)})
    )
    content = b"x" * (2 * 1024 * 1024)  # over the 1 MiB JSON limit: the upload route allows 50 MiB
    import io

    resp = client.post(
        "/api/v1/attachments",
        data={"file": (io.BytesIO(content), "合同.pdf", "application/pdf"), "form_id": "contract"},
        content_type="multipart/form-data",
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.get_json() == {"id": "att1", "filename": "合同.pdf", "size": len(content)}
    assert record_service.last("UploadAttachment")[0].form_id == "contract"

    def download(req: Any, p: Any) -> Any:
        meta = {"id": req.attachment_id, "filename": "合同.pdf", "content_type": "application/pdf", "size": 6}
        yield record_pb2.DownloadAttachmentResponse(attachment_json=json.dumps(meta))
        yield record_pb2.DownloadAttachmentResponse(chunk=b"abc")
        yield record_pb2.DownloadAttachmentResponse(chunk=b"def")

    record_service.handlers["DownloadAttachment"] = download
    got = client.get("/api/v1/attachments/att1", headers=helpers.bearer(admin_token))
    assert got.status_code == 200
    assert got.data == b"abcdef"
    assert got.mimetype == "application/pdf"
    assert "filename*=UTF-8''%E5%90%88%E5%90%8C.pdf" in got.headers["Content-Disposition"]


def test_missing_attachment_is_404(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    def missing(req: Any, p: Any) -> Any:
        raise helpers.FakeRpcError(grpc.StatusCode.NOT_FOUND, {"code": "not_found", "detail": "no such file"})
        yield  # pragma: no cover - makes this a generator

    record_service.handlers["DownloadAttachment"] = missing
    _problem(client.get("/api/v1/attachments/nope", headers=helpers.bearer(admin_token)), 404)


def test_openapi_document(client: Any) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Access token (JWT) from /auth/login",
    }
    paths = spec["paths"]
    for path in (
        "/api/v1/auth/login",
        "/api/v1/me",
        "/api/v1/users/{user_id}",
        "/api/v1/departments/{department_id}/move",
        "/api/v1/forms/{form}/records",
        "/api/v1/records/{record_id}/360",
        "/api/v1/attachments",
        "/readyz",
    ):
        assert path in paths, path
    for path, ops in paths.items():
        for method, op in ops.items():
            assert op.get("tags") and op.get("summary"), f"{method} {path}"
    assert paths["/api/v1/me"]["get"]["security"] == [{"BearerAuth": []}]
    assert "requestBody" in paths["/api/v1/auth/login"]["post"]
    assert client.get("/api/v1/docs").status_code == 200


def test_healthz_and_readyz(client: Any, form_service: Any, record_service: Any) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"store": True, "form": True, "record": True}
    record_service.up = False
    down = _problem(client.get("/readyz"), 503)
    assert down["checks"]["record"] is False
    assert "record" in down["detail"]


def test_metrics_count_requests_per_route(client: Any) -> None:
    client.get("/healthz")
    client.get("/api/v1/nothing")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'crm_gateway_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "crm_gateway_http_request_seconds_bucket" in text
