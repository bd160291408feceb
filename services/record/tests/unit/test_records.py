"""The record use cases over in-memory fakes of their ports (tests/unit/fakes.py), wired as server.py wires them.

Create (validation named by field, unique values, auto numbers), update with
optimistic concurrency, delete and restore, bulk create all or nothing, and the
history every write leaves — in milliseconds, without a store.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm_runtime.calls import call_deadline
from crm_runtime.errors import Conflict, DeadlineExceeded, Forbidden, Locked, NotFound, ValidationFailed
from crm_runtime.principal import Principal
from record_service.api.servicer import UseCases
from record_service.domain.forms import FormSchema, SourceCatalog, StaticFormSource
from record_service.events import BATCH_ENTRY, ENVELOPE_FIELD
from record_service.server import build_use_cases
from record_service.store.planner import StoreQueries
from services.record.tests.unit.fakes import (
    FakeCipher,
    FakeFileStore,
    FakeHistoryReader,
    FakeRecordRepository,
    matches,
)

TENANT = "t1"
FIELDS: tuple[dict[str, Any], ...] = (
    {
        "key": "customer_name",
        "type": "text",
        "label": {"zh-CN": "客户名称", "en": "Customer name"},
        "required": True,
        "unique": True,
        "filterable": True,
    },
    {
        "key": "level",
        "type": "select",
        "label": {"zh-CN": "客户分级", "en": "Level"},
        "options": [{"value": v, "label": {"zh-CN": v, "en": v}} for v in ("A", "B", "C")],
    },
    {"key": "amount", "type": "money", "label": {"zh-CN": "金额", "en": "Amount"}},
    {"key": "code", "type": "auto_number", "label": {"zh-CN": "编号", "en": "Code"}, "pattern": "KH-{0000}"},
    {
        "key": "last_contacted_at",
        "type": "datetime",
        "label": {"zh-CN": "最后联系时间", "en": "Last contacted"},
        "read_only": True,
    },
)
CUSTOMER = FormSchema("form-customer", "customer", TENANT, 1, "customer_name", FIELDS)
ADMIN = Principal(tenant_id=TENANT, user_id="u-admin", role="admin", department_id="d-1", locale="en")


class Clock:
    """A clock that moves one second a call (history entries get distinct times)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture()
def repo() -> FakeRecordRepository:
    return FakeRecordRepository()


def wire(repo: FakeRecordRepository, *, bulk_chunk: int | None = None) -> UseCases:
    forms = StaticFormSource([CUSTOMER])
    ids = count(1)
    return build_use_cases(
        repo,
        forms,
        FakeCipher(),
        queries=StoreQueries(repo),
        catalog=SourceCatalog(forms),
        history=FakeHistoryReader(repo),
        files=FakeFileStore(),
        tz=ZoneInfo("Asia/Shanghai"),
        clock=Clock(),
        new_id=lambda: f"{next(ids):024x}",
        bulk_chunk=bulk_chunk,
    )


@pytest.fixture()
def uc(repo: FakeRecordRepository) -> UseCases:
    return wire(repo)


def field_errors(exc: ValidationFailed) -> dict[str, str]:
    return {e.field: e.rule for e in exc.errors}


# ---------------------------------------------------------------- create


def test_create_stores_the_record_its_claim_its_number_and_one_history_entry_in_one_transaction(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "A", "amount": "12.50"})

    assert record["version"] == 1 and record["owner_id"] == "u-admin" and record["department_id"] == "d-1"
    assert record["data"]["customer_name"] == "华信恒通" and record["data"]["code"] == "KH-0001"
    stored = repo.records[record["id"]]
    assert stored["data"]["amount"] == 1250  # money is stored as integer fen
    assert stored["acl"] and stored["kw"] and stored["seq"] == 1
    assert list(repo.uniques.values()) == [record["id"]]
    assert repo.transactions == 1
    [entry] = repo.history.values()
    assert entry["action"] == "created" and entry["record_id"] == record["id"]
    assert entry[ENVELOPE_FIELD]["type"] == "record.created"
    assert {c["field"] for c in entry["changes"]} == {"customer_name", "level", "amount", "code"}

    second = uc.records.create(ADMIN, "customer", {"customer_name": "北京远景"})
    assert second["data"]["code"] == "KH-0002"


