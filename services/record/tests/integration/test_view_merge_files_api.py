"""The extra RPCs through the real gRPC server on SecantusDB (+ RabbitMQ for the merge event).

360° view, duplicates, merge and attachments. The server is built with the
production wiring (build_record_server) over a form source that can list a
tenant's forms.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pika
import pytest
from cryptography.fernet import Fernet
from pymongo import MongoClient
from pymongo.database import Database

from crm.record.v1 import record_pb2, record_pb2_grpc
from crm_runtime.access import RoleDefinition, compile_policy
from crm_runtime.client import channel, problem_from_error
from crm_runtime.principal import Principal
from crm_runtime.testing import StoreProcess, amqp_url
from record_service.crypto import FernetCipher
from record_service.domain.forms import FormSchema, StaticFormSource
from record_service.server import RecordServer, build_record_server, build_relay
from services.record.tests.integration.support import Api

pytestmark = pytest.mark.integration
DB_NAME = "crm_record_it"  # the record suite's database (conftest's `store` fixture)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(64))
PDF = b"%PDF-1.7\n" + b"0" * 64
EXE = b"MZ\x90\x00" + b"\x00" * 64


class ListingFormSource(StaticFormSource):
    """A static form source that can also list a tenant's latest published forms."""

    def __init__(self) -> None:
        super().__init__()
        self._by_tenant: dict[str, dict[str, FormSchema]] = {}

    def add(self, form: FormSchema) -> None:
        super().add(form)
        self._by_tenant.setdefault(form.tenant_id, {})[form.id] = form

    def list_published(self, tenant_id: str) -> list[FormSchema]:
        return list(self._by_tenant.get(tenant_id, {}).values())


def label(zh: str, en: str) -> dict[str, str]:
    return {"zh-CN": zh, "en": en}


def rel(key: str, target: str, zh: str, many: bool = False) -> dict[str, Any]:
    return {"key": key, "type": "relation", "label": label(zh, key), "relation": {"form_id": target, "many": many}}


def form_defs() -> dict[str, tuple[str, str, list[dict[str, Any]]]]:
    """key -> (name zh, title field, fields): a small CRM whose relations name their targets by key."""
    return {
        "customer": (
            "客户",
            "customer_name",
            [
                {"key": "customer_name", "type": "text", "label": label("客户名称", "Customer name"), "required": True,
                 "unique": True, "dedupe": True},
                {"key": "mobile", "type": "mobile", "label": label("手机", "Mobile")},
                {"key": "tax_no", "type": "text", "label": label("税号", "Tax no"), "unique": True},
                {"key": "level", "type": "select", "label": label("客户分级", "Level"),
                 "options": [{"value": v, "label": label(v, v)} for v in ("A", "B", "C")]},
                {"key": "logo", "type": "image", "label": label("标志", "Logo"), "max_size": 2000},
                {"key": "docs", "type": "attachment", "label": label("资料", "Documents"), "accept": [".pdf"]},
                rel("parent", "customer", "上级客户"),
            ],
        ),
        "contact": ("联系人", "name", [
            {"key": "name", "type": "text", "label": label("姓名", "Name"), "required": True},
            rel("customer", "customer", "客户"),
        ]),
        "opportunity": ("商机", "name", [
            {"key": "name", "type": "text", "label": label("商机名称", "Name"), "required": True},
            rel("customer", "customer", "客户"),
        ]),
        "contract": ("合同", "name", [
            {"key": "name", "type": "text", "label": label("合同名称", "Name"), "required": True},
            rel("customer", "customer", "客户"),
        ]),
        "payment": ("回款", "name", [
            {"key": "name", "type": "text", "label": label("回款", "Name"), "required": True},
            rel("contract", "contract", "合同"),
            {"key": "amount", "type": "money", "label": label("金额", "Amount")},
        ]),
        "task": ("销售任务", "title", [
            {"key": "title", "type": "text", "label": label("标题", "Title"), "required": True},
            rel("customer", "customer", "客户"),
            rel("contacts", "contact", "联系人", many=True),
            rel("also_customers", "customer", "相关客户", many=True),
        ]),
    }  # fmt: skip


