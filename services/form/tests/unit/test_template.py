"""The CRM template's later forms and fields, and how an install from an older template is upgraded."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import crm_schema
from crm_runtime.errors import Conflict
from crm_runtime.principal import Principal
from form_service.domain.service import FormEngine
from form_service.templates import load_template

ORIGINAL_FORMS = ("customer", "contact", "opportunity", "follow_up", "contract", "payment", "ticket", "task")
NEW_FORMS = ("lead", "quotation", "payment_plan", "sales_target")
NEW_FIELDS = {"customer": "first_contacted_on", "follow_up": "call_minutes"}


def _template() -> dict[str, Any]:
    template = load_template("crm")
    assert template is not None
    return template


def _old_template() -> dict[str, Any]:
    """The CRM template as first shipped: eight forms, without the fields added since."""
    template = copy.deepcopy(_template())
    template["forms"] = [f for f in template["forms"] if f["key"] in ORIGINAL_FORMS]
    for form in template["forms"]:
        form["fields"] = [x for x in form["fields"] if x["key"] != NEW_FIELDS.get(form["key"])]
    return template


def _fields(template: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    return {f["key"]: {x["key"]: x for x in f["fields"]} for f in template["forms"]}


def _keys(engine: FormEngine, admin: Principal, form: str) -> list[str]:
    return [f["key"] for f in engine.get_published(admin, form).fields]


class _Context:
    """Enough of crm_schema's ValidationContext for forms without relations or files."""

    locale = "zh-CN"
    tz = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
    role = "sales"

    def missing_relations(self, form_id: str, ids: list[str]) -> set[str]:
        return set()

    def attachments(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def encrypt(self, plaintext: str) -> str:
        return plaintext

    def decrypt(self, token: str) -> str:
        return token


# ------------------------------------------------------------------------------------------- the template


def test_every_template_form_passes_the_definition_checks() -> None:
    for form in _template()["forms"]:
        assert crm_schema.validate_form_fields(form["fields"]) == [], form["key"]
        assert form["title_field"] in {f["key"] for f in form["fields"]}, form["key"]


def test_the_later_fields_are_marked_like_their_neighbours() -> None:
    forms = _fields(_template())
    first, last = forms["customer"]["first_contacted_on"], forms["customer"]["last_contacted_at"]
    assert first["type"] == "date" and first["label"] == {"zh-CN": "首次联系日期", "en": "First contacted on"}
    # system-maintained (by an automation) exactly like 最后联系时间
    assert (first["read_only"], first["filterable"]) == (last["read_only"], last["filterable"]) == (True, True)
    minutes = forms["follow_up"]["call_minutes"]
    assert (minutes["type"], minutes["label"]["zh-CN"], minutes["min"]) == ("number", "通话时长", 0)


def test_lead_form() -> None:
    forms = _fields(_template())
    lead = forms["lead"]
    assert list(lead) == ["name", "company_name", "mobile", "email", "source", "region", "status", "converted_customer"]
    assert lead["name"]["required"] is True
    assert (lead["mobile"]["type"], lead["email"]["type"], lead["region"]["type"]) == ("mobile", "email", "region")
    assert lead["source"]["options"] == forms["customer"]["source"]["options"]
    assert [o["label"]["zh-CN"] for o in lead["status"]["options"]] == ["待跟进", "跟进中", "已转化", "无效"]
    assert lead["status"]["default"] == "pending"
    assert lead["converted_customer"]["relation"] == {"form_id": "customer", "many": False}


def test_quotation_form_and_its_line_formula() -> None:
    quotation = _fields(_template())["quotation"]
    assert quotation["quote_no"]["pattern"] == "BJ-{YYYY}{MM}-{0000}"
    assert quotation["customer"]["relation"]["form_id"] == "customer"
    assert quotation["opportunity"]["relation"]["form_id"] == "opportunity"
    assert [f["key"] for f in quotation["items"]["fields"]] == [
        "product",
        "quantity",
        "unit_price",
        "discount",
        "subtotal",
    ]
    # the formula language has no aggregate over sub-table rows, so the total is entered (money)
    assert quotation["total"]["type"] == "money"
    assert (quotation["discount_rate"]["type"], quotation["approval_status"]["type"]) == ("percent", "approval_status")
    rows = [
        {"product": "CRM 标准版", "quantity": 3, "unit_price": "99.90", "discount": 10},
        {"product": "实施服务", "quantity": "2", "unit_price": "5000"},
    ]
    result = crm_schema.validate_data([quotation["items"]], {"items": rows}, existing=None, ctx=_Context())
    assert result.ok, result.errors
    assert [row["subtotal"] for row in result.values["items"]] == [26973, 1000000]  # fen: 269.73, 10000.00


def test_payment_plan_and_sales_target_forms() -> None:
    forms = _fields(_template())
    plan = forms["payment_plan"]
    assert plan["contract"]["relation"]["form_id"] == "contract"
    assert (plan["installment"]["type"], plan["due_on"]["type"], plan["amount"]["type"]) == ("integer", "date", "money")
    assert [o["label"]["zh-CN"] for o in plan["status"]["options"]] == ["未回款", "部分回款", "已回款"]
    target = forms["sales_target"]
    assert (target["owner_user"]["type"], target["department"]["type"]) == ("user", "department")
    assert target["period"]["filterable"] and target["amount"]["type"] == "money"
    periods = {p: crm_schema.validate_data([target["period"]], {"period": p}, existing=None, ctx=_Context()).ok
               for p in ("2026-12", "2026-Q4", "2026-01", "2026-13", "2026-Q5", "2026Q4", "26-12")}  # fmt: skip
    assert periods == {
        "2026-12": True,
        "2026-Q4": True,
        "2026-01": True,
        "2026-13": False,
        "2026-Q5": False,
        "2026Q4": False,
        "26-12": False,
    }


def test_fields_reports_and_automations_filter_on_are_filterable() -> None:
    forms = _fields(_template())
    for form in NEW_FORMS:
        for field in forms[form].values():
            if field["type"] in ("relation", "select", "stage", "date", "user", "department", "approval_status"):
                assert field.get("filterable"), (form, field["key"])
    assert forms["quotation"]["discount_rate"]["filterable"]  # the > 20 % approval rule


# --------------------------------------------------------------------------------------- upgrading installs


def test_a_new_tenant_gets_the_whole_template(engine: FormEngine, admin: Principal) -> None:
    engine.install_template(admin, _template())
    assert {f.key for f in engine.list_forms(admin)} == {*ORIGINAL_FORMS, *NEW_FORMS}
    assert "first_contacted_on" in _keys(engine, admin, "customer")
    assert "call_minutes" in _keys(engine, admin, "follow_up")


def test_an_older_install_gets_the_new_forms_and_fields_once(engine: FormEngine, repo: Any, admin: Principal) -> None:
    engine.install_template(admin, _old_template())
    assert len(repo.events) == 8
    app, created = engine.install_template(admin, _template())
    assert created is False
    assert {f.key for f in engine.list_forms(admin, app.id)} == {*ORIGINAL_FORMS, *NEW_FORMS}
    customer = engine.get_published(admin, "customer")
    assert customer.version == 2
    keys = [f["key"] for f in customer.fields]
    assert keys[keys.index("last_contacted_at") + 1] == "first_contacted_on"  # placed where the template has it
    follow_up = _keys(engine, admin, "follow_up")
    assert follow_up[follow_up.index("method") + 1] == "call_minutes"
    assert engine.get_published(admin, "contact").version == 1  # nothing new there: no new version
    assert len(repo.events) == 8 + 4 + 2  # the four new forms, customer v2, follow_up v2
    # the new version's relations still name their target forms by id
    key_contact = next(f for f in customer.fields if f["key"] == "key_contact")
    assert key_contact["relation"]["form_id"] == engine.get_form(admin, "contact").id
    engine.install_template(admin, _template())
    assert len(repo.events) == 14 and engine.get_published(admin, "customer").version == 2


def test_fields_a_user_changed_added_or_removed_are_left_alone(engine: FormEngine, admin: Principal) -> None:
    engine.install_template(admin, _old_template())
    form = engine.get_form(admin, "customer")
    fields = [f for f in form.fields if f["key"] != "remark"]  # removed by the user
    level = next(f for f in fields if f["key"] == "level")
    level["label"] = {"zh-CN": "客户等级", "en": "Grade"}  # relabelled
    own = {"key": "credit_code", "type": "text", "label": {"zh-CN": "信用代码", "en": "Credit code"}}
    engine.update_form(admin, "customer", {"fields": [*fields, own]})
    engine.publish_form(admin, "customer")

    engine.install_template(admin, _template())
    published = engine.get_published(admin, "customer")
    by_key = {f["key"]: f for f in published.fields}
    assert published.version == 3
    assert "remark" not in by_key and "first_contacted_on" in by_key and "credit_code" in by_key
    assert by_key["level"]["label"] == {"zh-CN": "客户等级", "en": "Grade"}


def test_a_template_field_the_user_removed_does_not_come_back(engine: FormEngine, repo: Any, admin: Principal) -> None:
    engine.install_template(admin, _template())
    form = engine.get_form(admin, "customer")
    engine.update_form(admin, "customer", {"fields": [f for f in form.fields if f["key"] != "first_contacted_on"]})
    engine.publish_form(admin, "customer")
    events = len(repo.events)
    engine.install_template(admin, _template())
    assert "first_contacted_on" not in _keys(engine, admin, "customer")
    assert len(repo.events) == events


def test_unpublished_draft_changes_are_never_published_by_an_upgrade(
    engine: FormEngine, repo: Any, admin: Principal
) -> None:
    engine.install_template(admin, _old_template())
    form = engine.get_form(admin, "customer")
    half_done = {"key": "wip", "type": "text", "label": "未完成"}
    engine.update_form(admin, "customer", {"fields": [*form.fields, half_done]})
    engine.install_template(admin, _template())
    assert engine.get_published(admin, "customer").version == 1  # left for later
    draft = engine.get_form(admin, "customer")
    assert [f["key"] for f in draft.fields] == [*(f["key"] for f in form.fields), "wip"]  # draft untouched
    assert "call_minutes" in _keys(engine, admin, "follow_up")  # the other forms were upgraded
    # once the user publishes their change, the next install adds the template's field
    engine.publish_form(admin, "customer")
    engine.install_template(admin, _template())
    keys = _keys(engine, admin, "customer")
    assert engine.get_published(admin, "customer").version == 3 and {"wip", "first_contacted_on"} <= set(keys)


def test_a_new_field_that_does_not_fit_the_users_form_is_not_added(engine: FormEngine, admin: Principal) -> None:
    name = {"key": "name", "type": "text", "label": "名称"}
    price = {"key": "price", "type": "money", "label": "价格"}
    old = {"app": {"key": "shop", "name": "商店"}, "forms": [{"key": "item", "name": "商品", "fields": [name, price]}]}
    engine.install_template(admin, old)
    engine.update_form(admin, "item", {"fields": [name]})  # the user removed price
    engine.publish_form(admin, "item")
    taxed = {"key": "taxed", "type": "formula", "label": "含税价", "expression": "price * 1.13"}
    new = copy.deepcopy(old)
    new["forms"][0]["fields"].append(taxed)
    engine.install_template(admin, new)  # no error, and no draft left that cannot be published
    assert engine.get_published(admin, "item").version == 2
    assert [f["key"] for f in engine.get_form(admin, "item").fields] == ["name"]


def test_a_template_form_key_held_by_another_app_is_reported_after_the_rest(
    engine: FormEngine, admin: Principal
) -> None:
    engine.install_template(admin, _old_template())
    mine = engine.create_app(admin, "市场活动", key="marketing")
    engine.create_form(admin, mine.id, {"key": "lead", "name": "活动线索", "fields": [{"key": "n", "type": "text"}]})
    with pytest.raises(Conflict) as err:
        engine.install_template(admin, _template())
    assert "lead" in err.value.detail
    crm = {f.key for f in engine.list_forms(admin, "crm")}
    assert crm == {*ORIGINAL_FORMS, "quotation", "payment_plan", "sales_target"}
    assert "first_contacted_on" in _keys(engine, admin, "customer")
    assert engine.get_form(admin, "lead").app_id == mine.id  # the user's form is untouched