def test_a_create_repeated_with_its_idempotency_key_returns_the_first_record_and_writes_nothing(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    first = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"}, idempotency_key="evt-1:auto-1:0")
    again = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"}, idempotency_key="evt-1:auto-1:0")

    assert again["id"] == first["id"]
    assert len(repo.records) == 1 and len(repo.history) == 1
    other = uc.records.create(ADMIN, "customer", {"customer_name": "北京远景"}, idempotency_key="evt-2:auto-1:0")
    assert other["id"] != first["id"]
    with pytest.raises(ValidationFailed) as exc:
        uc.records.create(ADMIN, "customer", {"customer_name": "上海"}, idempotency_key="k" * 201)
    assert field_errors(exc.value) == {"idempotency_key": "idempotency_key_too_long"}


def test_a_write_by_a_service_for_an_automation_says_so_in_its_event(uc: UseCases, repo: FakeRecordRepository) -> None:
    robot = Principal.service(TENANT, "workflow", on_behalf="automation:a1:2")
    uc.records.create(robot, "customer", {"customer_name": "华信恒通"})
    uc.records.create(ADMIN, "customer", {"customer_name": "北京远景"})

    vias = sorted(str(e[ENVELOPE_FIELD]["data"].get("via")) for e in repo.history.values())
    assert vias == ["None", "automation:a1:2"]


def test_only_the_platform_writes_a_read_only_field(uc: UseCases) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})
    with pytest.raises(ValidationFailed) as exc:
        uc.records.update(ADMIN, record["id"], {"last_contacted_at": "2026-03-01T08:00:00Z"}, 1)
    assert field_errors(exc.value) == {"last_contacted_at": "read_only"}

    robot = Principal.service(TENANT, "workflow", on_behalf="automation:a1:1")
    updated = uc.records.update(robot, record["id"], {"last_contacted_at": "2026-03-01T08:00:00Z"}, 1)
    assert updated["data"]["last_contacted_at"].startswith("2026-03-01T08:00:00")


def test_only_the_platform_writes_an_approval_status(repo: FakeRecordRepository) -> None:
    form = FormSchema(
        "form-contract",
        "contract",
        TENANT,
        1,
        "no",
        (
            {"key": "no", "type": "text", "label": {"zh-CN": "编号", "en": "No"}},
            {"key": "approval_status", "type": "approval_status", "label": {"zh-CN": "审批状态", "en": "Approval"}},
        ),
    )
    forms = StaticFormSource([form])
    uc = build_use_cases(
        repo,
        forms,
        FakeCipher(),
        queries=StoreQueries(repo),
        catalog=SourceCatalog(forms),
        history=FakeHistoryReader(repo),
        files=FakeFileStore(),
        clock=Clock(),
    )
    record = uc.records.create(ADMIN, "contract", {"no": "HT-1"})
    with pytest.raises(ValidationFailed) as exc:
        uc.records.update(ADMIN, record["id"], {"approval_status": "approved"}, 1)
    assert field_errors(exc.value) == {"approval_status": "read_only"}
    robot = Principal.service(TENANT, "workflow", on_behalf="approval:i1")
    assert (
        uc.records.update(robot, record["id"], {"approval_status": "pending"}, 1)["data"]["approval_status"]
        == "pending"
    )
    with pytest.raises(ValidationFailed):
        uc.records.update(robot, record["id"], {"approval_status": "maybe"}, 2)


def test_a_record_a_service_creates_without_an_owner_has_none(uc: UseCases, repo: FakeRecordRepository) -> None:
    robot = Principal.service(TENANT, "integration", on_behalf="web-form")
    record = uc.records.create(robot, "customer", {"customer_name": "官网线索"})

    assert record["owner_id"] in (None, "") and record["department_id"] in (None, "")
    assert repo.records[record["id"]]["acl"] == []


def test_create_names_each_invalid_field(uc: UseCases, repo: FakeRecordRepository) -> None:
    with pytest.raises(ValidationFailed) as exc:
        uc.records.create(ADMIN, "customer", {"level": "Z", "amount": "lots", "colour": "red"})

    errors = field_errors(exc.value)
    assert errors["customer_name"] == "required"
    assert {"level", "amount", "colour"} <= set(errors)
    assert errors["colour"] == "unknown_field"
    assert not repo.records and not repo.history and not repo.uniques


