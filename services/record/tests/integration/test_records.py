"""CRUD, versions, uniques, soft delete, validation, scope, tenant isolation, history, relations, auto numbers."""

from __future__ import annotations

import json
import threading
from typing import Any

import grpc
import pytest

from record_service.domain.forms import FormSchema

pytestmark = pytest.mark.integration


def test_create_get_update_versions_and_stale_version(tenant: Any) -> None:
    api = tenant.api()
    rec = api.create("customer", {"customer_name": "北京华信恒通科技有限公司", "level": "A", "amount": "12.30"})
    assert rec["version"] == 1 and rec["data"]["amount"] == "12.30" and rec["data"]["code"] == "KH-0001"
    assert rec["owner_id"] == "u-admin" and rec["form_id"] == tenant.customer.id
    got = api.get(rec["id"])
    assert got["data"]["customer_name"] == "北京华信恒通科技有限公司" and got["data"]["contact_count"] == 0
    upd = api.update(rec["id"], {"level": "B", "amount": 20}, 1)
    assert upd["version"] == 2 and upd["data"]["level"] == "B" and upd["data"]["amount"] == "20.00"
    with pytest.raises(grpc.RpcError) as exc:
        api.update(rec["id"], {"level": "C"}, 1)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    problem = json.loads(exc.value.details())
    assert problem["status"] == 409 and problem["current_version"] == 2
    assert api.get(rec["id"])["data"]["level"] == "B" and api.get(rec["id"])["version"] == 2
    with pytest.raises(grpc.RpcError) as exc:
        api.update(rec["id"], {"level": "C"}, 0)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_input_is_422_and_nothing_is_written(tenant: Any, db: Any) -> None:
    api = tenant.api()
    for data in (
        {"customer_name": "x", "nope": 1},
        {"level": "A"},
        {"customer_name": "x", "level": "Z"},
        {"customer_name": "x", "created_at": "2024-01-01"},
        {"customer_name": {"$gt": ""}},
    ):
        with pytest.raises(grpc.RpcError) as exc:
            api.create("customer", data)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, data
        assert json.loads(exc.value.details())["errors"]
    assert db["records"].count_documents({"tenant_id": tenant.id}) == 0
    assert db["history"].count_documents({"tenant_id": tenant.id}) == 0


def test_unique_conflict_names_the_existing_record_and_delete_restore_release_it(tenant: Any) -> None:
    api = tenant.api()
    first = api.create("customer", {"customer_name": "Ruifeng 瑞丰贸易"})
    with pytest.raises(grpc.RpcError) as exc:
        api.create("customer", {"customer_name": " ＲＵＩＦＥＮＧ  瑞丰贸易"})  # same after normalisation
    problem = json.loads(exc.value.details())
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert problem["field"] == "customer_name" and problem["existing_record"]["id"] == first["id"]
    assert problem["existing_record"]["display"] == "Ruifeng 瑞丰贸易"
    deleted = json.loads(api.call("DeleteRecord", record_id=first["id"], expected_version=1).record_json)
    assert deleted["deleted"] is True and deleted["version"] == 2
    with pytest.raises(grpc.RpcError) as exc:
        api.get(first["id"])
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    second = api.create("customer", {"customer_name": "ruifeng 瑞丰贸易"})  # the key was released
    with pytest.raises(grpc.RpcError) as exc:
        api.call("RestoreRecord", record_id=first["id"])
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert json.loads(exc.value.details())["existing_record"]["id"] == second["id"]
    api.call("DeleteRecord", record_id=second["id"])
    restored = json.loads(api.call("RestoreRecord", record_id=first["id"]).record_json)
    assert restored["deleted"] is False and restored["version"] == 3
    assert api.get(first["id"])["data"]["customer_name"] == "Ruifeng 瑞丰贸易"
    bin_rows, _ = api.list("customer", deleted=True)
    assert [r["id"] for r in bin_rows] == [second["id"]]


