"""Publication over gRPC: versions, form.published events on RabbitMQ, definition errors, the CRM template."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from form_service.server import FormServer
from form_service.store.documents import OutboxDocument

pytestmark = pytest.mark.integration


def problem(err: grpc.RpcError) -> dict[str, Any]:
    """The JSON problem a failed call carries in its details."""
    return json.loads(err.details())  # type: ignore[attr-defined]


NAME = {"zh-CN": "客户", "en": "Customer"}
TEXT = {"key": "customer_name", "type": "text", "label": {"zh-CN": "客户名称", "en": "Customer name"}}


def _setup(as_admin: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    app = json.loads(as_admin("CreateApp", form_pb2.CreateAppRequest(name_json='"销售"', key="sales")).app_json)
    spec = {"key": "customer", "name": NAME, "fields": [TEXT]}
    resp = as_admin("CreateForm", form_pb2.CreateFormRequest(app_id=app["id"], form_json=json.dumps(spec)))
    return app, json.loads(resp.form_json)


def _update(as_admin: Any, form: dict[str, Any], patch: dict[str, Any], rev: int = 0) -> dict[str, Any]:
    req = form_pb2.UpdateFormRequest(form_id=form["id"], form_json=json.dumps(patch), expected_revision=rev)
    return json.loads(as_admin("UpdateForm", req).form_json)


def _publish(as_admin: Any, ref: str) -> Any:
    return as_admin("PublishForm", form_pb2.PublishFormRequest(form_id=ref))


def test_add_a_field_publish_and_receive_form_published(
    as_admin: Any, as_sales: Any, events: Any, form_server: FormServer
) -> None:
    app, form = _setup(as_admin)
    email = {"key": "email", "type": "email", "label": {"zh-CN": "邮箱", "en": "Email"}}
    updated = _update(as_admin, form, {"fields": [TEXT, email]}, rev=1)
    assert updated["revision"] == 2
    resp = _publish(as_admin, "customer")
    assert resp.version == 1
    got = events.wait(lambda r: len(r) >= 1)
    assert len(got) == 1
    env = got[0]
    assert (env["type"], env["source"], env["actor"]) == ("form.published", "form", "u-admin")
    data = env["data"]
    assert (data["form_id"], data["key"], data["app_id"], data["version"]) == (form["id"], "customer", app["id"], 1)
    assert data["title_field"] == "customer_name"
    assert [f["key"] for f in data["fields"]] == ["customer_name", "email"]
    # the relay marked it sent
    assert OutboxDocument.objects(id=env["id"]).first().published is True

    published = as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id=form["id"]))
    doc = json.loads(published.form_json)
    assert (published.version, doc["version"], doc["id"], doc["key"]) == (1, 1, form["id"], "customer")
    assert doc["name"] == NAME and doc["published_at"]
    got_form = json.loads(as_sales("GetForm", form_pb2.GetFormRequest(form_id="customer")).form_json)
    assert got_form["published_version"] == 1

    # remove the email field, publish v2: v1 stays as it was
    _update(as_admin, form, {"fields": [TEXT]})
    assert _publish(as_admin, form["id"]).version == 2
    events.wait(lambda r: len(r) >= 2)
    latest = json.loads(as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="customer")).form_json)
    first = json.loads(
        as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="customer", version=1)).form_json
    )
    assert [f["key"] for f in latest["fields"]] == ["customer_name"]
    assert [f["key"] for f in first["fields"]] == ["customer_name", "email"]
    with pytest.raises(grpc.RpcError) as err:
        as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="customer", version=9))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_published_key_cannot_change_type(as_admin: Any) -> None:
    _app, form = _setup(as_admin)
    _publish(as_admin, form["id"])
    with pytest.raises(grpc.RpcError) as err:
        _update(as_admin, form, {"fields": [{**TEXT, "type": "number"}]})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    body = problem(err.value)
    assert body["status"] == 422
    assert [(e["field"], e["rule"]) for e in body["errors"]] == [("customer_name", "type_immutable")]


def test_bad_definitions_are_invalid_argument_with_field_errors(as_admin: Any, events: Any) -> None:
    _app, form = _setup(as_admin)
    bad = [
        TEXT,
        {"key": "owner_contact", "type": "relation", "label": "x", "relation": {"form_id": "no_such_form"}},
        {"key": "Bad Key", "type": "text", "label": "y"},
    ]
    _update(as_admin, form, {"fields": bad})
    with pytest.raises(grpc.RpcError) as err:
        _publish(as_admin, form["id"])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    errors = problem(err.value)["errors"]
    fields = {e["field"] for e in errors}
    assert "owner_contact" in fields
    assert any(e["field"] == "owner_contact" and e["rule"] == "relation_target_missing" for e in errors)
    assert any(e["field"] == "Bad Key" and e["rule"] == "invalid_key" for e in errors)  # crm_schema's finding
    # the caller's locale is English
    assert "no_such_form" in next(e["message"] for e in errors if e["rule"] == "relation_target_missing")
    assert all(e["message"] and not any("\u4e00" <= ch <= "\u9fff" for ch in e["message"]) for e in errors)
    got = json.loads(as_admin("GetForm", form_pb2.GetFormRequest(form_id=form["id"])).form_json)
    assert got["published_version"] == 0
    assert events.wait(lambda r: False, timeout=1.0) == []


def test_relation_keys_resolve_to_ids_at_publish(as_admin: Any) -> None:
    app, customer = _setup(as_admin)
    spec = {
        "key": "contact",
        "name": "联系人",
        "fields": [
            {"key": "name", "type": "text", "label": "姓名"},
            {"key": "customer", "type": "relation", "label": "客户", "relation": {"form_id": "customer"}},
        ],
    }
    as_admin("CreateForm", form_pb2.CreateFormRequest(app_id=app["id"], form_json=json.dumps(spec)))
    doc = json.loads(_publish(as_admin, "contact").form_json)
    assert doc["fields"][1]["relation"]["form_id"] == customer["id"]


def test_install_template_twice_is_idempotent_and_publishes_every_form(
    as_admin: Any, as_sales: Any, events: Any
) -> None:
    first = as_admin("InstallTemplate", form_pb2.InstallTemplateRequest(template="crm"))
    app = json.loads(first.app_json)
    assert first.created is True
    assert app["name"]["zh-CN"] == "客户关系管理"
    second = as_admin("InstallTemplate", form_pb2.InstallTemplateRequest())
    assert second.created is False and json.loads(second.app_json)["id"] == app["id"]

    forms = [json.loads(f) for f in as_sales("ListForms", form_pb2.ListFormsRequest(app_id=app["id"])).forms_json]
    keys = {f["key"] for f in forms}
    assert keys == {
        *("customer", "contact", "opportunity", "follow_up", "contract", "payment", "ticket", "task"),
        *("lead", "quotation", "payment_plan", "sales_target"),
    }
    assert all(f["published_version"] == 1 for f in forms)
    got = events.wait(lambda r: len(r) >= 12)
    assert sorted(e["data"]["key"] for e in got) == sorted(keys)

    ids = {f["key"]: f["id"] for f in forms}
    customer = json.loads(as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="customer")).form_json)
    by_key = {f["key"]: f for f in customer["fields"]}
    assert by_key["customer_name"]["unique"] is True
    assert by_key["key_contact"]["relation"]["form_id"] == ids["contact"]
    assert by_key["total_contract_amount"]["rollup"]["form_id"] == ids["contract"]
    opportunity = json.loads(
        as_sales("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="opportunity")).form_json
    )
    stage = next(f for f in opportunity["fields"] if f["key"] == "stage")
    assert [(o["value"], o["probability"]) for o in stage["options"]][:2] == [("new_lead", 10), ("initial_contact", 20)]


def test_install_template_upgrades_an_install_of_the_older_template(
    form_server: FormServer, tenant: str, as_admin: Any, events: Any
) -> None:
    from crm_runtime.principal import Principal
    from form_service.domain.service import FormEngine
    from form_service.store.repository import MongoFormRepository
    from form_service.templates import load_template

    old = load_template("crm")
    assert old is not None
    old["forms"] = old["forms"][:8]
    for form in old["forms"]:
        form["fields"] = [f for f in form["fields"] if f["key"] not in ("first_contacted_on", "call_minutes")]
    engine = FormEngine(MongoFormRepository(OutboxDocument._get_collection().database))
    engine.install_template(Principal(tenant_id=tenant, user_id="u-admin", role="admin"), old)
    events.wait(lambda r: len(r) >= 8)

    assert as_admin("InstallTemplate", form_pb2.InstallTemplateRequest(template="crm")).created is False
    got = events.wait(lambda r: len(r) >= 14)
    assert sorted((e["data"]["key"], e["data"]["version"]) for e in got[8:]) == [
        ("customer", 2),
        ("follow_up", 2),
        ("lead", 1),
        ("payment_plan", 1),
        ("quotation", 1),
        ("sales_target", 1),
    ]
    customer = json.loads(as_admin("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="customer")).form_json)
    keys = [f["key"] for f in customer["fields"]]
    assert customer["version"] == 2 and keys[keys.index("last_contacted_at") + 1] == "first_contacted_on"
    # a third install finds nothing to do: the stored draft equals its published version
    as_admin("InstallTemplate", form_pb2.InstallTemplateRequest(template="crm"))
    draft = json.loads(as_admin("GetForm", form_pb2.GetFormRequest(form_id="customer")).form_json)
    assert (draft["published_version"], OutboxDocument.objects(tenant_id=tenant).count()) == (2, 14)


def test_unknown_template_is_not_found(as_admin: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        as_admin("InstallTemplate", form_pb2.InstallTemplateRequest(template="erp"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