def test_create_refuses_a_taken_unique_value_naming_the_holder_and_rolls_the_number_back(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    first = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})

    with pytest.raises(Conflict) as exc:
        uc.records.create(ADMIN, "customer", {"customer_name": " 华信恒通 "})

    problem = exc.value.to_problem()
    assert problem["reason"] == "unique_conflict" and problem["field"] == "customer_name"
    assert problem["existing_record"]["id"] == first["id"]
    assert len(repo.records) == 1 and len(repo.history) == 1
    # the auto number was taken inside the aborted transaction: the next record gets the next one
    assert uc.records.create(ADMIN, "customer", {"customer_name": "北京远景"})["data"]["code"] == "KH-0002"


def test_a_record_of_another_tenant_does_not_exist(uc: UseCases) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})
    stranger = Principal(tenant_id="t2", user_id="u-admin", role="admin", locale="en")

    with pytest.raises(NotFound):
        uc.records.get(stranger, record["id"])
    assert uc.records.get(ADMIN, record["id"])["data"]["customer_name"] == "华信恒通"


# ---------------------------------------------------------------- update


def test_update_needs_the_version_it_read(uc: UseCases, repo: FakeRecordRepository) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "A"})

    updated = uc.records.update(ADMIN, record["id"], {"level": "B"}, expected_version=1)
    assert updated["version"] == 2 and updated["data"]["level"] == "B"

    with pytest.raises(Conflict) as exc:
        uc.records.update(ADMIN, record["id"], {"level": "C"}, expected_version=1)
    assert exc.value.extra["reason"] == "version_conflict"
    assert exc.value.extra["current_version"] == 2 and exc.value.extra["expected_version"] == 1
    assert repo.records[record["id"]]["data"]["level"] == "B"

    with pytest.raises(ValidationFailed) as missing:
        uc.records.update(ADMIN, record["id"], {"level": "C"}, expected_version=0)
    assert field_errors(missing.value) == {"expected_version": "required"}


def test_a_change_committed_between_read_and_write_is_a_version_conflict(
    uc: UseCases, repo: FakeRecordRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "A"})
    commit = repo.transaction

    def someone_else_first(fn: Any) -> Any:
        repo.records[record["id"]]["version"] = 7  # another writer committed after our read
        return commit(fn)

    monkeypatch.setattr(repo, "transaction", someone_else_first)
    with pytest.raises(Conflict) as exc:
        uc.records.update(ADMIN, record["id"], {"level": "B"}, expected_version=1)
    assert exc.value.extra["current_version"] == 7
    assert repo.records[record["id"]]["data"]["level"] == "A"
    assert [e["action"] for e in repo.history.values()] == ["created"]


def test_update_moves_the_unique_claim(uc: UseCases, repo: FakeRecordRepository) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})
    uc.records.update(ADMIN, record["id"], {"customer_name": "华信科技"}, expected_version=1)

    assert len(repo.uniques) == 1
    # the old name is free again
    assert uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})["version"] == 1


# ---------------------------------------------------------------- delete and restore


def test_delete_frees_the_unique_value_and_restore_needs_it_back(uc: UseCases, repo: FakeRecordRepository) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})

    deleted = uc.records.delete(ADMIN, record["id"])
    assert deleted["deleted"] is True and deleted["version"] == 2
    with pytest.raises(NotFound):
        uc.records.get(ADMIN, record["id"])
    taker = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})

    with pytest.raises(Conflict) as exc:
        uc.records.restore(ADMIN, record["id"])
    assert exc.value.extra["reason"] == "unique_conflict"
    assert repo.records[record["id"]]["deleted"] is True

    uc.records.delete(ADMIN, taker["id"])
    restored = uc.records.restore(ADMIN, record["id"])
    assert restored["deleted"] is False and restored["version"] == 3
    assert uc.records.get(ADMIN, record["id"])["id"] == record["id"]
    actions = [e["action"] for e in repo.history.values() if e["record_id"] == record["id"]]
    assert actions == ["created", "deleted", "restored"]


def test_delete_with_a_stale_version_changes_nothing(uc: UseCases, repo: FakeRecordRepository) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通"})
    uc.records.update(ADMIN, record["id"], {"level": "B"}, expected_version=1)

    with pytest.raises(Conflict):
        uc.records.delete(ADMIN, record["id"], expected_version=1)
    assert repo.records[record["id"]]["deleted"] is False


