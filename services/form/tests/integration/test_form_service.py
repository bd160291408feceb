"""The form service end to end over gRPC: real SecantusDB, real RabbitMQ, the production wiring."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from crm_runtime.principal import Principal

pytestmark = pytest.mark.integration


def problem(err: grpc.RpcError) -> dict[str, Any]:
    """The JSON problem a failed call carries in its details."""
    return json.loads(err.details())  # type: ignore[attr-defined]


NAME = {"zh-CN": "客户", "en": "Customer"}


def _app(as_admin: Any, key: str = "sales") -> dict[str, Any]:
    resp = as_admin("CreateApp", form_pb2.CreateAppRequest(name_json=json.dumps({"zh-CN": "销售"}), key=key))
    return json.loads(resp.app_json)


def _form(as_admin: Any, app_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    resp = as_admin("CreateForm", form_pb2.CreateFormRequest(app_id=app_id, form_json=json.dumps(spec)))
    return json.loads(resp.form_json)


def test_apps_and_forms_are_created_listed_and_read(as_admin: Any, as_sales: Any) -> None:
    app = _app(as_admin)
    assert app["key"] == "sales" and app["name"] == {"zh-CN": "销售", "en": "销售"}
    form = _form(as_admin, app["id"], {"key": "customer", "name": NAME, "fields": [{"type": "text", "label": "名称"}]})
    assert form["fields"][0]["key"].startswith("f_") and form["title_field"] == form["fields"][0]["key"]
    apps = [json.loads(a) for a in as_sales("ListApps", form_pb2.ListAppsRequest()).apps_json]
    assert [a["id"] for a in apps] == [app["id"]]
    by_app = as_sales("ListForms", form_pb2.ListFormsRequest(app_id=app["id"])).forms_json
    assert [json.loads(f)["key"] for f in by_app] == ["customer"]
    got = json.loads(as_sales("GetForm", form_pb2.GetFormRequest(form_id="customer")).form_json)
    assert (got["id"], got["revision"], got["published_version"]) == (form["id"], 1, 0)


def test_duplicate_keys_and_stale_revisions_are_conflicts(as_admin: Any) -> None:
    app = _app(as_admin)
    with pytest.raises(grpc.RpcError) as err:
        _app(as_admin)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    form = _form(as_admin, app["id"], {"key": "customer", "name": NAME})
    as_admin(
        "UpdateForm", form_pb2.UpdateFormRequest(form_id=form["id"], form_json='{"name": "A"}', expected_revision=1)
    )
    with pytest.raises(grpc.RpcError) as err:
        as_admin(
            "UpdateForm", form_pb2.UpdateFormRequest(form_id=form["id"], form_json='{"name": "B"}', expected_revision=1)
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    body = problem(err.value)
    assert (body["status"], body["code"], body["current"]) == (409, "conflict", 2)


def test_sales_may_not_change_forms(as_admin: Any, as_sales: Any) -> None:
    app = _app(as_admin)
    form = _form(as_admin, app["id"], {"key": "customer", "name": NAME})
    for method, request in [
        ("CreateApp", form_pb2.CreateAppRequest(name_json='"x"')),
        ("CreateForm", form_pb2.CreateFormRequest(app_id=app["id"], form_json='{"name": "x"}')),
        ("UpdateForm", form_pb2.UpdateFormRequest(form_id=form["id"], form_json='{"name": "x"}')),
        ("PublishForm", form_pb2.PublishFormRequest(form_id=form["id"])),
        ("InstallTemplate", form_pb2.InstallTemplateRequest(template="crm")),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            as_sales(method, request)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
        assert problem(err.value)["status"] == 403


def test_another_tenant_cannot_read_the_form(as_admin: Any, make_caller: Any) -> None:
    app = _app(as_admin)
    form = _form(as_admin, app["id"], {"key": "customer", "name": NAME})
    other = make_caller(Principal(tenant_id=as_admin.principal.tenant_id + "-other", role="admin"))
    for ref in (form["id"], "customer"):
        with pytest.raises(grpc.RpcError) as err:
            other("GetForm", form_pb2.GetFormRequest(form_id=ref))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(other("ListForms", form_pb2.ListFormsRequest()).forms_json) == []


def test_calls_without_a_tenant_are_unauthenticated(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ListApps(form_pb2.ListAppsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_malformed_json_is_invalid_argument(as_admin: Any) -> None:
    app = _app(as_admin)
    with pytest.raises(grpc.RpcError) as err:
        as_admin("CreateForm", form_pb2.CreateFormRequest(app_id=app["id"], form_json="{nope"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem(err.value)["errors"][0]["field"] == "form_json"


def test_list_field_types_returns_the_schema_catalogue(as_sales: Any) -> None:
    catalogue = json.loads(as_sales("ListFieldTypes", form_pb2.ListFieldTypesRequest()).field_types_json)
    names = {t["name"] for t in catalogue}
    assert {"text", "relation", "stage", "money", "rollup", "sub_table"} <= names
    assert len(catalogue) >= 35
    assert all(t["label"]["zh-CN"] and t["label"]["en"] for t in catalogue)
