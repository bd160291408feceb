"""The OpenAPI document's error responses (gateway.openapi) and the request schemas' integer bounds."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest
from apiflask import APIFlask
from apiflask.fields import Integer
from marshmallow import ValidationError

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The real app's document (store and services are never reached to build it)."""
    from gateway import create_app
    from gateway.clients import Services
    from gateway.settings import Settings

    app = create_app(
        {
            "GATEWAY_SETTINGS": Settings(jwt_secret="unit-test-secret-0123456789"),
            "GATEWAY_STORE": MagicMock(),
            "GATEWAY_SERVICES": Services(form=MagicMock(), record=MagicMock(), workflow=MagicMock()),
            "GATEWAY_ENSURE_INDEXES": False,
        }
    )
    document: dict[str, Any] = app.spec  # type: ignore[assignment]
    return document


def _responses(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = spec["paths"][path][method]["responses"]
    return responses


def test_every_error_response_is_problem_json(spec: dict[str, Any]) -> None:
    seen = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    seen += 1
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    assert seen > 300
    assert "ProblemOut" not in spec["components"]["schemas"]
    problem = spec["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail", "code", "errors"]
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}


def test_a_service_calling_write_documents_every_status_it_can_give(spec: dict[str, Any]) -> None:
    responses = _responses(spec, "post", "/api/v1/forms/{form}/records")
    assert set(responses) == {"201", "400", "401", "403", "404", "409", "413", "422", "429", "503", "504"}
    assert responses["422"]["content"] == PROBLEM
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert "required" not in responses["429"]["headers"]["Retry-After"]


def test_a_read_through_a_helper_counts_as_calling_a_service(spec: dict[str, Any]) -> None:
    # list_records calls record_call through _list: 503 and 504, but a read has no 409
    responses = _responses(spec, "get", "/api/v1/forms/{form}/records")
    assert {"400", "422", "503", "504"} <= set(responses)
    assert "409" not in responses and "413" not in responses


def test_gateway_own_operations_document_only_what_they_can_give(spec: dict[str, Any]) -> None:
    assert set(_responses(spec, "get", "/api/v1/me")) == {"200", "401", "429"}
    roles = _responses(spec, "get", "/api/v1/roles")
    assert set(roles) == {"200", "401", "429"}
    # admin-only (apiflask roles): 403; a path parameter: 404; no service behind it: no 503
    role = _responses(spec, "get", "/api/v1/roles/{key}")
    assert set(role) == {"200", "401", "403", "404", "429"}


def test_operations_outside_the_api_have_no_rate_limit_or_auth(spec: dict[str, Any]) -> None:
    assert set(_responses(spec, "get", "/healthz")) == {"200"}
    ready = _responses(spec, "get", "/readyz")
    assert set(ready) == {"200", "503"}
    assert ready["503"]["content"] == PROBLEM
    assert "headers" not in ready["503"]  # not_ready carries no Retry-After


def test_a_route_specific_problem_schema_is_kept(spec: dict[str, Any]) -> None:
    login = _responses(spec, "post", "/api/v1/auth/login")
    assert login["403"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/PasswordChangeRequiredOut"
    }
    assert {"400", "401", "413", "422", "429"} <= set(login)


def test_calls_service_reads_the_views_code() -> None:
    from gateway.openapi import calls_service
    from gateway.routes import attachments, ops, permissions, records, roles

    assert calls_service(records.list_records)  # through the module helper _list
    assert calls_service(attachments.download)  # services.record.stream
    assert calls_service(permissions.check)  # services.record.unary, on one branch
    assert not calls_service(roles.list_roles)  # the gateway's own store
    assert not calls_service(ops.readyz)  # services.<name>.healthy() is a health probe, not a call


def test_a_processor_on_a_minimal_app() -> None:
    from gateway.openapi import register_spec_processor

    app = APIFlask("mini")
    register_spec_processor(app)

    @app.post("/api/v1/things/<thing_id>")
    @app.input({"n": Integer()}, arg_name="body")
    def thing(thing_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return {}

    responses = app.spec["paths"]["/api/v1/things/{thing_id}"]["post"]["responses"]  # type: ignore[index]
    assert set(responses) == {"200", "400", "404", "413", "422", "429"}


@pytest.mark.parametrize(
    ("schema_name", "body"),
    [
        ("DepartmentIn", {"name": "d", "sort": 10**38}),
        ("DepartmentIn", {"name": "d", "sort": 2**31}),
        ("DepartmentPatch", {"sort": -(2**31) - 1}),
        ("RecordPatch", {"version": 2**63}),
    ],
)
def test_integers_out_of_range_are_refused_naming_the_field(schema_name: str, body: dict[str, Any]) -> None:
    from gateway import schemas

    field = next(iter(k for k in body if k != "name"))
    with pytest.raises(ValidationError) as err:
        getattr(schemas, schema_name)().load(body)
    assert field in err.value.messages


def test_integers_in_range_load() -> None:
    from gateway.schemas import DeleteQuery, DepartmentIn, PublishedQuery

    assert DepartmentIn().load({"name": "d", "sort": 2**31 - 1})["sort"] == 2**31 - 1
    assert DepartmentIn().load({"name": "d", "sort": -(2**31)})["sort"] == -(2**31)
    assert PublishedQuery().load({"version": 2**63 - 1})["version"] == 2**63 - 1
    with pytest.raises(ValidationError):
        DeleteQuery().load({"version": 2**63})