# ---------------------------------------------------------------- bulk create


def test_bulk_create_writes_every_row_or_none(uc: UseCases, repo: FakeRecordRepository) -> None:
    with pytest.raises(ValidationFailed) as exc:
        uc.bulk.create(ADMIN, "customer", [{"customer_name": "甲"}, {"level": "A"}, {"customer_name": "丙"}])
    assert field_errors(exc.value) == {"rows[1].customer_name": "required"}
    assert not repo.records and not repo.history

    with pytest.raises(Conflict) as dup:
        uc.bulk.create(ADMIN, "customer", [{"customer_name": "甲"}, {"customer_name": "乙"}, {"customer_name": "甲"}])
    assert dup.value.extra["reason"] == "unique_in_batch"
    assert dup.value.extra["errors"][0]["field"] == "rows[2].customer_name"
    assert not repo.records

    ids = uc.bulk.create(ADMIN, "customer", [{"customer_name": "甲"}, {"customer_name": "乙"}])
    assert [repo.records[i]["data"]["code"] for i in ids] == ["KH-0001", "KH-0002"]
    # one batch entry for both records, released to the relay once written
    [entry] = repo.history.values()
    assert entry["record_id"] == ids and entry["published"] is False


def test_bulk_create_refuses_a_value_held_in_the_store_and_gives_the_numbers_back(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    held = uc.records.create(ADMIN, "customer", {"customer_name": "乙"})

    with pytest.raises(Conflict) as exc:
        uc.bulk.create(ADMIN, "customer", [{"customer_name": "甲"}, {"customer_name": "乙"}])
    assert exc.value.extra["field"] == "rows[1].customer_name"
    assert exc.value.extra["existing_record"]["id"] == held["id"]
    assert set(repo.records) == {held["id"]} and len(repo.uniques) == 1
    assert uc.records.create(ADMIN, "customer", {"customer_name": "丁"})["data"]["code"] == "KH-0002"


def test_a_bulk_failing_after_a_committed_chunk_is_compensated(repo: FakeRecordRepository) -> None:
    uc = wire(repo, bulk_chunk=BATCH_ENTRY)
    rows = [{"customer_name": f"客户{i:04d}"} for i in range(BATCH_ENTRY * 2 + 50)]
    repo.fail_on_insert = 2  # the second chunk's transaction fails, after the first committed

    with pytest.raises(RuntimeError):
        uc.bulk.create(ADMIN, "customer", rows)

    assert not repo.records and not repo.history and not repo.uniques
    assert uc.records.create(ADMIN, "customer", {"customer_name": "甲"})["data"]["code"] == "KH-0001"

    repo.fail_on_insert = None
    ids = uc.bulk.create(ADMIN, "customer", rows)
    assert len(ids) == len(rows) == sum(1 for d in repo.records.values() if d["_id"] in set(ids))
    assert len([e for e in repo.history.values() if isinstance(e["record_id"], list)]) == 3
    assert all(e["published"] is False for e in repo.history.values())


@pytest.mark.parametrize("passes", [1, 3], ids=["before-the-second-chunk", "before-the-release"])
def test_a_bulk_whose_caller_stopped_waiting_is_undone(repo: FakeRecordRepository, passes: int) -> None:
    """The deadline is checked before each of the 3 chunks and before the release: past it, nothing stays."""
    uc = wire(repo, bulk_chunk=BATCH_ENTRY)
    rows = [{"customer_name": f"客户{i:04d}"} for i in range(BATCH_ENTRY * 2 + 50)]
    checks = count()

    def remaining() -> float:
        return 5.0 if next(checks) < passes else -0.01

    with call_deadline(remaining), pytest.raises(DeadlineExceeded):
        uc.bulk.create(ADMIN, "customer", rows)
    assert not repo.records and not repo.history and not repo.uniques
    assert uc.records.create(ADMIN, "customer", {"customer_name": "甲"})["data"]["code"] == "KH-0001"

    with call_deadline(lambda: 5.0):
        assert len(uc.bulk.create(ADMIN, "customer", rows)) == len(rows)
    assert len(repo.records) == len(rows) + 1


def test_bulk_create_checks_the_batch_shape(uc: UseCases) -> None:
    for rows, rule in (({"customer_name": "甲"}, "not_array"), ([], "empty_batch")):
        with pytest.raises(ValidationFailed) as exc:
            uc.bulk.create(ADMIN, "customer", rows)
        assert field_errors(exc.value) == {"records_json": rule}


# ---------------------------------------------------------------- listing


def test_list_pages_newest_first_and_counts_a_filter(uc: UseCases) -> None:
    ids = [uc.records.create(ADMIN, "customer", {"customer_name": n, "level": lv})["id"] for n, lv in
           (("甲", "A"), ("乙", "B"), ("丙", "A"))]  # fmt: skip

    page = uc.listing.list_records(ADMIN, "customer", page_size=2)
    assert [r["id"] for r in page.records] == [ids[2], ids[1]] and page.next_cursor and page.total == 3
    rest = uc.listing.list_records(ADMIN, "customer", page_size=2, cursor=page.next_cursor)
    assert [r["id"] for r in rest.records] == [ids[0]] and rest.next_cursor == ""

    level_a = uc.listing.list_records(ADMIN, "customer", tree={"field": "level", "op": "eq", "value": "A"})
    assert [r["id"] for r in level_a.records] == [ids[2], ids[0]] and level_a.total == 2
    with pytest.raises(ValidationFailed) as exc:
        uc.listing.list_records(ADMIN, "customer", tree={"field": "colour", "op": "eq", "value": "red"})
    assert list(field_errors(exc.value).values()) == ["unknown_field"]


def test_a_sort_the_store_would_do_in_memory_over_too_many_records_is_refused(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    from record_service.store.planner import MAX_SORTED_ROWS

    ids = [uc.records.create(ADMIN, "customer", {"customer_name": n, "level": "A"})["id"] for n in ("乙", "甲")]
    by_name = {"field": "customer_name", "direction": "asc"}
    assert len(uc.listing.list_records(ADMIN, "customer", sort=by_name).records) == 2
    repo.counters[f"order|{TENANT}|{CUSTOMER.id}"] = MAX_SORTED_ROWS + 1  # as if the form held that many

    with pytest.raises(ValidationFailed) as exc:
        uc.listing.list_records(ADMIN, "customer", sort=by_name)
    [error] = exc.value.errors
    assert (error.field, error.rule) == ("sort[0].field", "sort_too_large")
    assert "customer_name" in error.message and "50,000" in error.message
    # the creation order and a filter the estimate finds selective still list
    assert len(uc.listing.list_records(ADMIN, "customer").records) == 2
    flt = {"field": "level", "op": "eq", "value": "A"}
    assert {r["id"] for r in uc.listing.list_records(ADMIN, "customer", tree=flt, sort=by_name).records} == set(ids)


# ---------------------------------------------------------------- history


def test_history_lists_each_write_newest_first_with_labels_and_pages(uc: UseCases) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "A"})
    uc.records.update(ADMIN, record["id"], {"level": "B"}, expected_version=1)
    uc.records.delete(ADMIN, record["id"])

    entries, cursor = uc.history.page(ADMIN, record["id"])
    assert [e["action"] for e in entries] == ["deleted", "updated", "created"] and cursor == ""
    update = entries[1]
    assert update["event_type"] == "record.updated" and update["actor"] == "u-admin"
    assert update["changes"] == [{"field": "level", "old": "A", "new": "B", "label": "Level"}]

    first, cursor = uc.history.page(ADMIN, record["id"], page_size=2)
    assert [e["action"] for e in first] == ["deleted", "updated"] and cursor
    rest, cursor = uc.history.page(ADMIN, record["id"], cursor=cursor, page_size=2)
    assert [e["action"] for e in rest] == ["created"] and cursor == ""

    with pytest.raises(ValidationFailed) as exc:
        uc.history.page(ADMIN, record["id"], cursor="not-a-cursor")
    assert field_errors(exc.value) == {"cursor": "invalid_cursor"}


