"""The operation log: what is logged, search, export, settings, and the hash chain under tampering and load."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from crm.record.v1 import record_pb2
from gateway.audit import GENESIS, AuditLog, AuditQuery, entry_hash, verify_command

pytestmark = pytest.mark.integration


def _audit(app: Any) -> AuditLog:
    return app.extensions["crm_gateway"].audit  # type: ignore[no-any-return]


def _search(client: Any, helpers: Any, token: str, **params: Any) -> Any:
    return client.get("/api/v1/audit", query_string=params, headers=helpers.bearer(token))


def _items(client: Any, helpers: Any, token: str, **params: Any) -> list[dict[str, Any]]:
    resp = _search(client, helpers, token, **params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["items"]  # type: ignore[no-any-return]


def _sales_token(client: Any, helpers: Any, admin_token: str, username: str = "sales.audit") -> str:
    resp = client.post(
        "/api/v1/users",
        json={"username": username, "password": "Secret-123", "role": "sales"},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    login = helpers.login(client, username, "Secret-123")
    assert login.status_code == 200, login.get_data(as_text=True)
    return str(login.get_json()["access_token"])


def _append(log: AuditLog, tenant: str, action: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("actor_id", "u1")
    return log.append(tenant, action, **kw)


# ----------------------------------------------------------------------------- what is logged


def test_login_success_and_failure_are_logged(client: Any, helpers: Any, app: Any) -> None:
    bad = client.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": "wrong-password"},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
        headers={"User-Agent": "pytest-browser/1.0"},
    )
    assert bad.status_code == 401
    ghost = helpers.login(client, "nobody", "whatever", address="10.9.9.9")
    assert ghost.status_code == 401
    ok = client.post(
        "/api/v1/auth/login",
        json={"username": "admin", "password": helpers.ADMIN_PASSWORD},
        environ_base={"REMOTE_ADDR": "10.4.5.6"},
        headers={"User-Agent": "pytest-browser/2.0"},
    )
    assert ok.status_code == 200
    token = ok.get_json()["access_token"]

    failures = _items(client, helpers, token, action="auth.login_failed")
    assert [(e["summary"], e["address"]) for e in failures] == [("nobody", "10.9.9.9"), ("admin", "10.1.2.3")]
    wrong = failures[1]
    assert wrong["user_agent"] == "pytest-browser/1.0"
    assert wrong["actor_id"] == "" and wrong["actor_name"] == "admin"
    assert wrong["details"]["username"] == "admin" and wrong["details"]["reason"]
    assert failures[0]["object_id"] == ""  # no such account
    assert "wrong-password" not in json.dumps(failures)

    success = _items(client, helpers, token, action="auth.login")
    assert len(success) == 1
    entry = success[0]
    me = client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()
    assert entry["actor_id"] == me["id"] and entry["object_id"] == me["id"]
    assert entry["address"] == "10.4.5.6" and entry["user_agent"] == "pytest-browser/2.0"
    assert helpers.ADMIN_PASSWORD not in json.dumps(entry)


def test_login_to_a_made_up_tenant_is_not_logged(client: Any, helpers: Any, app: Any) -> None:
    assert helpers.login(client, "admin", "x", tenant="no-such-tenant").status_code == 401
    assert _audit(app).tenants() == []


def test_forwarded_for_is_believed_only_when_configured(client: Any, helpers: Any, app: Any) -> None:
    gw = app.extensions["crm_gateway"]

    def attempt(password: str) -> Any:
        return client.post(
            "/api/v1/auth/login",
            json={"username": "admin", "password": password},
            environ_base={"REMOTE_ADDR": "10.0.0.3"},
            headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.2"},
        )

    attempt("wrong-1")  # no proxy trusted: the socket peer
    gw.settings = replace(gw.settings, trusted_proxies=1)
    attempt("wrong-2")  # one proxy: the entry it appended
    gw.settings = replace(gw.settings, trusted_proxies=2)
    token = attempt(helpers.ADMIN_PASSWORD).get_json()["access_token"]
    assert [e["address"] for e in _items(client, helpers, token, action="auth.login_failed")] == [
        "10.0.0.2",
        "10.0.0.3",
    ]
    assert [e["address"] for e in _items(client, helpers, token, action="auth.login")] == ["203.0.113.7"]


def test_user_changes_are_logged_without_secrets(client: Any, helpers: Any, admin_token: str) -> None:
    created = client.post(
        "/api/v1/users",
        json={"username": "li.lei", "name": "李雷", "password": "Very-Secret-1", "role": "sales"},
        headers=helpers.bearer(admin_token),
    ).get_json()
    patched = client.patch(
        f"/api/v1/users/{created['id']}",
        json={"password": "Other-Secret-2", "name": "李雷雷"},
        headers=helpers.bearer(admin_token),
    )
    assert patched.status_code == 200
    entries = _items(client, helpers, admin_token, object_type="user", object_id=created["id"])
    actions = [e["action"] for e in entries]
    assert actions[-1] == "user.create" and "user.update" in actions
    text = json.dumps(entries, ensure_ascii=False)
    assert "Very-Secret-1" not in text and "Other-Secret-2" not in text and "password_hash" not in text
    me = client.get("/api/v1/me", headers=helpers.bearer(admin_token)).get_json()
    assert all(e["actor_id"] == me["id"] for e in entries)


def test_department_and_role_changes_are_logged(client: Any, helpers: Any, admin_token: str) -> None:
    h = helpers.bearer(admin_token)
    depts = {d["name"]: d for d in client.get("/api/v1/departments", headers=h).get_json()["items"]}
    created = client.post("/api/v1/departments", json={"name": "销售三组"}, headers=h).get_json()
    moved = client.post(
        f"/api/v1/departments/{created['id']}/move", json={"parent_id": depts["销售部"]["id"]}, headers=h
    )
    assert moved.status_code == 200
    entries = _items(client, helpers, admin_token, object_type="department", object_id=created["id"])
    assert [e["action"] for e in entries] == ["department.move", "department.create"]
    assert entries[1]["summary"] == "销售三组"
    assert entries[0]["details"]["changes"] == {"parent_id": depts["销售部"]["id"]}

    permissions = {"default": {"actions": ["view"], "scope": "own"}}
    role = client.post(
        "/api/v1/roles", json={"key": "auditor", "name": "审计员", "permissions": permissions}, headers=h
    )
    assert role.status_code == 201, role.get_data(as_text=True)
    assert client.patch("/api/v1/roles/auditor", json={"name": "审计"}, headers=h).status_code == 200
    assert client.delete("/api/v1/roles/auditor", headers=h).status_code == 204
    roles = _items(client, helpers, admin_token, object_type="role", object_id="auditor")
    assert [e["action"] for e in roles] == ["role.delete", "role.update", "role.create"]
    assert roles[2]["details"]["changes"]["permissions"] == permissions


def test_app_and_form_changes_are_logged(client: Any, helpers: Any, admin_token: str, form_service: Any) -> None:
    form_service.handlers["CreateApp"] = lambda req, p: form_pb2.CreateAppResponse(
        app_json=json.dumps({"id": "a1", "key": "sales", "name": {"zh-CN": "销售", "en": "Sales"}})
    )
    form_service.handlers["CreateForm"] = lambda req, p: form_pb2.CreateFormResponse(
        form_json=json.dumps({"id": "f1", "key": "lead", "name": {"zh-CN": "线索"}})
    )
    form_service.handlers["PublishForm"] = lambda req, p: form_pb2.PublishFormResponse(
        form_json=json.dumps({"id": "f1", "key": "lead"}), version=3
    )
    form_service.handlers["InstallTemplate"] = lambda req, p: form_pb2.InstallTemplateResponse(
        app_json=json.dumps({"id": "a2", "key": "crm"}), created=True
    )
    h = helpers.bearer(admin_token)
    assert client.post("/api/v1/apps", json={"name": "销售"}, headers=h).status_code == 201
    assert client.post("/api/v1/apps/a1/forms", json={"name": {"zh-CN": "线索"}}, headers=h).status_code == 201
    assert client.post("/api/v1/forms/f1/publish", headers=h).status_code == 200
    assert client.post("/api/v1/templates/crm/install", headers=h).status_code == 200
    got = [(e["action"], e["object_id"], e["summary"]) for e in _items(client, helpers, admin_token)[:4]]
    assert got == [
        ("template.install", "crm", "crm"),
        ("form.publish", "f1", "lead"),
        ("form.create", "f1", "线索"),
        ("app.create", "a1", "销售"),
    ]
    [publish] = _items(client, helpers, admin_token, action="form.publish")
    assert publish["details"]["version"] == 3
    [install] = _items(client, helpers, admin_token, action="template.install")
    assert install["details"]["created"] is True


def test_bulk_create_is_logged_as_an_import(client: Any, helpers: Any, admin_token: str, record_service: Any) -> None:
    record_service.handlers["BulkCreateRecords"] = lambda req, p: record_pb2.BulkCreateRecordsResponse(
        record_ids=["r1", "r2", "r3"]
    )
    resp = client.post(
        "/api/v1/forms/customer/records/bulk",
        json={"records": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
        headers=helpers.bearer(admin_token),
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)
    [entry] = _items(client, helpers, admin_token, action="record.import")
    assert entry["object_type"] == "form" and entry["object_id"] == "customer"
    assert entry["details"]["rows"] == 3


def test_sensitive_form_reads_are_logged(
    client: Any, helpers: Any, admin_token: str, form_service: Any, record_service: Any
) -> None:
    forms = {"contract": {"id": "f-contract", "key": "contract"}, "customer": {"id": "f-customer", "key": "customer"}}

    def get_form(req: Any, _p: Any) -> Any:
        form = forms.get(req.form_id) or next((f for f in forms.values() if f["id"] == req.form_id), None)
        if form is None:
            raise helpers.FakeRpcError(grpc.StatusCode.NOT_FOUND, {"code": "form_not_found"})
        return form_pb2.GetFormResponse(form_json=json.dumps(form))

    form_service.handlers["GetForm"] = get_form
    records = {"r-1": "f-contract", "r-2": "f-customer"}
    record_service.handlers["GetRecord"] = lambda req, p: record_pb2.GetRecordResponse(
        record_json=json.dumps({"id": req.record_id, "form_id": records[req.record_id], "data": {}})
    )
    h = helpers.bearer(admin_token)
    assert client.get("/api/v1/audit/settings", headers=h).get_json()["sensitive_forms"] == []
    bad = client.put("/api/v1/audit/settings", json={"sensitive_forms": ["contract", "nope"]}, headers=h)
    assert bad.status_code == 422
    assert bad.get_json()["errors"][0]["field"] == "sensitive_forms.1"
    put = client.put("/api/v1/audit/settings", json={"sensitive_forms": ["contract"]}, headers=h)
    assert put.status_code == 200 and put.get_json()["sensitive_forms"] == ["contract"]
    assert client.get("/api/v1/audit/settings", headers=h).get_json()["sensitive_forms"] == ["contract"]

    assert client.get("/api/v1/records/r-1", headers=h).status_code == 200
    assert client.get("/api/v1/records/r-2", headers=h).status_code == 200
    views = _items(client, helpers, admin_token, action="record.view")
    assert [(e["object_id"], e["details"]["form_id"]) for e in views] == [("r-1", "f-contract")]
    [change] = _items(client, helpers, admin_token, action="audit.settings_update")
    assert change["details"] == {"before": [], "after": ["contract"]}


# ----------------------------------------------------------------------------- access


def test_no_token_is_401_and_non_admin_is_403(client: Any, helpers: Any, admin_token: str) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/export", "/api/v1/audit/verify", "/api/v1/audit/settings"):
        assert client.get(path).status_code == 401, path
    sales = _sales_token(client, helpers, admin_token)
    for path in ("/api/v1/audit", "/api/v1/audit/export", "/api/v1/audit/verify", "/api/v1/audit/settings"):
        resp = client.get(path, headers=helpers.bearer(sales, "en"))
        assert resp.status_code == 403, path
        assert resp.mimetype == "application/problem+json"
    assert (
        client.put("/api/v1/audit/settings", json={"sensitive_forms": []}, headers=helpers.bearer(sales)).status_code
        == 403
    )


def test_entries_cannot_be_changed_or_deleted_through_the_api(
    client: Any, helpers: Any, admin_token: str, app: Any
) -> None:
    entry = _append(_audit(app), "default", "user.update")
    h = helpers.bearer(admin_token)
    for method in (client.put, client.patch, client.delete):
        assert method("/api/v1/audit", headers=h).status_code == 405
        assert method(f"/api/v1/audit/{entry['seq']}", headers=h).status_code in (404, 405)
    spec = client.get("/api/v1/openapi.json").get_json()
    audit_paths = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/v1/audit")}
    methods = {m for ops in audit_paths.values() for m in ops if m in ("get", "put", "patch", "delete", "post")}
    assert methods == {"get", "put"}  # the only PUT is /audit/settings
    assert [p for p, ops in audit_paths.items() if "put" in ops] == ["/api/v1/audit/settings"]
    tag = next(t for t in spec["tags"] if t["name"] == "Audit")
    assert "no endpoint that edits or deletes" in tag["description"]


def test_another_tenants_entries_are_invisible(client: Any, helpers: Any, admin_token: str, app: Any) -> None:
    log = _audit(app)
    other = _append(log, "acme", "user.update", object_type="user", object_id="acme-user", summary="secret of acme")
    assert other["seq"] == 1
    mine = _items(client, helpers, admin_token)
    assert mine and all(e["summary"] != "secret of acme" for e in mine)
    assert _items(client, helpers, admin_token, object_id="acme-user") == []
    assert _items(client, helpers, admin_token, actor_id="u1") == []
    verify = client.get("/api/v1/audit/verify", headers=helpers.bearer(admin_token)).get_json()
    assert verify["tenant_id"] == "default"
    csv_text = client.get("/api/v1/audit/export", headers=helpers.bearer(admin_token)).get_data(as_text=True)
    assert "secret of acme" not in csv_text


# ----------------------------------------------------------------------------- search


def test_search_filters_and_cursor(client: Any, helpers: Any, admin_token: str, app: Any) -> None:
    log = _audit(app)
    tenant = "default"
    for i in range(12):
        _append(
            log, tenant, "user.update", actor_id="alice", object_type="user", object_id=f"u{i % 3}", summary=f"a{i}"
        )
        _append(log, tenant, "role.update", actor_id="bob", object_type="role", object_id="sales", summary=f"b{i}")
    by_action = _items(client, helpers, admin_token, action="role.update", page_size=200)
    assert [e["summary"] for e in by_action] == [f"b{i}" for i in reversed(range(12))]
    by_actor = _items(client, helpers, admin_token, actor_id="alice", page_size=200)
    assert len(by_actor) == 12 and {e["action"] for e in by_actor} == {"user.update"}
    by_object = _items(client, helpers, admin_token, object_type="user", object_id="u1", page_size=200)
    assert [e["summary"] for e in by_object] == ["a10", "a7", "a4", "a1"]
    combined = _items(client, helpers, admin_token, actor_id="bob", object_type="user")
    assert combined == []
    only_id = _items(client, helpers, admin_token, object_id="u2", action="user.update", page_size=200)
    assert [e["summary"] for e in only_id] == ["a11", "a8", "a5", "a2"]

    # cursor paging: newest first, no overlap, no gap
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"actor_id": "alice", "page_size": 5}
        if cursor:
            params["cursor"] = cursor
        body = _search(client, helpers, admin_token, **params).get_json()
        seen.extend(e["seq"] for e in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 12 and seen == sorted(seen, reverse=True) and len(set(seen)) == 12

    bad = _search(client, helpers, admin_token, cursor="abc")
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "cursor"
    assert _search(client, helpers, admin_token, page_size=500).status_code == 422
    assert _search(client, helpers, admin_token, **{"from": "yesterday"}).status_code == 422


def test_search_by_time_range(client: Any, helpers: Any, admin_token: str, gw_store: Any) -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    ticks = iter(range(1000))
    log = AuditLog(
        gw_store.audit_log,
        gw_store.audit_head,
        gw_store.audit_settings,
        clock=lambda: start + timedelta(hours=next(ticks)),
    )
    tenant = "default"
    # the clock runs from 2027-01-01T00:00Z one hour per entry, after the admin's login (real time)
    for i in range(10):
        _append(log, tenant, "department.update", summary=f"d{i}")
    in_range = _items(
        client,
        helpers,
        admin_token,
        action="department.update",
        **{"from": "2027-01-01T03:00:00Z", "to": "2027-01-01T06:00:00Z"},
    )
    assert [e["summary"] for e in in_range] == ["d5", "d4", "d3"]
    # no offset: the tenant's time zone (Asia/Shanghai, UTC+8)
    local = _items(client, helpers, admin_token, action="department.update", **{"from": "2027-01-01T15:00:00"})
    assert [e["summary"] for e in local] == ["d9", "d8", "d7"]


def test_export_is_csv_with_bom_and_is_logged(client: Any, helpers: Any, admin_token: str, app: Any) -> None:
    log = _audit(app)
    _append(log, "default", "department.create", actor_name="张三", object_type="department", summary="销售三组")
    _append(log, "default", "user.update", actor_name="=cmd", object_type="user", summary="x", details={"k": "值"})
    resp = client.get("/api/v1/audit/export", headers=helpers.bearer(admin_token))
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = resp.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "序号" and len(rows[0]) == 13
    assert rows[1][3] == "'=cmd" and json.loads(rows[1][8]) == {"k": "值"}
    assert rows[2][3] == "张三" and rows[2][7] == "销售三组"
    assert rows[-1][4] == "auth.login"
    assert [int(r[0]) for r in rows[1:]] == sorted((int(r[0]) for r in rows[1:]), reverse=True)
    filtered = client.get(
        "/api/v1/audit/export", query_string={"action": "department.create"}, headers=helpers.bearer(admin_token, "en")
    )
    lines = list(csv.reader(io.StringIO(filtered.get_data().decode("utf-8-sig"))))
    assert lines[0][0] == "Seq" and len(lines) == 2
    exports = _items(client, helpers, admin_token, action="audit.export")
    assert [e["details"]["rows"] for e in exports] == [1, len(rows) - 1]
    assert exports[0]["details"]["filters"] == {"action": "department.create"}
    assert exports[0]["details"]["complete"] is True


# ----------------------------------------------------------------------------- the chain


def test_chain_links_every_entry(app: Any) -> None:
    log = _audit(app)
    first = _append(log, "t-chain", "a.one")
    second = _append(log, "t-chain", "a.two", details={"password": "p", "nested": {"refresh_token": "t", "ok": 1}})
    assert (first["seq"], first["prev_hash"]) == (1, GENESIS)
    assert (second["seq"], second["prev_hash"]) == (2, first["hash"])
    assert entry_hash(second) == second["hash"]
    assert json.loads(second["details"]) == {
        "password": "[redacted]",
        "nested": {"refresh_token": "[redacted]", "ok": 1},
    }
    result = log.verify("t-chain")
    assert (result.ok, result.entries, result.first_broken_seq) == (True, 2, None)


def test_verify_reports_a_tampered_entry(client: Any, helpers: Any, admin_token: str, app: Any, gw_store: Any) -> None:
    log = _audit(app)
    for i in range(5):
        _append(log, "default", "user.update", summary=f"s{i}")
    h = helpers.bearer(admin_token)
    good = client.get("/api/v1/audit/verify", headers=h).get_json()
    assert good["ok"] is True and good["first_broken_seq"] is None and good["entries"] >= 5
    victim = gw_store.audit_log.find_one({"tenant_id": "default", "summary": "s2"})
    gw_store.audit_log.update_one({"_id": victim["_id"]}, {"$set": {"summary": "nothing happened"}})
    bad = client.get("/api/v1/audit/verify", headers=h).get_json()
    assert bad == {
        "tenant_id": "default",
        "ok": False,
        "entries": victim["seq"] - 1,
        "first_broken_seq": victim["seq"],
        "reason": "hash",
    }
    out = io.StringIO()
    assert verify_command(log, "default", out) == 1
    assert f"first_broken_seq={victim['seq']}" in out.getvalue()


def test_verify_reports_a_deleted_entry(app: Any, gw_store: Any) -> None:
    log = _audit(app)
    for i in range(6):
        _append(log, "t-del", "x.y", summary=str(i))
    gw_store.audit_log.delete_one({"tenant_id": "t-del", "seq": 4})
    result = log.verify("t-del")
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 4, "missing")
    # the newest entry removed: the head still knows it
    for _ in range(3):
        _append(log, "t-tail", "x.y")
    gw_store.audit_log.delete_one({"tenant_id": "t-tail", "seq": 3})
    assert log.verify("t-tail").first_broken_seq == 3
    # a forged replacement with the right seq but a recomputed hash breaks the link after it
    doc = gw_store.audit_log.find_one({"tenant_id": "t-del", "seq": 5})
    forged = {**doc, "summary": "forged"}
    forged["hash"] = entry_hash(forged)
    gw_store.audit_log.replace_one({"_id": doc["_id"]}, forged)
    gw_store.audit_log.insert_one({**doc, "_id": "re-added", "seq": 4, "summary": "re-added"})
    assert log.verify("t-del").first_broken_seq == 4


def test_cli_verify(settings: Any, gw_store: Any, app: Any) -> None:
    log = _audit(app)
    for _ in range(3):
        _append(log, "default", "user.update")
    env = {
        **os.environ,
        "MONGO_URL": settings.mongo_url,
        "GATEWAY_DB": settings.gateway_db,
        "JWT_SECRET": settings.jwt_secret,
    }
    ok = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--tenant", "default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "OK tenant=default entries=3"
    gw_store.audit_log.delete_one({"tenant_id": "default", "seq": 2})
    broken = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert broken.returncode == 1
    assert "BROKEN tenant=default first_broken_seq=2" in broken.stdout


def test_concurrent_appends_keep_one_valid_chain(settings: Any, gw_store: Any) -> None:
    from gateway.store import GatewayStore

    # separate clients, as separate gunicorn workers would have
    stores = [GatewayStore.connect(settings.mongo_url, settings.gateway_db) for _ in range(4)]
    logs = [AuditLog(s.audit_log, s.audit_head, s.audit_settings) for s in stores]
    errors: list[BaseException] = []
    per_thread = 25

    def work(n: int) -> None:
        try:
            for i in range(per_thread):
                logs[n % len(logs)].append("t-load", "load.test", actor_id=f"w{n}", summary=str(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert errors == []
        total = 8 * per_thread
        seqs = sorted(d["seq"] for d in gw_store.audit_log.find({"tenant_id": "t-load"}, {"seq": 1}))
        assert seqs == list(range(1, total + 1))
        result = logs[0].verify("t-load")
        assert (result.ok, result.entries) == (True, total)
        assert gw_store.audit_head.find_one({"_id": "t-load"})["seq"] == total
    finally:
        for s in stores:
            s.db.client.close()


def test_a_stale_head_is_walked_past(gw_store: Any) -> None:
    log = AuditLog(gw_store.audit_log, gw_store.audit_head, gw_store.audit_settings)
    for _ in range(3):
        log.append("t-stale", "x.y", actor_id="a")
    # a worker died between its insert and the head update
    gw_store.audit_head.update_one({"_id": "t-stale"}, {"$set": {"seq": 1}})
    entry = log.append("t-stale", "x.y", actor_id="a")
    assert entry["seq"] == 4
    assert log.verify("t-stale").ok
    assert [e["seq"] for e in log.search("t-stale", AuditQuery()).items] == [4, 3, 2, 1]