def test_update_swaps_unique_keys(tenant: Any) -> None:
    api = tenant.api()
    a = api.create("customer", {"customer_name": "甲公司"})
    api.update(a["id"], {"customer_name": "乙公司"}, 1)
    api.create("customer", {"customer_name": "甲公司"})  # old key free again
    with pytest.raises(grpc.RpcError) as exc:
        api.create("customer", {"customer_name": "乙公司"})
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_tenant_isolation_and_data_scope_are_404(tenant: Any) -> None:
    admin = tenant.api()
    sales1 = tenant.api("sales", "u-s1", "d-1")
    sales2 = tenant.api("sales", "u-s2", "d-2")
    manager1 = tenant.api("manager", "u-m1", "d-1", scope=("d-1",))
    r1 = sales1.create("customer", {"customer_name": "一号"})
    r2 = sales2.create("customer", {"customer_name": "二号"})
    assert sales1.get(r1["id"])["id"] == r1["id"]
    for api, rid in ((sales1, r2["id"]), (sales2, r1["id"]), (manager1, r2["id"])):
        with pytest.raises(grpc.RpcError) as exc:
            api.get(rid)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as exc:
            api.update(rid, {"level": "A"}, 1)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert manager1.get(r1["id"])["id"] == r1["id"]
    other = tenant.api(tenant="t-other-" + tenant.id)
    with pytest.raises(grpc.RpcError) as exc:
        other.get(r1["id"])
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert {r["id"] for r in sales1.list("customer")[0]} == {r1["id"]}
    assert {r["id"] for r in manager1.list("customer")[0]} == {r1["id"]}
    assert {r["id"] for r in admin.list("customer")[0]} == {r1["id"], r2["id"]}


def test_history_who_what_old_new_and_owner_change(tenant: Any) -> None:
    api = tenant.api()
    rec = api.create("customer", {"customer_name": "历史公司", "level": "A"})
    other = tenant.api(user="u-2")
    tenant.user("u-9")
    other.update(rec["id"], {"level": "C", "remark": "备注"}, 1)
    other.update(rec["id"], {}, 2, owner_id="u-9")
    entries, cursor = api.history(rec["id"])
    assert [e["action"] for e in entries] == ["owner_changed", "updated", "created"] and cursor == ""
    updated = entries[1]
    assert updated["actor"] == "u-2"
    assert {c["field"]: (c["old"], c["new"]) for c in updated["changes"]} == {
        "level": ("A", "C"),
        "remark": (None, "备注"),
    }
    assert entries[0]["changes"] == [{"field": "owner_id", "old": "u-admin", "new": "u-9", "label": None}]
    page, cursor = api.history(rec["id"], page_size=2)
    rest, last = api.history(rec["id"], page_size=2, cursor=cursor)
    assert [e["id"] for e in page + rest] == [e["id"] for e in entries] and last == ""
    api.call("DeleteRecord", record_id=rec["id"])
    entries, _ = api.history(rec["id"])  # history survives deletion
    assert entries[0]["action"] == "deleted" and len(entries) == 4


def test_removed_fields_stay_in_history_and_show_as_retired(tenant: Any) -> None:
    api = tenant.api()
    rec = api.create("customer", {"customer_name": "退役公司", "remark": "old remark"})
    fields = tuple(f for f in tenant.customer.fields if f["key"] != "remark")
    tenant.publish(FormSchema(tenant.customer.id, "customer", tenant.id, 2, "customer_name", fields))
    got = api.get(rec["id"])
    assert "remark" not in got["data"] and got["retired_data"] == {"remark": "old remark"}
    with pytest.raises(grpc.RpcError) as exc:
        api.update(rec["id"], {"remark": "new"}, 1)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(exc.value.details())["errors"][0]["rule"] == "unknown_field"
    api.update(rec["id"], {"level": "A"}, 1)
    assert api.get(rec["id"])["retired_data"] == {"remark": "old remark"}


def test_encrypted_text_is_masked_for_other_roles(tenant: Any, db: Any) -> None:
    admin = tenant.api()
    rec = admin.create("customer", {"customer_name": "加密公司", "secret": "110101199003074518"})
    assert admin.get(rec["id"])["data"]["secret"] == "110101199003074518"
    stored = db["records"].find_one({"_id": rec["id"]})["data"]["secret"]
    assert "1101011990" not in stored
    manager = tenant.api("manager", "u-m", "d-1", scope=("d-1",))
    masked = manager.get(rec["id"])["data"]["secret"]
    assert masked != "110101199003074518" and "*" in masked
    entries, _ = admin.history(rec["id"])
    assert "110101199003074518" not in json.dumps(entries)