def test_history_of_a_bulk_created_record_is_its_own_entry(uc: UseCases) -> None:
    ids = uc.bulk.create(ADMIN, "customer", [{"customer_name": "甲"}, {"customer_name": "乙"}])

    entries, _ = uc.history.page(ADMIN, ids[1])
    assert [(e["record_id"], e["action"]) for e in entries] == [(ids[1], "created")]
    assert {c["field"]: c["new"] for c in entries[0]["changes"]}["customer_name"] == "乙"


# ---------------------------------------------------------------- the fake answers like the store


def test_the_fake_store_matches_predicates_as_mongodb_does() -> None:
    doc = {"_id": "r1", "kw": ["华信", "信恒"], "data": {"n": 5, "when": "2026-01-02"}, "deleted": False}
    assert matches(doc, {"kw": "华信", "data.n": {"$gte": 5, "$lt": 6}})
    assert matches(doc, {"kw": {"$in": ["x", "信恒"]}, "data.missing": None})
    assert not matches(doc, {"data.n": {"$gt": "4"}})  # another type never compares
    assert not matches(doc, {"deleted": 0})  # a bool is not a number


# ---------------------------------------------------------------- approvals: locks and guarded changes

ROBOT = Principal.service(TENANT, "workflow", on_behalf="approval:p1", locale="en")


