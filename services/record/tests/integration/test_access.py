"""Access control on the real server (docs/security.md): scope by owner, owners, actions, fields, sharing,
role conditions, relations, conflicts, ExplainAccess and the acl backfill.

Principals use the built-in policies of their role (admin: all; manager:
department_tree; sales: own, no delete/import/assign) unless a test compiles
its own roles with crm_runtime.access.compile_policy.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pika
import pytest

from crm.record.v1 import record_pb2
from crm_runtime.access import Policy, RoleDefinition, compile_policy
from crm_runtime.client import problem_from_error
from crm_runtime.envelope import make_envelope
from crm_runtime.events import wait_until
from crm_runtime.testing import amqp_url
from record_service.store.directory import GATEWAY_EXCHANGE, directory_consumer

pytestmark = pytest.mark.integration

USER = record_pb2.SHARE_TARGET_KIND_USER
DEPARTMENT = record_pb2.SHARE_TARGET_KIND_DEPARTMENT
READ, EDIT = record_pb2.SHARE_ACCESS_READ, record_pb2.SHARE_ACCESS_EDIT
EXACT = record_pb2.COUNT_MODE_EXACT


def policy(default: dict[str, Any]) -> Policy:
    """One custom role as a compiled policy."""
    return compile_policy([RoleDefinition.parse("custom", {"default": default})])


def fails(fn: Any, *args: Any, **kw: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    with pytest.raises(grpc.RpcError) as exc:
        fn(*args, **kw)
    return exc.value.code(), problem_from_error(exc.value)


def ids(rows: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in rows}


def record(resp: Any) -> dict[str, Any]:
    return json.loads(resp.record_json)


# ---------------------------------------------------------------- scope follows the owner (holes 3 and 5)


def test_a_record_assigned_to_a_salesperson_follows_them_from_manager_to_manager(
    tenant: Any, db: Any, record_server: Any
) -> None:
    tenant.user("u-s1", "d-east")
    admin = tenant.api(dept="d-hq")
    east = tenant.api("manager", "u-m1", "d-east", scope=("d-east",))
    west = tenant.api("manager", "u-m2", "d-west", scope=("d-west",))
    rec = admin.create("customer", {"customer_name": "转岗客户"}, owner_id="u-s1")
    assert rec["owner_id"] == "u-s1" and rec["department_id"] == "d-east"
    assert east.get(rec["id"])["id"] == rec["id"]
    rows, resp = east.list("customer", count_mode=EXACT)
    assert ids(rows) == {rec["id"]} and resp.total == 1
    assert fails(west.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    assert tenant.api("sales", "u-s1", "d-east").get(rec["id"])["id"] == rec["id"]

    # the gateway's user.updated moves the salesperson to the west: through the real consumer
    queue = f"test.record.directory.{uuid.uuid4().hex[:10]}"
    consumer = directory_consumer(amqp_url(), record_server.directory, db, queue=queue)
    consumer.start()
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    try:
        assert consumer.connected.wait(15)
        envelope = make_envelope(
            "user.updated",
            tenant.id,
            {"user_id": "u-s1", "username": "s1", "name": "S1", "department_id": "d-west", "active": True},
            source="gateway",
        )
        conn.channel().basic_publish(GATEWAY_EXCHANGE, "user.updated", json.dumps(envelope).encode())
        assert wait_until(lambda: db["records"].find_one({"_id": rec["id"]})["department_id"] == "d-west", 15)
    finally:
        consumer.stop()
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.queue_delete(queue + ".dlq")
        conn.close()
    stored = db["records"].find_one({"_id": rec["id"]})
    assert "d:d-east" not in stored["acl"] and {"u:u-s1", "d:d-west"} <= set(stored["acl"])
    assert fails(east.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    assert east.list("customer", count_mode=EXACT)[1].total == 0
    assert west.get(rec["id"])["department_id"] == "d-west"
    assert ids(west.list("customer")[0]) == {rec["id"]}
    # a directory change, not a record change: same version, no history entry
    assert stored["version"] == 1 and [e["action"] for e in admin.history(rec["id"])[0]] == ["created"]
    assert tenant.directory.user(tenant.id, "u-s1").department_id == "d-west"


def test_owners_must_exist_be_active_in_the_tenant_and_be_assignable(tenant: Any, db: Any) -> None:
    tenant.user("u-s2", "d-east")
    tenant.user("u-gone", "d-east", active=False)
    tenant.user("u-far", "d-west")
    tenant.directory.put("t-else-" + tenant.id, "u-stranger", "d-east")
    admin = tenant.api()
    for owner in ("u-nobody", "u-gone", "u-stranger"):
        code, problem = fails(admin.create, "customer", {"customer_name": "无主" + owner}, owner_id=owner)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, owner
        assert (problem["errors"][0]["field"], problem["errors"][0]["rule"]) == ("owner_id", "owner_invalid")
    sales = tenant.api("sales", "u-s1", "d-east")
    code, problem = fails(sales.create, "customer", {"customer_name": "越权"}, owner_id="u-s2")
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["status"] == 403 and problem["action"] == "assign"
    assert "u-s2" in problem["detail"]
    manager = tenant.api("manager", "u-m1", "d-east", scope=("d-east",))
    rec = manager.create("customer", {"customer_name": "下属客户"}, owner_id="u-s2")
    assert (rec["owner_id"], rec["department_id"]) == ("u-s2", "d-east")
    assert fails(manager.create, "customer", {"customer_name": "外部门"}, owner_id="u-far")[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert fails(manager.update, rec["id"], {}, 1, owner_id="u-far")[0] == grpc.StatusCode.PERMISSION_DENIED
    # an owner change takes the new owner's department: out of the east manager's sight
    moved = admin.update(rec["id"], {}, 1, owner_id="u-far")
    assert (moved["owner_id"], moved["department_id"]) == ("u-far", "d-west")
    assert fails(manager.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    assert db["records"].count_documents({"tenant_id": tenant.id}) == 1


# ---------------------------------------------------------------- actions


def test_refused_actions_are_403_naming_the_action_and_unseen_records_stay_404(tenant: Any) -> None:
    admin = tenant.api()
    rec = admin.create("customer", {"customer_name": "只读客户"})
    viewer = tenant.api("sales", "u-v", "d-1", policy=policy({"actions": ["view"], "scope": "all"}))
    assert viewer.get(rec["id"])["id"] == rec["id"]
    code, problem = fails(viewer.create, "customer", {"customer_name": "不许建"})
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "create" and "create" in problem["detail"]
    code, problem = fails(viewer.update, rec["id"], {"level": "B"}, 1)
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "edit"
    code, problem = fails(viewer.call, "DeleteRecord", record_id=rec["id"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "delete"

    sales = tenant.api("sales", "u-s1", "d-1")
    own = sales.create("customer", {"customer_name": "自己的"})
    code, problem = fails(tenant.api("sales", "u-s1", "d-1", locale="zh-CN").call, "DeleteRecord", record_id=own["id"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and "删除" in problem["detail"]
    code, problem = fails(
        sales.call, "BulkCreateRecords", form_id="customer", records_json=json.dumps([{"customer_name": "导入"}])
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "import"
    for fn, args in ((sales.get, (rec["id"],)), (sales.update, (rec["id"], {"level": "A"}, 1))):
        assert fails(fn, *args)[0] == grpc.StatusCode.NOT_FOUND
    assert fails(sales.call, "DeleteRecord", record_id=rec["id"])[0] == grpc.StatusCode.NOT_FOUND

    admin.call("DeleteRecord", record_id=rec["id"])
    code, problem = fails(viewer.call, "RestoreRecord", record_id=rec["id"])
    assert code == grpc.StatusCode.PERMISSION_DENIED and "restore" in problem["detail"]
    assert record(admin.call("RestoreRecord", record_id=rec["id"]))["deleted"] is False
    assert admin.get(rec["id"])["version"] == 3 and admin.get(own["id"])["version"] == 1


# ---------------------------------------------------------------- fields


CLERK = {
    "actions": ["view", "create", "edit"],
    "scope": "all",
    "fields": {"amount": "hidden", "remark": "hidden", "level": "readonly"},
}


def test_hidden_fields_are_absent_from_every_output_and_cannot_be_filtered_sorted_or_searched(tenant: Any) -> None:
    admin = tenant.api()
    rec = admin.create("customer", {"customer_name": "隐藏公司", "amount": "99.00", "remark": "绝密备注", "level": "A"})
    admin.update(rec["id"], {"amount": "100", "customer_name": "隐藏公司二"}, 1)
    clerk = tenant.api("sales", "u-c", "d-1", policy=policy(CLERK))

    got = clerk.get(rec["id"])
    assert got["data"]["customer_name"] == "隐藏公司二" and got["data"]["level"] == "A"
    assert "amount" not in got["data"] and "remark" not in got["data"]
    rows, _ = clerk.list("customer")
    assert [r["id"] for r in rows] == [rec["id"]] and "amount" not in rows[0]["data"]
    entries, _ = clerk.history(rec["id"])
    assert [{c["field"] for c in e["changes"]} for e in entries] == [
        {"customer_name"},
        {"customer_name", "level", "code"},
    ]
    assert "绝密" not in json.dumps([got, rows, entries], ensure_ascii=False)
    admin_entries, _ = admin.history(rec["id"])
    assert {c["field"] for c in admin_entries[0]["changes"]} == {"customer_name", "amount"}

    # filtering or sorting on a hidden field is the 422 of an unknown field
    _, hidden = fails(clerk.list, "customer", filter_json={"field": "amount", "op": "gt", "value": "1"})
    _, unknown = fails(clerk.list, "customer", filter_json={"field": "nope", "op": "gt", "value": "1"})
    mine, theirs = hidden["errors"][0], unknown["errors"][0]
    assert (mine["field"], mine["rule"]) == (theirs["field"], theirs["rule"]) == ("filter.value", "unknown_field")
    assert mine["message"] == theirs["message"].replace("nope", "amount")
    code, problem = fails(clerk.list, "customer", sort_json=[{"field": "amount", "direction": "asc"}])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "not_sortable"
    assert ids(admin.list("customer", sort_json=[{"field": "amount", "direction": "asc"}])[0]) == {rec["id"]}
    # a keyword found only in a hidden field finds nothing (and counts nothing)
    rows, resp = clerk.list("customer", keyword="绝密", count_mode=EXACT)
    assert rows == [] and resp.total == 0
    assert ids(admin.list("customer", keyword="绝密")[0]) == {rec["id"]}
    assert ids(clerk.list("customer", keyword="隐藏")[0]) == {rec["id"]}


def test_hidden_read_only_and_system_fields_cannot_be_written(tenant: Any, db: Any) -> None:
    admin = tenant.api()
    rec = admin.create("customer", {"customer_name": "写入公司", "level": "A"})
    clerk = tenant.api("sales", "u-c", "d-1", policy=policy(CLERK))
    _, hidden = fails(clerk.create, "customer", {"customer_name": "甲", "amount": "1"})
    _, unknown = fails(clerk.create, "customer", {"customer_name": "甲", "nope": "1"})
    assert hidden["errors"] == [
        {
            **unknown["errors"][0],
            "field": "amount",
            "message": unknown["errors"][0]["message"].replace("nope", "amount"),
        }
    ]
    code, problem = fails(clerk.update, rec["id"], {"level": "B"}, 1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [(e["field"], e["rule"]) for e in problem["errors"]] == [("level", "read_only")]
    assert "Level" in problem["errors"][0]["message"]
    code, problem = fails(clerk.update, rec["id"], {"remark": "x", "customer_name": "改名"}, 1)
    assert [(e["field"], e["rule"]) for e in problem["errors"]] == [("remark", "unknown_field")]
    for key, value in (("acl", ["u:u-c"]), ("shares", []), ("owner_id", "u-c"), ("department_id", "d-9")):
        code, problem = fails(admin.create, "customer", {"customer_name": "系统" + key, key: value})
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert (problem["errors"][0]["field"], problem["errors"][0]["rule"]) == (key, "system_field")
    created = clerk.create("customer", {"customer_name": "可写公司"})
    assert created["owner_id"] == "u-c" and "amount" not in created["data"]
    assert clerk.update(created["id"], {"customer_name": "可写公司二"}, 1)["version"] == 2
    assert db["records"].count_documents({"tenant_id": tenant.id}) == 2
    assert admin.get(rec["id"])["version"] == 1


# ---------------------------------------------------------------- sharing


def test_sharing_read_and_edit_with_a_user_and_a_department(tenant: Any) -> None:
    tenant.user("u-s2", "d-2")
    s1 = tenant.api("sales", "u-s1", "d-1")
    s2 = tenant.api("sales", "u-s2", "d-2")
    s3 = tenant.api("sales", "u-s3", "d-3")
    rec = s1.create("customer", {"customer_name": "共享客户"})
    assert fails(s2.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    share = {"record_id": rec["id"], "target_kind": USER, "target_id": "u-s2"}
    assert fails(s2.call, "ShareRecord", **share, access=EDIT)[0] == grpc.StatusCode.NOT_FOUND

    shared = record(s1.call("ShareRecord", **share, access=READ))
    assert shared["shares"] == [{"kind": "user", "id": "u-s2", "access": "read"}] and shared["version"] == 2
    assert s2.get(rec["id"])["data"]["customer_name"] == "共享客户"
    rows, resp = s2.list("customer", count_mode=EXACT)
    assert ids(rows) == {rec["id"]} and resp.total == 1
    code, problem = fails(s2.update, rec["id"], {"level": "B"}, 2)
    assert code == grpc.StatusCode.PERMISSION_DENIED and problem["action"] == "edit"
    assert fails(s2.call, "ShareRecord", **{**share, "target_id": "u-s3"}, access=READ)[0] == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    assert record(s1.call("ShareRecord", **share, access=EDIT))["shares"] == [
        {"kind": "user", "id": "u-s2", "access": "edit"}
    ]
    assert s2.update(rec["id"], {"level": "B"}, 3)["data"]["level"] == "B"
    assert fails(s3.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    s1.call("ShareRecord", record_id=rec["id"], target_kind=DEPARTMENT, target_id="d-3", access=READ)
    assert s3.get(rec["id"])["id"] == rec["id"]
    code, problem = fails(s1.call, "ShareRecord", **{**share, "target_id": "u-nobody"}, access=READ)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "share_target_invalid"
    code, problem = fails(s1.call, "ShareRecord", record_id=rec["id"], target_id="u-s2", access=READ)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["field"] == "target_kind"

    left = record(s1.call("UnshareRecord", record_id=rec["id"], target_kind=USER, target_id="u-s2"))
    assert left["shares"] == [{"kind": "department", "id": "d-3", "access": "read"}]
    assert fails(s2.get, rec["id"])[0] == grpc.StatusCode.NOT_FOUND
    actions = [e["action"] for e in s1.history(rec["id"])[0]]
    assert actions == ["unshared", "shared", "updated", "shared", "shared", "created"]


# ---------------------------------------------------------------- role conditions


def test_a_role_condition_limits_pages_counts_keyword_search_and_reads_alike(tenant: Any) -> None:
    admin = tenant.api()
    a_ids = {admin.create("customer", {"customer_name": f"条件客户A{i}", "level": "A"})["id"] for i in range(5)}
    b_ids = {admin.create("customer", {"customer_name": f"条件客户B{i}", "level": "B"})["id"] for i in range(3)}
    only_a = policy({"actions": ["view"], "scope": "all", "condition": {"field": "level", "op": "eq", "value": "A"}})
    viewer = tenant.api("sales", "u-v", "d-1", policy=only_a)
    rows, resp = viewer.list("customer", count_mode=EXACT)
    assert ids(rows) == a_ids and resp.total == 5 and {r["data"]["level"] for r in rows} == {"A"}
    seen: list[str] = []
    cursor = ""
    while True:
        rows, resp = viewer.list("customer", page_size=2, cursor=cursor, count_mode=EXACT)
        assert resp.total == 5
        seen += [r["id"] for r in rows]
        cursor = resp.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(a_ids)
    rows, resp = viewer.list("customer", keyword="条件客户", count_mode=EXACT)
    assert ids(rows) == a_ids and resp.total == 5
    rows, resp = viewer.list("customer", filter_json={"field": "level", "op": "eq", "value": "B"}, count_mode=EXACT)
    assert rows == [] and resp.total == 0
    assert fails(viewer.get, next(iter(b_ids)))[0] == grpc.StatusCode.NOT_FOUND
    assert viewer.get(next(iter(a_ids)))["data"]["level"] == "A"

    # own scope AND a condition: own records of level A only
    own_a = policy({"actions": ["view", "create", "edit"], "scope": "own", "condition": only_a_condition()})
    sales = tenant.api("sales", "u-s1", "d-1", policy=own_a)
    mine_a = sales.create("customer", {"customer_name": "自己A", "level": "A"})
    mine_b = sales.create("customer", {"customer_name": "自己B", "level": "B"})
    rows, resp = sales.list("customer", count_mode=EXACT)
    assert ids(rows) == {mine_a["id"]} and resp.total == 1
    assert fails(sales.get, mine_b["id"])[0] == grpc.StatusCode.NOT_FOUND

    # a condition that does not parse against the form shows nothing: it is not the caller's 422
    broken = tenant.api(
        "sales",
        "u-b",
        "d-1",
        policy=policy({"actions": ["view"], "scope": "all", "condition": {"field": "nope", "op": "eq", "value": 1}}),
    )
    rows, resp = broken.list("customer", count_mode=EXACT)
    assert rows == [] and resp.total == 0
    assert fails(broken.get, next(iter(a_ids)))[0] == grpc.StatusCode.NOT_FOUND


def only_a_condition() -> dict[str, Any]:
    return {"field": "level", "op": "eq", "value": "A"}


# ---------------------------------------------------------------- relations and conflicts (holes 4 and 6)


def test_relations_may_only_name_visible_records_and_show_names_of_visible_ones(tenant: Any) -> None:
    admin = tenant.api()
    sales = tenant.api("sales", "u-s1", "d-1")
    secret = admin.create("customer", {"customer_name": "看不见的客户", "level": "B"})
    mine = sales.create("customer", {"customer_name": "看得见的客户", "level": "A"})
    _, hidden = fails(sales.create, "contact", {"name": "张", "customer": secret["id"]})
    _, missing = fails(sales.create, "contact", {"name": "张", "customer": "0123456789abcdef01234567"})
    assert hidden["errors"][0]["rule"] == missing["errors"][0]["rule"]
    assert hidden["errors"][0]["field"] == missing["errors"][0]["field"] == "customer"
    contact = sales.create("contact", {"name": "李", "customer": mine["id"]})
    assert contact["data"]["customer"] == {"id": mine["id"], "display": "看得见的客户"}
    assert contact["data"]["customer_level"] == "A"
    admin.update(contact["id"], {"customer": secret["id"]}, 1)
    got = sales.get(contact["id"])
    assert got["data"]["customer"] == {"id": secret["id"], "display": secret["id"]}
    assert got["data"]["customer_level"] is None
    assert "看不见" not in json.dumps(sales.list("contact")[0], ensure_ascii=False)
    assert admin.get(contact["id"])["data"]["customer"]["display"] == "看不见的客户"


def test_a_unique_conflict_names_the_holder_only_to_those_who_see_it(tenant: Any) -> None:
    admin = tenant.api()
    held = admin.create("customer", {"customer_name": "唯一公司"})
    code, problem = fails(tenant.api("sales", "u-s1", "d-1").create, "customer", {"customer_name": "唯一公司"})
    assert code == grpc.StatusCode.ALREADY_EXISTS and problem["field"] == "customer_name"
    assert "existing_record" not in problem and held["id"] not in json.dumps(problem)
    code, problem = fails(admin.create, "customer", {"customer_name": "唯一公司"})
    assert problem["existing_record"] == {"id": held["id"], "display": "唯一公司"}


# ---------------------------------------------------------------- ExplainAccess


def test_explain_access_says_why(tenant: Any) -> None:
    admin = tenant.api()
    sales = tenant.api("sales", "u-s1", "d-1")
    theirs = admin.create("customer", {"customer_name": "别人的"})
    mine = sales.create("customer", {"customer_name": "我的"})

    def explain(api: Any, **kw: Any) -> tuple[bool, dict[str, Any]]:
        resp = api.call("ExplainAccess", **kw)
        return resp.allowed, json.loads(resp.explanation_json)

    allowed, why = explain(sales, record_id=theirs["id"], action="view")
    assert not allowed and why["allowed"] is False
    assert [r["code"] for r in why["reasons"]] == ["action_granted", "out_of_scope"]
    allowed, why = explain(sales, record_id=mine["id"], action="edit")
    assert allowed and why["reasons"][-1]["code"] == "in_scope"
    allowed, why = explain(sales, form_id="customer", action="delete")
    assert not allowed and why["reasons"][0]["code"] == "action_not_granted"
    allowed, why = explain(admin, form_id="customer", action="delete")
    assert allowed and why["hidden_fields"] == [] and why["readonly_fields"] == []
    _, why = explain(tenant.api("sales", "u-c", "d-1", policy=policy(CLERK)), form_id="customer", action="edit")
    assert why["hidden_fields"] == ["amount", "remark"] and why["readonly_fields"] == ["level"]
    code, _ = fails(tenant.api(tenant="t-else-" + tenant.id).call, "ExplainAccess", record_id=mine["id"], action="view")
    assert code == grpc.StatusCode.NOT_FOUND
    code, problem = fails(sales.call, "ExplainAccess", form_id="customer", action="fly")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["field"] == "action"
    code, problem = fails(sales.call, "ExplainAccess", action="view")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["field"] == "form_id"


# ---------------------------------------------------------------- start-up backfill


def test_records_stored_before_access_control_get_their_acl_once(db: Any, record_server: Any) -> None:
    rid = uuid.uuid4().hex[:24]
    logo = {"id": "file-1", "name": "a.png", "size": 3, "content_type": "image/png"}
    db["records"].insert_one(
        {
            "_id": rid,
            "tenant_id": "t-legacy-" + rid,
            "form_id": "f",
            "owner_id": "u-old",
            "department_id": "d-old",
            "deleted": False,
            "data": {"name": "旧记录", "logo": [logo]},
        }
    )
    db["meta"].delete_one({"_id": "record_acl"})
    try:
        assert record_server.repo.backfill_access() >= 1
        stored = db["records"].find_one({"_id": rid})
        assert stored["acl"] == ["d:d-old", "u:u-old"] and stored["shares"] == [] and stored["files"] == ["file-1"]
        assert db["meta"].find_one({"_id": "record_acl"}) is not None
        db["records"].update_one({"_id": rid}, {"$unset": {"acl": ""}})
        assert record_server.repo.backfill_access() == 0  # done once
    finally:
        db["records"].delete_one({"_id": rid})
        db["meta"].update_one({"_id": "record_acl"}, {"$set": {"done": True}}, upsert=True)


def test_user_events_fill_the_directory_and_a_deleted_user_can_no_longer_own_records(
    tenant: Any, record_server: Any
) -> None:
    directory = record_server.directory
    admin = tenant.api()

    def event(kind: str, **data: Any) -> None:
        directory.on_event(make_envelope(kind, tenant.id, {"user_id": "u-new", **data}, source="gateway"))

    event("user.created", username="new", name="新人", department_id="d-5", active=True)
    assert directory.user(tenant.id, "u-new").name == "新人"
    rec = admin.create("customer", {"customer_name": "新人的客户"}, owner_id="u-new")
    assert rec["department_id"] == "d-5"
    event("user.deleted")
    gone = directory.user(tenant.id, "u-new")
    assert gone.active is False and gone.department_id == "d-5"
    code, problem = fails(admin.create, "customer", {"customer_name": "已删除的负责人"}, owner_id="u-new")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and problem["errors"][0]["rule"] == "owner_invalid"
    assert directory.user("t-else-" + tenant.id, "u-new") is None
