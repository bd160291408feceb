"""Publication and templates over a fake repository (field checks by the real crm_schema)."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.errors import Conflict, NotFound, ValidationFailed
from crm_runtime.principal import Principal
from form_service.domain.models import FORM_PUBLISHED, FormVersion
from form_service.domain.service import FormEngine
from form_service.templates import load_template

NAME_FIELD = {"key": "customer_name", "type": "text", "label": {"zh-CN": "客户名称", "en": "Customer name"}}


def _customer(engine: FormEngine, admin: Principal, fields: list[dict[str, Any]] | None = None) -> tuple[str, str]:
    app = engine.create_app(admin, "销售", key="sales")
    form = engine.create_form(admin, app.id, {"key": "customer", "name": "客户", "fields": fields or [NAME_FIELD]})
    return app.id, form.id


def test_publish_stores_version_and_event_then_next_version(engine: FormEngine, repo: Any, admin: Principal) -> None:
    app_id, form_id = _customer(engine, admin)
    v1 = engine.publish_form(admin, "customer")
    assert (v1.version, v1.form_id, v1.title_field, v1.published_by) == (1, form_id, "customer_name", "u-admin")
    assert repo.forms[form_id].published_version == 1
    assert repo.forms[form_id].locked_types == {"customer_name": "text"}
    [event] = repo.events
    assert (event.type, event.tenant_id, event.actor) == (FORM_PUBLISHED, "t1", "u-admin")
    assert event.data == {
        "form_id": form_id,
        "key": "customer",
        "app_id": app_id,
        "version": 1,
        "title_field": "customer_name",
        "fields": v1.fields,
    }
    # remove nothing, add one: version 2; version 1 unchanged
    email = {"key": "email", "type": "email", "label": {"zh-CN": "邮箱", "en": "Email"}}
    engine.update_form(admin, form_id, {"fields": [NAME_FIELD, email]})
    v2 = engine.publish_form(admin, form_id)
    assert v2.version == 2 and [f["key"] for f in v2.fields] == ["customer_name", "email"]
    assert engine.get_published(admin, form_id).version == 2
    assert [f["key"] for f in engine.get_published(admin, "customer", 1).fields] == ["customer_name"]
    with pytest.raises(NotFound):
        engine.get_published(admin, form_id, 3)


def test_a_concurrent_publish_of_the_same_version_is_a_conflict(
    engine: FormEngine, repo: Any, admin: Principal
) -> None:
    _app_id, form_id = _customer(engine, admin)
    form = repo.forms[form_id]
    repo.versions[f"{form_id}:1"] = FormVersion(
        form_id, "t1", form.app_id, "customer", {}, 1, "", [], form.created_at, "other"
    )
    with pytest.raises(Conflict):
        engine.publish_form(admin, form_id)
    assert repo.events == []


def test_definition_errors_name_the_field_in_the_callers_locale(engine: FormEngine, admin_en: Principal) -> None:
    fields = [
        NAME_FIELD,
        {"key": "Bad Key", "type": "text", "label": "x"},
        {"key": "owner", "type": "relation", "label": "y", "relation": {"form_id": "ghost"}},
    ]
    _app_id, form_id = _customer(engine, admin_en, fields)
    with pytest.raises(ValidationFailed) as err:
        engine.publish_form(admin_en, form_id)
    errors = err.value.errors
    assert any(e.field == "owner" and e.rule == "relation_target_missing" for e in errors)
    assert "ghost" in next(e.message for e in errors if e.rule == "relation_target_missing")
    assert any(e.field == "Bad Key" for e in errors)
    assert engine.get_form(admin_en, form_id).published_version == 0


def test_relation_and_rollup_targets_resolve_from_keys(engine: FormEngine, admin: Principal) -> None:
    rollup = {
        "key": "total",
        "type": "rollup",
        "label": "累计金额",
        "rollup": {"form_id": "contract", "relation_field": "customer", "field": "amount", "agg": "sum"},
    }
    app_id, customer_id = _customer(engine, admin, [NAME_FIELD, rollup])
    contract = engine.create_form(
        admin,
        app_id,
        {
            "key": "contract",
            "name": "合同",
            "fields": [
                {"key": "title", "type": "text", "label": "标题"},
                {"key": "customer", "type": "relation", "label": "客户", "relation": {"form_id": "customer"}},
                {"key": "amount", "type": "money", "label": "金额"},
            ],
        },
    )
    v = engine.publish_form(admin, "customer")
    assert v.fields[1]["rollup"]["form_id"] == contract.id
    assert engine.publish_form(admin, "contract").fields[1]["relation"]["form_id"] == customer_id
    # the draft keeps what the user wrote
    assert engine.get_form(admin, "contract").fields[1]["relation"]["form_id"] == "customer"


def test_a_rollup_over_a_field_that_is_not_a_relation_back_is_refused(engine: FormEngine, admin: Principal) -> None:
    rollup = {
        "key": "total",
        "type": "rollup",
        "label": "累计金额",
        "rollup": {"form_id": "contract", "relation_field": "amount", "field": "amount", "agg": "sum"},
    }
    app_id, _ = _customer(engine, admin, [NAME_FIELD, rollup])
    engine.create_form(
        admin, app_id, {"key": "contract", "name": "合同", "fields": [{"key": "amount", "type": "money"}]}
    )
    with pytest.raises(ValidationFailed) as err:
        engine.publish_form(admin, "customer")
    assert [(e.field, e.rule) for e in err.value.errors] == [("total", "rollup_relation_invalid")]


def test_install_crm_template_publishes_every_form_once(engine: FormEngine, repo: Any, admin: Principal) -> None:
    template = load_template("crm")
    assert template is not None
    app, created = engine.install_template(admin, template)
    assert created and app.key == "crm" and app.name["zh-CN"] == "客户关系管理"
    forms = engine.list_forms(admin, app.id)
    assert len(forms) == 12 and all(f.published_version == 1 for f in forms)
    assert len(repo.events) == 12
    again, created_again = engine.install_template(admin, template)
    assert (again.id, created_again) == (app.id, False)
    assert len(repo.events) == 12 and len(engine.list_forms(admin)) == 12
    # another tenant gets its own copy
    other = Principal(tenant_id="t2", role="admin")
    assert engine.install_template(other, template)[1] is True
    assert len(engine.list_forms(other)) == 12


def test_install_template_resumes_a_partial_install(engine: FormEngine, admin: Principal) -> None:
    template = load_template("crm")
    assert template is not None
    app = engine.create_app(admin, "客户关系管理", key="crm")
    engine.create_form(admin, app.id, template["forms"][1])  # contact exists, unpublished
    got, created = engine.install_template(admin, template)
    assert (got.id, created) == (app.id, False)
    assert all(f.published_version == 1 for f in engine.list_forms(admin, "crm"))
    assert len(engine.list_forms(admin, "crm")) == 12


def test_crm_template_has_the_documented_forms_and_fields() -> None:
    template = load_template("crm")
    assert template is not None
    forms = {f["key"]: {x["key"]: x for x in f["fields"]} for f in template["forms"]}
    assert list(forms) == [
        "customer",
        "contact",
        "opportunity",
        "follow_up",
        "contract",
        "payment",
        "ticket",
        "task",
        "lead",
        "quotation",
        "payment_plan",
        "sales_target",
    ]
    assert forms["customer"]["customer_name"]["unique"] and forms["customer"]["customer_name"]["dedupe"]
    assert forms["contact"]["mobile"]["dedupe"] and forms["contact"]["email"]["dedupe"]
    stage = forms["opportunity"]["stage"]
    assert [(o["value"], o["probability"]) for o in stage["options"]] == [
        ("new_lead", 10),
        ("initial_contact", 20),
        ("needs_confirmed", 40),
        ("proposal", 60),
        ("negotiation", 80),
        ("won", 100),
        ("lost", 0),
    ]
    assert forms["opportunity"]["lost_reason"]["required_when"] == {"field": "stage", "in": ["lost"]}
    assert forms["contract"]["contract_no"]["pattern"] == "HT-{YYYY}{MM}-{0000}"
    assert forms["customer"]["total_contract_amount"]["rollup"]["agg"] == "sum"
    for fields in forms.values():
        for field in fields.values():
            assert field["label"]["zh-CN"] and field["label"]["en"]
            if field["type"] in ("relation", "select", "stage", "date"):
                assert field.get("filterable"), field["key"]
    assert load_template("nope") is None and load_template("../x") is None