def test_a_locked_record_refuses_a_users_edit_and_delete_with_423_naming_the_approval(uc: UseCases) -> None:
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "B"})
    uc.records.gate.lock(ROBOT, record["id"], {"id": "inst-1", "name": "合同审批"})
    assert uc.records.get(ADMIN, record["id"])["lock"]["name"] == "合同审批"

    with pytest.raises(Locked) as exc:
        uc.records.update(ADMIN, record["id"], {"level": "A"}, 1)
    assert "合同审批" in exc.value.detail and exc.value.to_problem()["status"] == 423
    with pytest.raises(Locked):
        uc.records.delete(ADMIN, record["id"], 1)
    # the workflow writes the outcome while it is locked, then unlocks
    uc.records.update(ROBOT, record["id"], {"level": "A"}, 1)
    with pytest.raises(Conflict):
        uc.records.gate.lock(ROBOT, record["id"], {"id": "inst-2", "name": "另一个"})
    uc.records.gate.unlock(ROBOT, record["id"], "inst-1")
    assert "lock" not in uc.records.get(ADMIN, record["id"])
    assert uc.records.update(ADMIN, record["id"], {"level": "C"}, 2)["data"]["level"] == "C"
    with pytest.raises(Forbidden):
        uc.records.gate.lock(ADMIN, record["id"], {"id": "x"})