@pytest.fixture(scope="module")
def listing_forms() -> ListingFormSource:
    return ListingFormSource()


@pytest.fixture(scope="module")
def xdb(store: StoreProcess) -> Iterator[Database[Any]]:
    """A client of our own: connect_store elsewhere in the session may close the shared `db` fixture's client."""
    client: MongoClient[Any] = MongoClient(store.url, tz_aware=True)
    yield client[DB_NAME]
    client.close()


@pytest.fixture(scope="module")
def related_server(xdb: Database[Any], listing_forms: ListingFormSource) -> Iterator[RecordServer]:
    server = build_record_server(
        xdb,
        port=0,
        host="127.0.0.1",
        forms=listing_forms,
        cipher=FernetCipher(Fernet.generate_key()),
        tz=ZoneInfo("Asia/Shanghai"),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def xstub(related_server: RecordServer) -> Iterator[Any]:
    ch = channel(f"127.0.0.1:{related_server.bundle.port}")
    yield record_pb2_grpc.RecordServiceStub(ch)
    ch.close()


class Caller(Api):
    """Calls RecordService as one principal, with the 360°, duplicate, merge and attachment RPCs."""

    def view(self, record_id: str, per_form_limit: int = 0) -> dict[str, Any]:
        resp = self.call("GetRecord360", record_id=record_id, per_form_limit=per_form_limit)
        return json.loads(resp.view_json)

    def duplicates(self, form: str = "customer", **kw: Any) -> list[dict[str, Any]]:
        if "data" in kw:
            kw["data_json"] = json.dumps(kw.pop("data"), ensure_ascii=False)
        return [json.loads(c) for c in self.call("FindDuplicates", form_id=form, **kw).candidates_json]

    def merge(self, winner: str, loser: str, choices: dict[str, str] | None = None) -> dict[str, Any]:
        resp = self.call("MergeRecords", winner_id=winner, loser_id=loser, field_choices_json=json.dumps(choices or {}))
        return json.loads(resp.record_json)

    def entries(self, record_id: str) -> list[dict[str, Any]]:
        return self.history(record_id)[0]

    def upload(self, name: str, content_type: str, content: bytes, **kw: Any) -> dict[str, Any]:
        resp = self.call("UploadAttachment", filename=name, content_type=content_type, content=content, **kw)
        return json.loads(resp.attachment_json)

    def download(self, attachment_id: str) -> tuple[dict[str, Any], bytes]:
        request = record_pb2.DownloadAttachmentRequest(attachment_id=attachment_id)
        messages = list(self.stub.DownloadAttachment(request, metadata=self.principal.to_metadata(), timeout=60))
        return json.loads(messages[0].attachment_json), b"".join(m.chunk for m in messages)


class Crm:
    """A fresh tenant with the CRM forms published."""

    def __init__(self, stub: Any, forms: ListingFormSource, directory: Any) -> None:
        self.id = "tx-" + uuid.uuid4().hex[:12]
        self.stub = stub
        for key, (name, title, fields) in form_defs().items():
            forms.add(FormSchema(f"{key}-{self.id}", key, self.id, 1, title, tuple(fields), {"zh-CN": name, "en": key}))
        # the owners the tests assign records to exist in the directory replica (department d-1)
        for user in ("u-s1", "u-s2", "u-other"):
            directory.put(self.id, user, "d-1", name=user)

    def caller(
        self, role: str = "admin", user: str = "u-admin", locale: str = "en", tenant: str = "", policy: Any = None
    ) -> Caller:
        principal = Principal(
            tenant_id=tenant or self.id,
            user_id=user,
            role=role,
            department_id="d-1",
            locale=locale,
            policy_override=policy,
        )
        return Caller(self.stub, principal)


@pytest.fixture()
def crm(xstub: Any, listing_forms: ListingFormSource, related_server: RecordServer) -> Crm:
    return Crm(xstub, listing_forms, related_server.directory)


def fails(fn: Any, *args: Any, **kw: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    with pytest.raises(grpc.RpcError) as exc:
        fn(*args, **kw)
    return exc.value.code(), problem_from_error(exc.value)


def group(view: dict[str, Any], form_key: str, via: str) -> dict[str, Any]:
    matches = [g for g in view["related"] if g["form_key"] == form_key and g["via"] == via]
    assert len(matches) == 1, [(g["form_key"], g["via"]) for g in view["related"]]
    return matches[0]


# ---------------------------------------------------------------- 360


def test_360_groups_two_levels_timeline_and_scope(crm: Crm) -> None:
    admin = crm.caller()
    cust = admin.create("customer", {"customer_name": "武汉三六零科技有限公司"}, owner_id="u-s1")
    c1 = admin.create("contact", {"name": "张三", "customer": cust["id"]}, owner_id="u-s1")
    c2 = admin.create("contact", {"name": "李四", "customer": cust["id"]})
    opp = admin.create("opportunity", {"name": "ERP 项目", "customer": cust["id"]})
    contract = admin.create("contract", {"name": "HT-1", "customer": cust["id"]}, owner_id="u-s1")
    p1 = admin.create("payment", {"name": "首付", "contract": contract["id"], "amount": "50000"}, owner_id="u-s1")
    p2 = admin.create("payment", {"name": "尾款", "contract": contract["id"], "amount": "70000"})
    task = admin.create("task", {"title": "回访", "customer": cust["id"], "contacts": [c1["id"], c2["id"]]})
    other = admin.create("customer", {"customer_name": "无关客户"})
    admin.create("contact", {"name": "王五", "customer": other["id"]})
    admin.call("UpdateRecord", record_id=c2["id"], data_json=json.dumps({"name": "李四四"}), expected_version=1)

    view = admin.view(cust["id"])
    assert view["record"]["id"] == cust["id"] and view["form"]["key"] == "customer"
    contacts = group(view, "contact", "customer")
    assert contacts["total"] == 2 and contacts["level"] == 1 and contacts["form_name"] == "contact"
    assert {r["id"] for r in contacts["items"]} == {c1["id"], c2["id"]}
    assert [r["id"] for r in group(view, "opportunity", "customer")["items"]] == [opp["id"]]
    assert [r["id"] for r in group(view, "contract", "customer")["items"]] == [contract["id"]]
    assert [r["id"] for r in group(view, "task", "customer")["items"]] == [task["id"]]
    assert group(view, "task", "also_customers")["total"] == 0
    assert group(view, "customer", "parent")["total"] == 0
    payments = group(view, "payment", "contract.customer")
    assert payments["level"] == 2 and payments["through"]["form_key"] == "contract"
    assert {r["id"] for r in payments["items"]} == {p1["id"], p2["id"]}
    assert {r["data"]["amount"] for r in payments["items"]} == {"50000.00", "70000.00"}
    # the task reaches the customer directly and through its contacts: shown once, at level 1
    assert not [g for g in view["related"] if g["via"] == "contacts.customer"]

    timeline = view["timeline"]
    stamps = [e["at"] for e in timeline]
    assert stamps == sorted(stamps, reverse=True)
    kinds = {(e["record_id"], e["action"]) for e in timeline}
    assert {(cust["id"], "created"), (c1["id"], "created"), (p2["id"], "created"), (c2["id"], "updated")} <= kinds
    assert other["id"] not in {e["record_id"] for e in timeline}
    update = next(e for e in timeline if e["record_id"] == c2["id"] and e["action"] == "updated")
    assert update["form_key"] == "contact" and "Name" in update["summary"] and update["display"] == "李四四"

    limited = crm.caller().view(cust["id"], per_form_limit=1)
    contacts = group(limited, "contact", "customer")
    assert contacts["total"] == 2 and len(contacts["items"]) == 1

    sales = crm.caller(role="sales", user="u-s1").view(cust["id"])
    assert [r["id"] for r in group(sales, "contact", "customer")["items"]] == [c1["id"]]
    assert group(sales, "opportunity", "customer")["total"] == 0
    assert [r["id"] for r in group(sales, "payment", "contract.customer")["items"]] == [p1["id"]]
    assert {e["record_id"] for e in sales["timeline"]} <= {cust["id"], c1["id"], contract["id"], p1["id"]}

    code, _ = fails(crm.caller(role="sales", user="u-s2").view, cust["id"])
    assert code == grpc.StatusCode.NOT_FOUND
    code, problem = fails(admin.view, cust["id"], per_form_limit=500)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["field"] == "per_form_limit"


# ---------------------------------------------------------------- duplicates


def test_duplicates_by_company_name_and_mobile_ranked_within_scope(crm: Crm) -> None:
    admin = crm.caller()
    a = admin.create("customer", {"customer_name": "北京华信恒通科技有限公司", "mobile": "13800138000"})
    b = admin.create("customer", {"customer_name": "北京华信恒通科技（有限公司）", "mobile": "+86 138 0013 8000"})
    c = admin.create("customer", {"customer_name": "北京华信恒通科技"}, owner_id="u-s1")
    d = admin.create("customer", {"customer_name": "华信贸易", "mobile": "13800138000"})
    admin.create("customer", {"customer_name": "上海瑞丰", "mobile": "13900139000"})

    found = admin.duplicates(record_id=a["id"])
    ids = [x["record"]["id"] for x in found]
    assert ids[0] == b["id"] and found[0]["score"] == 2
    assert set(ids) == {b["id"], c["id"], d["id"]} and a["id"] not in ids
    by_id = {x["record"]["id"]: x for x in found}
    assert by_id[c["id"]]["matched"] == [
        {"field": "customer_name", "label": "Customer name", "value": "北京华信恒通科技"}
    ]
    assert by_id[d["id"]]["matched"][0]["field"] == "mobile" and by_id[d["id"]]["score"] == 1
    assert by_id[b["id"]]["record"]["data"]["customer_name"] == "北京华信恒通科技（有限公司）"

    unsaved = admin.duplicates(data={"customer_name": "北京华信恒通科技 有限公司", "mobile": "138-0013-8000"}, limit=2)
    assert [x["score"] for x in unsaved] == [2, 2] and {x["record"]["id"] for x in unsaved} == {a["id"], b["id"]}

    sales = crm.caller(role="sales", user="u-s1").duplicates(data={"customer_name": "北京华信恒通科技有限公司"})
    assert [x["record"]["id"] for x in sales] == [c["id"]]
    assert admin.duplicates(data={"customer_name": "完全不同"}) == []
    code, problem = fails(admin.duplicates, "contact", record_id=a["id"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "form_mismatch"


# ---------------------------------------------------------------- merge


class MergedEvents:
    """A private queue bound to record.events for record.merged; keeps one tenant's envelopes."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.queue = f"test.related.{uuid.uuid4().hex[:10]}"
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
        self.channel = self.conn.channel()
        self.channel.exchange_declare(exchange="record.events", exchange_type="topic", durable=True, auto_delete=False)
        # exclusive: gone with the connection (auto_delete needs a consumer; basic_get is not one)
        self.channel.queue_declare(queue=self.queue, exclusive=True)
        self.channel.queue_bind(queue=self.queue, exchange="record.events", routing_key="record.merged")
        self.seen: list[dict[str, Any]] = []

    def wait(self, count: int, timeout: float = 60.0, settle: float = 0.5) -> list[dict[str, Any]]:
        """Collect until `count` envelopes arrived, then `settle` seconds more (to catch any extra one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, _props, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                if len(self.seen) >= count:
                    deadline = min(deadline, time.monotonic() + settle)
                self.conn.sleep(0.05)
                continue
            envelope = json.loads(body)
            if envelope.get("tenant_id") == self.tenant_id:
                self.seen.append(envelope)
        return self.seen

    def close(self) -> None:
        self.conn.close()


@pytest.fixture()
def relay(xdb: Database[Any]) -> Iterator[Any]:
    outbox = build_relay(xdb, amqp_url(), poll_interval=0.05)
    outbox.start()
    yield outbox
    outbox.stop()


def test_merge_repoints_relations_moves_uniques_writes_history_and_publishes(
    crm: Crm, relay: Any, xdb: Database[Any]
) -> None:
    events = MergedEvents(crm.id)
    try:
        admin = crm.caller()
        win = admin.create("customer", {"customer_name": "苏州明德电子有限公司", "level": "A"})
        lose = admin.create(
            "customer", {"customer_name": "苏州明德电子", "mobile": "13800138000", "tax_no": "TX-1", "level": "B"}
        )
        k1 = admin.create("contact", {"name": "李四", "customer": lose["id"]})
        k2 = admin.create("contact", {"name": "王五", "customer": lose["id"]}, owner_id="u-other")
        task = admin.create("task", {"title": "拜访", "also_customers": [win["id"], lose["id"]]})
        keep = admin.create("contact", {"name": "赵六", "customer": win["id"]})

        merged = admin.merge(win["id"], lose["id"], {"level": "loser"})
        assert merged["id"] == win["id"] and merged["version"] == 2
        assert merged["data"]["customer_name"] == "苏州明德电子有限公司"
        assert merged["data"]["mobile"] == "13800138000" and merged["data"]["tax_no"] == "TX-1"
        assert merged["data"]["level"] == "B"

        for contact in (k1, k2):
            moved = admin.get(contact["id"])
            assert moved["data"]["customer"]["id"] == win["id"] and moved["version"] == 2
        assert admin.get(keep["id"])["version"] == 1
        assert [c["id"] for c in admin.get(task["id"])["data"]["also_customers"]] == [win["id"]]
        code, _ = fails(admin.get, lose["id"])
        assert code == grpc.StatusCode.NOT_FOUND
        stored = xdb["records"].find_one({"_id": lose["id"]})
        assert stored["deleted"] is True and stored["merged_into"] == win["id"]

        win_history = admin.entries(win["id"])
        assert win_history[0]["action"] == "merged" and win_history[0]["event_type"] == "record.merged"
        assert {"field": "merged_from", "old": None, "new": lose["id"], "label": None} in win_history[0]["changes"]
        lose_history = admin.entries(lose["id"])
        assert lose_history[0]["action"] == "merged"
        assert any(c["field"] == "merged_into" and c["new"] == win["id"] for c in lose_history[0]["changes"])
        k1_history = admin.entries(k1["id"])
        assert k1_history[0]["action"] == "updated"
        assert k1_history[0]["changes"][0]["field"] == "customer"
        assert k1_history[0]["changes"][0]["old"] == lose["id"] and k1_history[0]["changes"][0]["new"] == win["id"]

        # the loser's unique tax number now belongs to the winner; its name is free again
        code, problem = fails(admin.create, "customer", {"customer_name": "别家", "tax_no": "tx-1"})
        assert code == grpc.StatusCode.ALREADY_EXISTS and problem["existing_record"]["id"] == win["id"]
        assert admin.create("customer", {"customer_name": "苏州明德电子"})["id"]

        merged_events = events.wait(1)
        assert len(merged_events) == 1 and merged_events[0]["type"] == "record.merged"
        data = merged_events[0]["data"]
        assert data["winner_id"] == win["id"] and data["loser_id"] == lose["id"]
        assert data["form_id"] == win["form_id"] and data["repointed"] == 3
    finally:
        events.close()


def test_merge_refusals(crm: Crm) -> None:
    admin = crm.caller()
    a = admin.create("customer", {"customer_name": "甲公司"})
    b = admin.create("customer", {"customer_name": "乙公司"}, owner_id="u-s1")
    contact = admin.create("contact", {"name": "张三", "customer": a["id"]})
    for winner, loser, choices, rule in (
        (a["id"], a["id"], {}, "same_record"),
        (a["id"], contact["id"], {}, "different_forms"),
        (a["id"], b["id"], {"level": "both"}, "invalid_choice"),
        (a["id"], b["id"], {"nope": "winner"}, "unknown_field"),
        (a["id"], b["id"], {"code": "loser"}, "unknown_field"),
    ):
        code, problem = fails(admin.merge, winner, loser, choices)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == rule, problem
    code, _ = fails(crm.caller(role="sales", user="u-s1").merge, b["id"], a["id"])
    assert code == grpc.StatusCode.NOT_FOUND
    assert admin.get(a["id"])["version"] == 1 and admin.get(b["id"])["version"] == 1


# ---------------------------------------------------------------- attachments


def test_attachment_round_trip_limits_types_and_tenant(crm: Crm) -> None:
    admin = crm.caller()
    meta = admin.upload("logo.png", "image/png", PNG)
    assert meta["name"] == "logo.png" and meta["size"] == len(PNG) and meta["content_type"] == "image/png"
    got, content = admin.download(meta["id"])
    assert content == PNG and got["id"] == meta["id"] and got["sha256"] and got["uploaded_by"] == "u-admin"

    big = bytes(700 * 1024) * 3  # several GridFS chunks
    stored = admin.upload("big.bin", "application/octet-stream", big)
    _, content = admin.download(stored["id"])
    assert content == big

    code, problem = fails(admin.upload, "huge.bin", "application/octet-stream", b"\0" * (50 * 1024 * 1024 + 1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and problem["status"] == 413

    code, problem = fails(
        crm.caller(locale="zh-CN").upload, "a.png", "image/png", PNG * 40, form_id="customer", field_key="logo"
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and problem["status"] == 413
    assert "「标志」" in problem["detail"] and "2000" in problem["detail"]

    code, problem = fails(admin.upload, "a.png", "image/png", PNG, form_id="customer", field_key="docs")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "file_type"
    assert "Documents" in problem["errors"][0]["message"]
    assert admin.upload("spec.pdf", "application/pdf", PDF, form_id="customer", field_key="docs")["id"]

    code, problem = fails(admin.upload, "cat.png", "image/png", EXE)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "content_mismatch"
    code, problem = fails(admin.upload, "x.pdf", "application/pdf", b"#!/bin/sh\nrm -rf /\n")
    assert code == grpc.StatusCode.INVALID_ARGUMENT

    stranger = crm.caller(tenant="tx-other-" + uuid.uuid4().hex[:6])
    code, problem = fails(stranger.download, meta["id"])
    assert code == grpc.StatusCode.NOT_FOUND and problem["status"] == 404
    code, _ = fails(admin.download, "no-such-file")
    assert code == grpc.StatusCode.NOT_FOUND


def test_record_attachment_fields_validate_ids_against_the_store(crm: Crm) -> None:
    admin = crm.caller()
    logo = admin.upload("logo.png", "image/png", PNG)
    rec = admin.create("customer", {"customer_name": "带图客户", "logo": [logo["id"]]})
    assert rec["data"]["logo"] == [
        {"id": logo["id"], "name": "logo.png", "size": len(PNG), "content_type": "image/png"}
    ]

    foreign = crm.caller(tenant="tx-other-" + uuid.uuid4().hex[:6]).upload("f.png", "image/png", PNG)
    for ids in ([foreign["id"]], ["missing-id"]):
        code, problem = fails(admin.create, "customer", {"customer_name": "坏图客户" + ids[0], "logo": ids})
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert problem["errors"][0]["rule"] == "attachment_not_found" and problem["errors"][0]["field"] == "logo"

    pdf = admin.upload("spec.pdf", "application/pdf", PDF)
    code, problem = fails(admin.create, "customer", {"customer_name": "错类型", "logo": [pdf["id"]]})
    assert problem["errors"][0]["rule"] == "file_type"


# ---------------------------------------------------------------- access control (360° view, duplicates, merge, files)


def custom_policy(forms: dict[str, Any]) -> Any:
    """A role that may do everything but assign on every form, with per-form field levels."""
    rule = {"actions": ["view", "create", "edit", "delete"], "scope": "all"}
    return compile_policy(
        [RoleDefinition.parse("custom", {"default": rule, "forms": {k: {**rule, **v} for k, v in forms.items()}})]
    )


def test_360_duplicates_and_merge_leave_out_each_forms_hidden_fields(crm: Crm) -> None:
    admin = crm.caller()
    cust = admin.create("customer", {"customer_name": "隐私客户科技", "mobile": "13800138000"})
    twin = admin.create("customer", {"customer_name": "隐私客户科技有限公司", "mobile": "13900139000"})
    contact = admin.create("contact", {"name": "联系人甲", "customer": cust["id"]})
    contract = admin.create("contract", {"name": "HT-9", "customer": cust["id"]})
    admin.create("payment", {"name": "首付", "contract": contract["id"], "amount": "500"})
    admin.update(cust["id"], {"mobile": "13900139000"}, 1)
    viewer = crm.caller(
        role="sales",
        user="u-v",
        policy=custom_policy(
            {"customer": {"fields": {"mobile": "hidden"}}, "payment": {"fields": {"amount": "hidden"}}}
        ),
    )

    view = viewer.view(cust["id"])
    text = json.dumps(view, ensure_ascii=False)
    assert "1380013" not in text and "1390013" not in text and "500.00" not in text
    assert "mobile" not in view["record"]["data"]
    assert [r["data"]["name"] for r in group(view, "contact", "customer")["items"]] == ["联系人甲"]
    payments = group(view, "payment", "contract.customer")["items"]
    assert len(payments) == 1 and "amount" not in payments[0]["data"] and payments[0]["data"]["name"] == "首付"
    update = next(e for e in view["timeline"] if e["record_id"] == cust["id"] and e["action"] == "updated")
    assert update["changes"] == []
    admin_view = admin.view(cust["id"])
    assert group(admin_view, "payment", "contract.customer")["items"][0]["data"]["amount"] == "500.00"
    assert contact["id"] in {r["id"] for r in group(admin_view, "contact", "customer")["items"]}

    found = viewer.duplicates(record_id=twin["id"])
    assert [x["record"]["id"] for x in found] == [cust["id"]]
    assert [m["field"] for m in found[0]["matched"]] == ["customer_name"] and "mobile" not in found[0]["record"]["data"]
    assert {m["field"] for m in admin.duplicates(record_id=twin["id"])[0]["matched"]} == {"customer_name", "mobile"}

    code, problem = fails(viewer.merge, cust["id"], twin["id"], {"mobile": "loser"})
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "unknown_field"
    merged = viewer.merge(cust["id"], twin["id"])
    assert merged["id"] == cust["id"] and "mobile" not in merged["data"]
    assert admin.get(cust["id"])["data"]["mobile"] == "13900139000"


def test_merge_needs_edit_and_delete_and_a_merged_record_cannot_be_restored(crm: Crm) -> None:
    sales = crm.caller(role="sales", user="u-s1")
    a = sales.create("customer", {"customer_name": "合并甲"})
    b = sales.create("customer", {"customer_name": "合并乙"})
    code, problem = fails(sales.merge, a["id"], b["id"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "delete"
    admin = crm.caller()
    admin.merge(a["id"], b["id"])
    code, problem = fails(admin.call, "RestoreRecord", record_id=b["id"])
    assert code == grpc.StatusCode.ALREADY_EXISTS and problem["reason"] == "merged_away"
    assert problem["merged_into"] == a["id"] and a["id"] in problem["detail"]
    assert fails(admin.get, b["id"])[0] == grpc.StatusCode.NOT_FOUND


def test_downloads_need_a_visible_record_holding_the_file_or_the_uploader(crm: Crm) -> None:
    s1 = crm.caller(role="sales", user="u-s1")
    s2 = crm.caller(role="sales", user="u-s2")
    admin = crm.caller()
    loose = s1.upload("mine.png", "image/png", PNG)
    assert s1.download(loose["id"])[1] == PNG
    for caller in (s2, admin):
        assert fails(caller.download, loose["id"])[0] == grpc.StatusCode.NOT_FOUND
    # someone else's unattached file cannot be attached (and so fetched) either
    code, problem = fails(s2.create, "customer", {"customer_name": "偷图", "logo": [loose["id"]]})
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "attachment_not_found"
    rec = s1.create("customer", {"customer_name": "附件客户", "logo": [loose["id"]]})
    assert s1.download(loose["id"])[1] == PNG and admin.download(loose["id"])[1] == PNG
    assert fails(s2.download, loose["id"])[0] == grpc.StatusCode.NOT_FOUND
    s1.call(
        "ShareRecord",
        record_id=rec["id"],
        target_kind=record_pb2.SHARE_TARGET_KIND_USER,
        target_id="u-s2",
        access=record_pb2.SHARE_ACCESS_READ,
    )
    assert s2.download(loose["id"])[1] == PNG
    no_logo = crm.caller(role="sales", user="u-v", policy=custom_policy({"customer": {"fields": {"logo": "hidden"}}}))
    assert "logo" not in no_logo.get(rec["id"])["data"]
    assert fails(no_logo.download, loose["id"])[0] == grpc.StatusCode.NOT_FOUND
