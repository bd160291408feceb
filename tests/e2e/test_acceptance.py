"""End-to-end: the acceptance list of the foundation, through the REST gateway.

The platform runs as separate processes (store, form, record, relay, gateway)
against the real RabbitMQ, exactly as `make run` starts it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Client
from tests.support.launcher import Platform

pytestmark = pytest.mark.e2e


def _uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def create(c: Client, form: str, data: dict[str, Any]) -> dict[str, Any]:
    return c.ok("POST", f"/forms/{form}/records", json={"data": data})


def test_template_is_installed_with_all_forms(admin: Client) -> None:
    apps = admin.ok("GET", "/apps")
    items = apps["items"] if isinstance(apps, dict) else apps
    crm = next(a for a in items if a["key"] == "crm")
    forms = admin.ok("GET", f"/apps/{crm['id']}/forms")
    forms = forms["items"] if isinstance(forms, dict) else forms
    keys = {f["key"] for f in forms}
    assert {"customer", "contact", "opportunity", "follow_up", "contract", "payment", "ticket", "task"} <= keys
    customer = admin.ok("GET", "/forms/customer/published")
    field_keys = {f["key"] for f in customer["fields"]}
    assert {"customer_name", "industry", "level", "region", "tags", "key_contact"} <= field_keys


def test_field_types_catalogue_has_at_least_35(admin: Client) -> None:
    types = admin.ok("GET", "/field-types")
    items = types["items"] if isinstance(types, dict) else types
    assert len(items) >= 35


def test_crud_versions_soft_delete_and_restore(admin: Client) -> None:
    rec = create(admin, "customer", {"customer_name": _uniq("上海测试贸易有限公司"), "level": "A"})
    assert rec["version"] == 1 and rec["data"]["level"] == "A"
    got = admin.ok("GET", f"/records/{rec['id']}")
    assert got["data"]["customer_name"] == rec["data"]["customer_name"]
    upd = admin.ok("PATCH", f"/records/{rec['id']}", json={"data": {"level": "B"}, "version": 1})
    assert upd["version"] == 2 and upd["data"]["level"] == "B"
    stale = admin.request("PATCH", f"/records/{rec['id']}", json={"data": {"level": "C"}, "version": 1})
    assert stale.status_code == 409
    assert stale.headers["Content-Type"].startswith("application/problem+json")
    assert admin.ok("GET", f"/records/{rec['id']}")["data"]["level"] == "B"
    admin.ok("DELETE", f"/records/{rec['id']}")
    assert admin.request("GET", f"/records/{rec['id']}").status_code == 404
    admin.ok("POST", f"/records/{rec['id']}/restore")
    assert admin.ok("GET", f"/records/{rec['id']}")["data"]["level"] == "B"
    history = admin.ok("GET", f"/records/{rec['id']}/history")
    entries = history["items"] if isinstance(history, dict) else history
    actions = [e["action"] for e in entries]
    assert {"created", "updated", "deleted", "restored"} <= set(actions)
    update = next(e for e in entries if e["action"] == "updated")
    change = next(ch for ch in update["changes"] if ch["field"] == "level")
    assert (change["old"], change["new"]) == ("A", "B")
    assert update["actor"]


def test_add_and_remove_a_field_then_publish(admin: Client) -> None:
    name = _uniq("深圳字段测试科技有限公司")
    old = create(admin, "customer", {"customer_name": name, "level": "C"})
    form = admin.ok("GET", "/forms/customer")
    draft = form.get("fields") or form["draft"]["fields"]
    revision = form.get("revision", 0)
    credit = {
        "key": "credit_rating",
        "type": "select",
        "label": {"zh-CN": "信用等级", "en": "Credit rating"},
        "options": [{"value": v, "label": {"zh-CN": v, "en": v}} for v in ("AAA", "AA", "A")],
        "filterable": True,
    }
    admin.ok("PATCH", "/forms/customer", json={"fields": [*draft, credit], "expected_revision": revision})
    admin.ok("POST", "/forms/customer/publish")
    bad = admin.request(
        "POST", "/forms/customer/records", json={"data": {"customer_name": _uniq("x"), "credit_rating": "Z"}}
    )
    assert bad.status_code == 422
    assert any(e["field"] == "credit_rating" for e in bad.json()["errors"])
    good = create(admin, "customer", {"customer_name": _uniq("杭州信用测试有限公司"), "credit_rating": "AA"})
    assert good["data"]["credit_rating"] == "AA"
    assert admin.ok("GET", f"/records/{old['id']}")["data"]["level"] == "C"
    # remove it again: new input refuses it, the old value stays in history
    form = admin.ok("GET", "/forms/customer")
    draft = [f for f in (form.get("fields") or form["draft"]["fields"]) if f["key"] != "credit_rating"]
    admin.ok("PATCH", "/forms/customer", json={"fields": draft, "expected_revision": form.get("revision", 0)})
    admin.ok("POST", "/forms/customer/publish")
    # the record service learns of the new version from the form.published event (well under a second)
    deadline = time.monotonic() + 10
    while True:
        refused = admin.request(
            "POST", "/forms/customer/records", json={"data": {"customer_name": _uniq("y"), "credit_rating": "AA"}}
        )
        if refused.status_code != 201 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["rule"] == "unknown_field"
    history = admin.ok("GET", f"/records/{good['id']}/history")
    entries = history["items"] if isinstance(history, dict) else history
    assert "AA" in json.dumps(entries, ensure_ascii=False)


def test_own_form_from_scratch(admin: Client) -> None:
    app = admin.ok("POST", "/apps", json={"name": {"zh-CN": "设备管理", "en": "Equipment"}, "key": _uniq("eq")})
    key = _uniq("device")
    admin.ok(
        "POST",
        f"/apps/{app['id']}/forms",
        json={
            "key": key,
            "name": {"zh-CN": "设备", "en": "Device"},
            "fields": [
                {
                    "key": "serial",
                    "type": "text",
                    "label": {"zh-CN": "序列号", "en": "Serial"},
                    "required": True,
                    "unique": True,
                },
                {"key": "price", "type": "money", "label": {"zh-CN": "价格", "en": "Price"}},
                {
                    "key": "bought_on",
                    "type": "date",
                    "label": {"zh-CN": "购买日期", "en": "Bought on"},
                    "filterable": True,
                },
            ],
        },
    )
    admin.ok("POST", f"/forms/{key}/publish")
    rec = create(admin, key, {"serial": "SN-001", "price": "1234.5", "bought_on": "2026-11-01"})
    assert rec["data"]["price"] == "1234.50"
    dup = admin.request("POST", f"/forms/{key}/records", json={"data": {"serial": " sn-001 "}})
    assert dup.status_code == 409
    assert rec["id"] in dup.text


def test_list_filter_sort_cursor_count_and_keyword(admin: Client) -> None:
    tag = uuid.uuid4().hex[:4]
    names = [f"北京华信{tag}恒通科技有限公司", f"广州华信{tag}物流有限公司", f"成都天府{tag}软件有限公司"]
    for n, level in zip(names, ["A", "B", "A"], strict=True):
        create(admin, "customer", {"customer_name": n, "level": level})
    found = admin.ok("GET", "/forms/customer/records", params={"q": "华信" + tag})
    got = {r["data"]["customer_name"] for r in found["items"]}
    assert got == {names[0], names[1]}
    # keyword pages (keyword order, cursor): one per page, then the end
    first = admin.ok("GET", "/forms/customer/records", params={"q": "华信" + tag, "page_size": 1})
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = admin.ok(
        "GET", "/forms/customer/records", params={"q": "华信" + tag, "page_size": 1, "cursor": first["next_cursor"]}
    )
    assert len(second["items"]) == 1 and not second["next_cursor"]
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {r["id"] for r in found["items"]}
    found = admin.ok("GET", "/forms/customer/records", params={"q": "华信"})
    assert {names[0], names[1]} <= {r["data"]["customer_name"] for r in found["items"]} or found["next_cursor"]
    flt = {
        "and": [
            {"field": "level", "op": "eq", "value": "A"},
            {"field": "customer_name", "op": "contains", "value": tag},
        ]
    }
    page = admin.ok(
        "GET", "/forms/customer/records", params={"filter": json.dumps(flt), "sort": "-created_at", "page_size": 1}
    )
    assert len(page["items"]) == 1 and page["total"] == 2 and page["next_cursor"]
    first = page["items"][0]["data"]["customer_name"]
    page2 = admin.ok(
        "GET",
        "/forms/customer/records",
        params={"filter": json.dumps(flt), "sort": "-created_at", "page_size": 1, "cursor": page["next_cursor"]},
    )
    assert [r["data"]["customer_name"] for r in page2["items"]] != [first]
    assert {first, page2["items"][0]["data"]["customer_name"]} == {names[0], names[2]}
    rel = {"and": [{"field": "created_at", "op": "today"}, {"field": "customer_name", "op": "contains", "value": tag}]}
    today = admin.ok("GET", "/forms/customer/records", params={"filter": json.dumps(rel), "count": "exact"})
    assert today["total"] == 3


def test_bad_input_gets_clear_errors(admin: Client, platform: Platform) -> None:
    raw = admin.http.post(
        admin.base + "/forms/customer/records",
        data="{not json",
        headers=admin.headers({"Content-Type": "application/json"}),
    )
    assert raw.status_code == 400
    wrong = admin.request("POST", "/forms/customer/records", json={"data": {"customer_name": 12345, "level": "Z"}})
    assert wrong.status_code == 422
    problem = wrong.json()
    fields = {e["field"]: e for e in problem["errors"]}
    assert "level" in fields and fields["level"]["rule"] and fields["level"]["message"]
    en = Client(platform.base_url, admin.token, locale="en")
    wrong_en = en.request("POST", "/forms/customer/records", json={"data": {"customer_name": _uniq("e"), "level": "Z"}})
    assert wrong_en.json()["errors"][0]["message"] != fields["level"]["message"]
    for body in ({"customer_name": _uniq("u"), "nope": 1}, {"customer_name": _uniq("s"), "owner_id": "x"}):
        assert admin.request("POST", "/forms/customer/records", json={"data": body}).status_code == 422
    injected = admin.request("POST", "/forms/customer/records", json={"data": {"customer_name": {"$ne": None}}})
    assert injected.status_code == 422
    flt = {"field": "customer_name", "op": "eq", "value": {"$where": "sleep(1000)"}}
    assert admin.request("GET", "/forms/customer/records", params={"filter": json.dumps(flt)}).status_code in (400, 422)
    big = admin.request("POST", "/forms/customer/records", json={"data": {"remark": "x" * (1024 * 1024 + 10)}})
    assert big.status_code == 413
    # the connection is closed after a 413, so the next request on the session works
    assert admin.request("GET", "/me").status_code == 200


def test_unique_customer_name_after_normalisation(admin: Client) -> None:
    name = _uniq("南京（金桥）贸易有限公司")
    first = create(admin, "customer", {"customer_name": name})
    clash = admin.request(
        "POST",
        "/forms/customer/records",
        json={"data": {"customer_name": "  " + name.replace("（", "(").replace("）", ")")}},
    )
    assert clash.status_code == 409
    assert first["id"] in clash.text


def test_customer_360_view(admin: Client) -> None:
    cust = create(admin, "customer", {"customer_name": _uniq("武汉三六零科技有限公司")})
    contact = create(admin, "contact", {"name": "张三", "customer": cust["id"], "mobile": "+86-138 0013 8000"})
    assert contact["data"]["mobile"] == "13800138000"
    opp = create(admin, "opportunity", {"name": "ERP 项目", "customer": cust["id"], "stage": "initial_contact"})
    create(
        admin,
        "follow_up",
        {
            "customer": cust["id"],
            "opportunity": opp["id"],
            "followed_at": "2026-11-20T10:00:00+08:00",
            "summary": "电话沟通需求",
        },
    )
    contract = create(admin, "contract", {"customer": cust["id"], "opportunity": opp["id"], "amount": "120000"})
    assert contract["data"]["contract_no"].startswith("HT-")
    create(admin, "payment", {"contract": contract["id"], "amount": "50000", "paid_on": "2026-11-20"})
    view = admin.ok("GET", f"/records/{cust['id']}/360")
    text = json.dumps(view, ensure_ascii=False)
    for rid in (contact["id"], opp["id"], contract["id"]):
        assert rid in text
    assert "50000" in text or "50,000" in text
    assert view.get("timeline")
    got = admin.ok("GET", f"/records/{cust['id']}")
    assert got["data"].get("total_contract_amount") in ("120000.00", 12000000, "120000")


def test_duplicates_and_merge(admin: Client) -> None:
    tag = uuid.uuid4().hex[:5]
    a = create(admin, "customer", {"customer_name": f"苏州明德{tag}电子有限公司", "level": "A"})
    b = create(
        admin,
        "customer",
        {"customer_name": f"苏州明德{tag}电子", "industry": None} if False else {"customer_name": f"苏州明德{tag}电子"},
    )
    contact = create(admin, "contact", {"name": "李四", "customer": b["id"]})
    dups = admin.ok("POST", "/forms/customer/duplicates", json={"record_id": a["id"]})
    items = dups["items"] if isinstance(dups, dict) else dups
    assert b["id"] in json.dumps(items)
    merged = admin.ok("POST", "/records/merge", json={"winner_id": a["id"], "loser_id": b["id"]})
    assert merged["id"] == a["id"]
    moved = admin.ok("GET", f"/records/{contact['id']}")
    assert moved["data"]["customer"]["id"] == a["id"]
    assert admin.request("GET", f"/records/{b['id']}").status_code == 404
    for rid in (a["id"], b["id"]):
        hist = admin.ok("GET", f"/records/{rid}/history")
        entries = hist["items"] if isinstance(hist, dict) else hist
        assert any("merge" in e["action"] for e in entries)


def test_data_scope_and_tenant_isolation(admin: Client, platform: Platform) -> None:
    depts = admin.ok("GET", "/departments")
    items = depts["items"] if isinstance(depts, dict) else depts
    group1 = next(d for d in items if d["name"] == "销售一组")
    group2 = next(d for d in items if d["name"] == "销售二组")
    sales_dept = next(d for d in items if d["name"] == "销售部")
    pw = "S3cret-pass!"
    names = {r: _uniq(r) for r in ("s1", "s2", "m1")}
    admin.ok(
        "POST",
        "/users",
        json={
            "username": names["s1"],
            "password": pw,
            "role": "sales",
            "department_id": group1["id"],
            "name": "销售甲",
        },
    )
    admin.ok(
        "POST",
        "/users",
        json={
            "username": names["s2"],
            "password": pw,
            "role": "sales",
            "department_id": group2["id"],
            "name": "销售乙",
        },
    )
    admin.ok(
        "POST",
        "/users",
        json={
            "username": names["m1"],
            "password": pw,
            "role": "manager",
            "department_id": sales_dept["id"],
            "name": "经理",
        },
    )
    s1, s2, m1 = (Client(platform.base_url) for _ in range(3))
    s1.login(names["s1"], pw)
    s2.login(names["s2"], pw)
    m1.login(names["m1"], pw)
    mine = create(s1, "customer", {"customer_name": _uniq("重庆范围测试有限公司")})
    assert s2.request("GET", f"/records/{mine['id']}").status_code == 404
    assert s1.ok("GET", f"/records/{mine['id']}")["id"] == mine["id"]
    assert m1.ok("GET", f"/records/{mine['id']}")["id"] == mine["id"]
    listed = s2.ok("GET", "/forms/customer/records", params={"q": mine["data"]["customer_name"][:8]})
    assert mine["id"] not in {r["id"] for r in listed["items"]}
    assert s1.request("POST", "/users", json={"username": "x", "password": pw, "role": "admin"}).status_code == 403


def test_login_throttle_and_refresh(platform: Platform) -> None:
    c = Client(platform.base_url)
    body = c.login("admin", platform.admin_password)
    refreshed = c.ok("POST", "/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed["access_token"]
    reuse = c.request("POST", "/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert reuse.status_code == 401
    victim = _uniq("ghost")
    codes = [
        c.request("POST", "/auth/login", json={"username": victim, "password": "wrong"}).status_code for _ in range(21)
    ]
    assert codes[:20] == [401] * 20 and codes[20] == 429
    assert c.request("GET", "/me").status_code == 401 or c.token


def test_openapi_health_and_metrics(platform: Platform) -> None:
    import requests

    doc = requests.get(platform.base_url + "/api/v1/openapi.json", timeout=30).json()
    assert doc["openapi"].startswith("3.")
    assert any(p.endswith("/records") for p in doc["paths"])
    assert requests.get(platform.base_url + "/api/v1/docs", timeout=30).status_code == 200
    assert requests.get(platform.base_url + "/healthz", timeout=30).status_code == 200
    assert requests.get(platform.base_url + "/readyz", timeout=30).status_code == 200
    assert (
        "crm_" in requests.get(platform.base_url + "/metrics", timeout=30).text
        or requests.get(platform.base_url + "/metrics", timeout=30).status_code == 200
    )