def test_relations_display_lookup_rollup_and_missing_ids(tenant: Any) -> None:
    api = tenant.api()
    cust = api.create("customer", {"customer_name": "关系公司", "level": "B"})
    c1 = api.create("contact", {"name": "张三", "customer": cust["id"]})
    assert c1["data"]["customer"] == {"id": cust["id"], "display": "关系公司"}
    assert c1["data"]["customer_level"] == "B"
    api.create("contact", {"name": "李四", "customer": cust["id"]})
    assert api.get(cust["id"])["data"]["contact_count"] == 2
    with pytest.raises(grpc.RpcError) as exc:
        api.create("contact", {"name": "王五", "customer": "0123456789abcdef01234567"})
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    rows, _ = api.list("contact", filter_json={"field": "customer", "op": "eq", "value": cust["id"]})
    assert {r["data"]["name"] for r in rows} == {"张三", "李四"}
    assert all(r["data"]["customer"]["display"] == "关系公司" for r in rows)


def test_twenty_concurrent_creates_get_gap_free_numbers(tenant: Any) -> None:
    api = tenant.api()
    codes: list[str] = []
    failures: list[Exception] = []

    def create(i: int) -> None:
        try:
            codes.append(api.create("customer", {"customer_name": f"并发{i}"})["data"]["code"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sorted(codes) == [f"KH-{n:04d}" for n in range(1, 21)]


def test_bulk_create_all_or_nothing(tenant: Any, db: Any) -> None:
    api = tenant.api()
    existing = api.create("customer", {"customer_name": "已存在"})
    rows = [{"customer_name": f"批量{i}", "level": "ABC"[i % 3]} for i in range(300)]
    # a bad row: 422 naming rows[i].field, nothing written
    bad = rows + [{"customer_name": "坏", "level": "Z"}]
    with pytest.raises(grpc.RpcError) as exc:
        api.call("BulkCreateRecords", form_id="customer", records_json=json.dumps(bad, ensure_ascii=False))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(exc.value.details())["errors"][0]["field"] == "rows[300].level"
    # a repeat inside the batch, then a clash with the store: 409, nothing written
    with pytest.raises(grpc.RpcError) as exc:
        api.call(
            "BulkCreateRecords",
            form_id="customer",
            records_json=json.dumps(rows + [{"customer_name": "批量7"}], ensure_ascii=False),
        )
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as exc:
        api.call(
            "BulkCreateRecords",
            form_id="customer",
            records_json=json.dumps(rows + [{"customer_name": "已存在"}], ensure_ascii=False),
        )
    problem = json.loads(exc.value.details())
    assert problem["field"] == "rows[300].customer_name" and problem["existing_record"]["id"] == existing["id"]
    assert db["records"].count_documents({"tenant_id": tenant.id}) == 1
    assert db["counters"].find_one({"_id": f"{tenant.id}|{tenant.customer.id}|code|KH-{{0000}}"})["seq"] == 1
    ids = list(
        api.call("BulkCreateRecords", form_id="customer", records_json=json.dumps(rows, ensure_ascii=False)).record_ids
    )
    assert len(ids) == 300 and len(set(ids)) == 300
    from record_service.events import entries_of

    stored = list(db["history"].find({"tenant_id": tenant.id, "action": "created"}))
    assert len(stored) == 1 + 2  # the single create, and the bulk's 300 records in two batch entries
    created = [e for doc in stored for e in entries_of(doc)]
    assert sorted(e["record_id"] for e in created if e["record_id"] in ids) == sorted(ids)
    assert len({e["_id"] for e in created}) == 301  # one event id a record
    codes = sorted(d["data"]["code"] for d in db["records"].find({"tenant_id": tenant.id}))
    assert codes == [f"KH-{n:04d}" for n in range(1, 302)]
    assert api.get(ids[5])["data"]["customer_name"] == "批量5"