def test_a_guarded_change_is_held_for_approval_then_applied_or_dropped(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    uc.records.gate.set_guards(
        ROBOT,
        "customer",
        "approval:p1",
        [{"id": "g1", "field": "level", "condition": {"field": "level", "op": "eq", "value": "A"}}],
    )
    record = uc.records.create(ADMIN, "customer", {"customer_name": "华信恒通", "level": "B", "amount": "1"})

    after = uc.records.update(ADMIN, record["id"], {"level": "A", "amount": "2"}, 1)
    assert after["data"]["level"] == "B" and after["data"]["amount"] == "2.00"  # the unguarded field is written
    assert after["pending_change"]["fields"] == ["level"]
    held = [e for e in repo.history.values() if e["action"] == "change_held"]
    assert len(held) == 1
    payload = held[0][ENVELOPE_FIELD]["data"]
    assert payload["changes"] == {"level": {"old": "B", "new": "A"}} and payload["guard_owner"] == "approval:p1"
    with pytest.raises(Locked):
        uc.records.update(ADMIN, record["id"], {"level": "C"}, 2)  # the held field waits

    change_id = payload["change_id"]
    applied = uc.records.gate.resolve(ROBOT, uc.records, record["id"], change_id, True)
    assert applied["data"]["level"] == "A" and "pending_change" not in applied

    uc.records.update(ADMIN, record["id"], {"level": "B"}, applied["version"])  # not guarded: not to A
    again = uc.records.update(ADMIN, record["id"], {"level": "A"}, applied["version"] + 1)
    dropped_id = [e for e in repo.history.values() if e["action"] == "change_held"][-1][ENVELOPE_FIELD]["data"][
        "change_id"
    ]
    kept = uc.records.gate.resolve(ROBOT, uc.records, record["id"], dropped_id, False, "折扣过高")
    assert kept["data"]["level"] == "B" and "pending_change" not in kept and again["pending_change"]
    [dropped] = [e for e in repo.history.values() if e["action"] == "change_dropped"]
    assert dropped[ENVELOPE_FIELD]["data"]["reason"] == "折扣过高"
    with pytest.raises(Conflict):
        uc.records.gate.resolve(ROBOT, uc.records, record["id"], dropped_id, True)


# ---------------------------------------------------------------- the public pool


def _pool(repo: FakeRecordRepository, **rules: Any) -> dict[str, Any]:
    pool = {
        "id": "pool-1",
        "form_id": CUSTOMER.id,
        "name": "公海",
        "members": {"users": [], "departments": ["d-sales"]},
        "admins": ["u-pool-admin"],
        "cooldown_days": 7,
        **rules,
    }
    repo.pool_docs[(TENANT, "pool-1")] = pool
    return pool


SELLER = Principal(tenant_id=TENANT, user_id="u-seller", role="sales", roles=("sales",), department_id="d-sales")
OTHER_SELLER = Principal(
    tenant_id=TENANT, user_id="u-seller-2", role="sales", roles=("sales",), department_id="d-sales"
)
OUTSIDER = Principal(tenant_id=TENANT, user_id="u-out", role="sales", roles=("sales",), department_id="d-finance")


def test_a_record_returned_to_the_pool_loses_its_owner_and_members_see_and_claim_it(
    uc: UseCases, repo: FakeRecordRepository
) -> None:
    _pool(repo)
    record = uc.records.create(ROBOT, "customer", {"customer_name": "华信恒通"}, owner_id="")
    moved = uc.records.pool.move(ROBOT, record["id"], "pool-1", "30 天未跟进", {})
    assert moved["pool_id"] == "pool-1" and moved["owner_id"] in (None, "")
    stored = repo.records[record["id"]]
    assert stored["acl"] == ["p:pool-1"] and stored["pool_entered_at"]

    page = uc.listing.list_records(SELLER, "customer", pool_id="pool-1", pool=uc.records.pool)
    assert [r["id"] for r in page.records] == [record["id"]]
    assert uc.records.get(SELLER, record["id"])["pool_id"] == "pool-1"
    with pytest.raises(NotFound):
        uc.listing.list_records(OUTSIDER, "customer", pool_id="pool-1", pool=uc.records.pool)
    with pytest.raises(NotFound):
        uc.records.get(OUTSIDER, record["id"])
    with pytest.raises(NotFound):
        uc.records.pool.claim(OUTSIDER, record["id"])

    claimed = uc.records.pool.claim(SELLER, record["id"])
    assert claimed["owner_id"] == "u-seller" and "pool_id" not in claimed
    actions = [e[ENVELOPE_FIELD]["data"].get("pool_action") for e in repo.history.values()]
    assert actions.count("returned") == 1 and actions.count("claimed") == 1


def test_a_claim_respects_the_cooldown_and_the_caps(uc: UseCases, repo: FakeRecordRepository) -> None:
    _pool(repo, max_owned_per_user=2, max_claims_per_day=3)
    ids = [uc.records.create(SELLER, "customer", {"customer_name": f"客户{i}"})["id"] for i in range(4)]
    uc.records.pool.move(SELLER, ids[0], "pool-1", "不再跟进", {})
    with pytest.raises(ValidationFailed) as exc:
        uc.records.pool.move(SELLER, ids[1], "pool-1", "", {})
    assert field_errors(exc.value) == {"reason": "required"}

    with pytest.raises(ValidationFailed) as exc:
        uc.records.pool.claim(SELLER, ids[0])  # the former owner within 7 days
    assert field_errors(exc.value) == {"record_id": "pool_cooldown"}

    for record_id in ids[1:]:
        uc.records.pool.move(SELLER, record_id, "pool-1", "退回", {})
    uc.records.pool.claim(OTHER_SELLER, ids[0])
    uc.records.pool.claim(OTHER_SELLER, ids[1])
    with pytest.raises(ValidationFailed) as exc:
        uc.records.pool.claim(OTHER_SELLER, ids[2])  # owns 2 of 2
    assert field_errors(exc.value) == {"owner_id": "pool_cap_user"}
    with pytest.raises(Forbidden):
        uc.records.pool.assign(OTHER_SELLER, ids[2], "u-seller-2")  # not a pool admin
