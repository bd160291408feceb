"""Approvals on the real store (SecantusDB), with plain fakes of the record and form services.

A contract walks its steps by amount (condition branch, 会签); 或签 and sequence steps; rejections to the
submitter and to the previous step; transfer and added approvers; withdrawal; a guarded change applied on
approval and dropped on rejection; reminders then an escalation, once across two sweeping workers;
approval.completed in the outbox once, even when the record service was down at the end; the start_approval
action; the template; and who may see and act (another tenant's instance 404, a non-assignee 403/404).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import grpc
import pytest

from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime.errors import Conflict, Forbidden, NotFound, ValidationFailed
from crm_runtime.principal import Principal
from crm_runtime.testing import StoreProcess
from services.workflow.tests.integration.fakes import FakeForms, FakeRecords
from services.workflow.tests.integration.support import ADMIN, SALES, TENANT, World
from workflow_service.domain.approval_engine import Approvals
from workflow_service.domain.approval_service import ApprovalUseCases
from workflow_service.domain.engine import Engine
from workflow_service.domain.ports import DirectoryUser
from workflow_service.domain.service import WorkflowUseCases
from workflow_service.store.approvals import MongoApprovalStore

pytestmark = pytest.mark.integration

REP = SALES[0]


def user(user_id: str, role: str = "sales", tenant: str = TENANT) -> Principal:
    return Principal(tenant_id=tenant, user_id=user_id, role=role, roles=(role,))


class AW:
    """The engine world with the approvals wired in as server.py wires them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.records: FakeRecords = world.records
        self.store = MongoApprovalStore(world.store.db)
        self.store.ensure_indexes()
        self.approvals = self.new_approvals()
        world.engine.approvals = self.approvals
        self.uc = ApprovalUseCases(self.approvals)
        self.wuc = WorkflowUseCases(world.store, world.forms, world.engine, clock=world.clock, approvals=self.uc)
        directory = world.store
        directory.put_user(DirectoryUser(TENANT, "u-boss", "经理", manager_id="u-gm", roles=("manager",)))
        directory.put_user(DirectoryUser(TENANT, "u-gm", "总经理", roles=("manager",)))
        directory.put_user(DirectoryUser(TENANT, "u-cfo", "财务总监", manager_id="u-gm", roles=("finance_director",)))
        directory.put_user(DirectoryUser(TENANT, "u-sd", "销售总监", manager_id="u-gm", roles=("sales_director",)))
        directory.put_user(DirectoryUser(TENANT, "u-admin", "管理员", roles=("admin",)))
        directory.put_user(DirectoryUser(TENANT, "u-left", "离职", active=False))

    def new_approvals(self) -> Approvals:
        return Approvals(
            self.store, self.records, self.world.forms, self.world.store, self.world.engine.channels,
            self.world.store, clock=self.world.clock,
        )  # fmt: skip

    def engine(self, worker: str) -> Engine:
        engine = self.world.new_engine(worker=worker)
        engine.approvals = self.new_approvals()
        return engine

    def later(self, **delta: float) -> None:
        self.world.clock_now += timedelta(**delta)

    def record(self, form: str, data: dict[str, Any], owner: str = REP) -> str:
        return str(self.records.add(TENANT, form, data, owner_id=owner)["data"]["record_id"])

    def todo(self, user_id: str, box: str = "todo") -> list[dict[str, Any]]:
        items, _ = self.uc.inbox(user(user_id), box, size=100)
        return items

    def task_of(self, user_id: str) -> str:
        [item] = self.todo(user_id)
        return str(item["task_id"])

    def notes(self, user_id: str) -> list[str]:
        rows, _, _ = self.world.uc.notifications(user(user_id), size=100)
        return [r["title"] for r in rows]

    def completed(self) -> list[dict[str, Any]]:
        return [d["event"] for d in self.world.store.db["outbox"].find({"event.type": "approval.completed"})]


@pytest.fixture()
def aw(world: World) -> Iterator[AW]:
    yield AW(world)


def approver(node_id: str, users: list[str], *, mode: str = "any", next_: str = "end", **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id, "type": "approver", "approvers": [{"type": "user", "id": u} for u in users], "mode": mode,
        "next": next_, **extra,
    }  # fmt: skip


END = {"id": "end", "type": "end"}
CONTRACT_PROCESS = {
    "name": {"zh-CN": "合同审批", "en": "Contract approval"},
    "key": "contract_approval",
    "form": "contract",
    "nodes": [
        {"id": "manager", "type": "approver", "approvers": [{"type": "submitter_manager"}], "next": "amount"},
        {
            "id": "amount",
            "type": "condition",
            "branches": [
                {"when": {"field": "amount", "op": "gt", "value": "1000000"}, "next": "both"},
                {"when": {"field": "amount", "op": "gt", "value": "100000"}, "next": "gm"},
            ],
            "default": "end",
        },
        approver("gm", ["u-gm"]),
        approver("both", ["u-gm", "u-cfo"], mode="all"),
        END,
    ],
}


def simple(nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "审批", "form": "contract", "nodes": [*nodes, END], **extra}


# ---------------------------------------------------------------- the contract: condition branch, 会签, the outcome


def test_a_big_contract_goes_manager_then_gm_and_cfo_both_and_the_outcome_is_written_once(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    record_id = aw.record("contract", {"contract_no": "HT-202612-0001", "amount": "2000000.00"})

    submitted = aw.uc.submit(user(REP), record_id, "contract_approval", "请审批")
    instance_id = submitted["id"]
    record = aw.records.records[record_id]
    assert record["lock"] == {"id": instance_id, "name": "合同审批", "by": f"approval:{instance_id}"}
    assert record["data"]["approval_status"] == "pending"
    assert submitted["state"] == "pending" and submitted["current_step"]["users"] == ["u-boss"]
    assert aw.notes("u-boss") == ["待审批：合同审批 · HT-202612-0001"]

    aw.uc.approve(user("u-boss", "manager"), aw.task_of("u-boss"), "同意")
    step = aw.uc.get(user(REP), instance_id)["current_step"]
    assert step["node_id"] == "both" and step["mode"] == "all" and sorted(step["users"]) == ["u-cfo", "u-gm"]
    aw.uc.approve(user("u-gm", "manager"), aw.task_of("u-gm"))
    assert aw.uc.get(user(REP), instance_id)["state"] == "pending"  # 会签: the CFO too
    done = aw.uc.approve(user("u-cfo", "manager"), aw.task_of("u-cfo"), "财务无异议")

    assert done["state"] == "approved" and done["decided_by"] == "u-cfo"
    assert "lock" not in record and record["data"]["approval_status"] == "approved"
    assert [n for n in aw.notes(REP) if n.startswith("审批通过")] == ["审批通过：合同审批 · HT-202612-0001"]
    [event] = aw.completed()
    assert event["data"] == {
        "instance_id": instance_id, "process_id": done["process_id"], "process_version": 1, "record_id": record_id,
        "form_id": "f-contract", "outcome": "approved", "submitted_by": REP, "decided_by": "u-cfo", "reason": "",
        "kind": "record", "change_id": "",
    }  # fmt: skip
    assert event["source"] == "workflow" and event["actor"] == "u-cfo"
    aw.approvals.reconcile(instance_id)  # again (a watchdog, a retry): nothing twice
    assert len(aw.completed()) == 1
    kinds = [e["type"] for e in done["timeline"]]
    assert kinds[0] == "submitted" and kinds.count("approved") == 4  # three approvals, then the outcome
    assert [c["comment"] for c in done["timeline"] if c.get("comment")] == ["请审批", "同意", "财务无异议"]
    from google.protobuf.json_format import ParseDict

    from crm.events.v1 import events_pb2

    ParseDict(event["data"], events_pb2.ApprovalCompleted())  # the payload matches its contract


def test_a_small_contract_needs_only_the_manager_and_a_middle_one_the_gm(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    small = aw.uc.submit(user(REP), aw.record("contract", {"amount": "50000.00"}))  # the form's one process
    aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))
    assert aw.uc.get(user(REP), small["id"])["state"] == "approved"

    middle = aw.uc.submit(user(REP), aw.record("contract", {"amount": "200000.00"}))
    aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))
    assert aw.uc.get(user(REP), middle["id"])["current_step"]["users"] == ["u-gm"]
    aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))
    assert aw.uc.get(user(REP), middle["id"])["state"] == "approved"
    assert [e["data"]["outcome"] for e in aw.completed()] == ["approved", "approved"]


# ---------------------------------------------------------------- 或签, sequence, idempotent actions


def test_any_the_first_approval_decides_and_the_other_task_is_cancelled(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("either", ["u-gm", "u-cfo"], mode="any")]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    gm_task, cfo_task = aw.task_of("u-gm"), aw.task_of("u-cfo")

    first = aw.uc.approve(user("u-gm"), gm_task)
    assert first["state"] == "approved"
    assert aw.todo("u-cfo") == [] and {t["state"] for t in first["tasks"]} == {"done", "cancelled"}
    with pytest.raises(Conflict) as exc:
        aw.uc.approve(user("u-cfo"), cfo_task)
    assert exc.value.extra["rule"] == "not_pending"
    # the same approval again (a retried request) is answered, not done twice
    assert aw.uc.approve(user("u-gm"), gm_task)["state"] == "approved"
    assert len(aw.completed()) == 1
    with pytest.raises(Conflict):
        aw.uc.reject(user("u-gm"), gm_task, "改主意了")
    assert instance["id"] == first["id"]


def test_two_approvals_of_a_countersign_at_once_move_the_step_once(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("both", ["u-gm", "u-cfo"], mode="all", next_="last"),
                                        approver("last", ["u-sd"])]))  # fmt: skip
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    tasks = [(p, aw.task_of(p)) for p in ("u-gm", "u-cfo")]
    barrier = threading.Barrier(2)

    def approve(pair: tuple[str, str]) -> str:
        barrier.wait()
        return str(aw.uc.approve(user(pair[0]), pair[1])["state"])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(approve, tasks))
    view = aw.uc.get(ADMIN, instance["id"])
    assert view["current_step"]["node_id"] == "last" and len(aw.todo("u-sd")) == 1


def test_a_sequence_asks_one_after_another(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("chain", ["u-boss", "u-gm", "u-cfo"], mode="sequence")]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    assert aw.todo("u-gm") == [] and aw.todo("u-cfo") == []
    aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))
    assert aw.todo("u-cfo") == [] and len(aw.todo("u-gm")) == 1
    aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))
    assert aw.uc.get(ADMIN, instance["id"])["current_step"]["users"] == ["u-cfo"]
    assert aw.uc.approve(user("u-cfo"), aw.task_of("u-cfo"))["state"] == "approved"


# ---------------------------------------------------------------- rejections


def test_a_rejection_returns_it_to_the_submitter_with_the_reason(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    record_id = aw.record("contract", {"contract_no": "HT-2", "amount": "2000000.00"})
    instance = aw.uc.submit(user(REP), record_id)
    task = aw.task_of("u-boss")
    with pytest.raises(ValidationFailed) as exc:
        aw.uc.reject(user("u-boss"), task, "  ")
    assert exc.value.errors[0].field == "reason"
    with pytest.raises(ValidationFailed) as exc:
        aw.uc.reject(
            user(
                "u-boss",
            ),
            task,
            "太贵",
            to="previous",
        )
    assert exc.value.errors[0].rule == "no_previous_node"

    done = aw.uc.reject(user("u-boss"), task, "价格低于底线", "请重新报价")
    assert done["state"] == "rejected" and done["reason"] == "价格低于底线" and done["decided_by"] == "u-boss"
    record = aw.records.records[record_id]
    assert "lock" not in record and record["data"]["approval_status"] == "rejected"
    assert "审批驳回：合同审批 · HT-2（价格低于底线）" in aw.notes(REP)
    [event] = aw.completed()
    assert (event["data"]["outcome"], event["data"]["reason"]) == ("rejected", "价格低于底线")
    # the submitter edits and submits again: a new instance
    again = aw.uc.submit(user(REP), record_id)
    assert again["id"] != instance["id"] and again["state"] == "pending"


def test_a_rejection_to_the_previous_step_asks_that_step_again(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "200000.00"}))
    aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))
    back = aw.uc.reject(user("u-gm"), aw.task_of("u-gm"), "请经理再核对金额", to="previous")
    assert back["state"] == "pending" and back["current_step"]["node_id"] == "manager"
    assert back["current_step"]["users"] == ["u-boss"] and "sent_back" in [e["type"] for e in back["timeline"]]
    aw.uc.approve(user("u-boss"), aw.task_of("u-boss"), "已核对")
    assert aw.uc.get(ADMIN, instance["id"])["current_step"]["node_id"] == "gm"
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"


# ---------------------------------------------------------------- transfer, added approvers, withdraw, comments


def test_transfer_hands_the_task_on_to_an_active_user(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    task = aw.task_of("u-boss")
    for bad in ("u-left", "nobody", "service:workflow"):
        with pytest.raises(ValidationFailed) as exc:
            aw.uc.transfer(user("u-boss"), task, bad)
        assert exc.value.errors[0].rule == "unknown_user"
    with pytest.raises(ValidationFailed):
        aw.uc.transfer(user("u-boss"), task, "u-boss")  # already approves this step

    moved = aw.uc.transfer(user("u-boss"), task, "u-gm", "出差，请总经理审批")
    assert moved["current_step"]["users"] == ["u-gm"]
    assert [i["task_id"] for i in aw.todo("u-boss", "done")] == [task] and aw.todo("u-boss") == []
    assert [t["to_user"] for t in moved["timeline"] if t["type"] == "transferred"] == ["u-gm"]
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"
    assert "u-gm" in (aw.store.instance(instance["id"]) or {})["participants"]


def test_an_approver_added_before_approves_first_then_the_task_comes_back(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    aw.uc.add_approver(user("u-boss"), aw.task_of("u-boss"), "u-cfo", "before", "请财务先看")
    assert aw.todo("u-boss") == [] and len(aw.todo("u-cfo")) == 1
    aw.uc.approve(user("u-cfo"), aw.task_of("u-cfo"))
    assert aw.uc.get(ADMIN, instance["id"])["state"] == "pending"
    back = aw.task_of("u-boss")
    assert back.endswith(".r")
    assert aw.uc.approve(user("u-boss"), back)["state"] == "approved"


def test_an_approver_added_after_must_approve_too(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    after = aw.uc.add_approver(user("u-boss"), aw.task_of("u-boss"), "u-gm", "after")
    assert after["state"] == "pending" and after["current_step"]["users"] == ["u-gm"]
    with pytest.raises(ValidationFailed):
        aw.uc.add_approver(user("u-gm"), aw.task_of("u-gm"), "u-gm", "sideways")
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"
    assert [e["type"] for e in aw.uc.get(ADMIN, instance["id"])["timeline"]].count("approver_added") == 1


def test_the_submitter_withdraws_a_pending_approval(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    record_id = aw.record("contract", {"amount": "200000.00"})
    instance = aw.uc.submit(user(REP), record_id)
    with pytest.raises(Forbidden):
        aw.uc.withdraw(user("u-boss"), instance["id"])  # an approver sees it but may not withdraw
    aw.uc.comment(user("u-boss"), instance["id"], "金额需核实")
    out = aw.uc.withdraw(user(REP), instance["id"], "合同条款要改")
    assert out["state"] == "withdrawn" and out["reason"] == "合同条款要改"
    assert aw.todo("u-boss") == [] and "lock" not in aw.records.records[record_id]
    assert aw.records.records[record_id]["data"]["approval_status"] == "withdrawn"
    assert "审批已撤回：合同审批 · 200000.00" not in aw.notes(REP)  # the title is the record's own number or text
    assert any(n.startswith("审批已撤回") for n in aw.notes("u-boss"))
    assert [e["data"]["outcome"] for e in aw.completed()] == ["withdrawn"]
    assert aw.uc.withdraw(user(REP), instance["id"])["state"] == "withdrawn"  # a retried withdrawal
    with pytest.raises(Conflict):
        aw.uc.withdraw(ADMIN, instance["id"])
    assert [e["comment"] for e in out["timeline"] if e["type"] == "commented"] == ["金额需核实"]


# ---------------------------------------------------------------- a record in approval, locks


def test_one_open_approval_per_record_and_a_repeated_submit_is_the_same_one(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    record_id = aw.record("contract", {"amount": "1.00"})
    first = aw.uc.submit(user(REP), record_id)
    assert aw.uc.submit(user(REP), record_id)["id"] == first["id"]
    with pytest.raises(Conflict) as exc:
        aw.uc.submit(user(SALES[1]), record_id)
    assert exc.value.extra["rule"] == "already_in_approval"
    # a lock another approval holds (outside this store): refused, nothing left behind
    other = aw.record("contract", {"amount": "1.00"})
    aw.records.records[other]["lock"] = {"id": "elsewhere", "name": "别的审批"}
    with pytest.raises(Conflict):
        aw.uc.submit(user(REP), other)
    assert aw.store.open_instance(TENANT, other) is None


def test_the_outcome_waits_for_the_record_service_and_is_written_once(aw: AW) -> None:
    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    record_id = aw.record("contract", {"amount": "1.00"})
    instance = aw.uc.submit(user(REP), record_id)
    aw.records.gate_down = 2  # ClearRecordLock does not answer at the end (nor when tried again at once)
    done = aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))
    assert done["state"] == "approved" and aw.records.records[record_id].get("lock")
    assert aw.completed() == []  # the event follows the record's effects
    aw.later(seconds=31)
    assert aw.world.engine.sweep() >= 1
    assert "lock" not in aw.records.records[record_id]
    assert len(aw.completed()) == 1
    aw.later(minutes=5)
    aw.world.engine.sweep()
    aw.approvals.reconcile(instance["id"])
    assert len(aw.completed()) == 1


# ---------------------------------------------------------------- guarded changes


GUARDED = {
    "name": "商机进入商务谈判",
    "form": "opportunity",
    "guard": {"field": "stage", "condition": {"field": "stage", "op": "eq", "value": "negotiation"}},
    "nodes": [approver("manager", ["u-boss"]), END],
}


def test_a_guarded_change_is_applied_when_approved_and_dropped_when_rejected(aw: AW) -> None:
    process = aw.uc.create_process(ADMIN, GUARDED)
    owner = f"approval:{process['id']}"
    assert aw.records.guards[("f-opp", owner)] == [
        {"id": process["id"], "field": "stage", "condition": GUARDED["guard"]["condition"], "name": "商机进入商务谈判"}
    ]
    assert process["guards_synced"] is True
    with pytest.raises(ValidationFailed):
        aw.uc.submit(user(REP), aw.record("opportunity", {"name": "x"}), process["id"])  # not for submitting

    won = aw.record("opportunity", {"name": "华信项目", "stage": "initial_contact"})
    held = aw.records.hold_change(TENANT, won, {"stage": "negotiation"}, owner)
    aw.records.events.clear()
    for _ in range(2):  # delivered twice: one approval
        aw.world.engine.handle_event(held)
    [item] = aw.todo("u-boss")
    assert item["approval"]["kind"] == "change" and "lock" not in aw.records.records[won]
    assert not [c for c in aw.records.gate_calls if c[0] == "set_lock"]
    aw.uc.approve(user("u-boss"), item["task_id"])
    assert aw.records.records[won]["data"]["stage"] == "negotiation"
    assert [e["type"] for e in aw.records.events] == ["record.updated"]  # applied as the record service's update

    lost = aw.record("opportunity", {"name": "远景项目", "stage": "initial_contact"})
    held = aw.records.hold_change(TENANT, lost, {"stage": "negotiation"}, owner)
    aw.world.engine.handle_event(held)
    done = aw.uc.reject(user("u-boss"), aw.task_of("u-boss"), "客户预算未确认")
    assert done["state"] == "rejected" and done["change"]["fields"]["stage"]["new"] == "negotiation"
    assert aw.records.records[lost]["data"]["stage"] == "initial_contact"
    assert ("resolve_change", lost, (held["data"]["change_id"], False, "客户预算未确认")) in aw.records.gate_calls
    assert [e["data"]["kind"] for e in aw.completed()] == ["change", "change"]

    # disabling the process takes its guard away; a change held under it meanwhile goes through
    aw.uc.update_process(ADMIN, process["id"], {"enabled": False}, 1)
    assert aw.records.guards[("f-opp", owner)] == []
    late = aw.record("opportunity", {"name": "晚到", "stage": "initial_contact"})
    aw.world.engine.handle_event(aw.records.hold_change(TENANT, late, {"stage": "negotiation"}, owner))
    assert aw.records.records[late]["data"]["stage"] == "negotiation"


def test_a_guard_sync_that_fails_is_retried_by_the_timer(aw: AW) -> None:
    aw.records.gate_down = 1
    process = aw.uc.create_process(ADMIN, GUARDED)
    assert process["guards_synced"] is False
    aw.later(seconds=31)
    aw.world.engine.sweep()
    assert aw.uc.get_process(ADMIN, process["id"])["guards_synced"] is True
    assert aw.records.guards[("f-opp", f"approval:{process['id']}")][0]["field"] == "stage"


# ---------------------------------------------------------------- timeouts


def test_a_task_is_reminded_then_escalated_once_across_two_sweeping_workers(aw: AW) -> None:
    timeouts = {"remind_after": "1h", "escalate_after": "2h", "escalate_to": "manager"}
    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"], timeouts=timeouts)]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"contract_no": "HT-9", "amount": "1.00"}))
    engines = [aw.engine("w1"), aw.engine("w2")]

    def sweep_together() -> int:
        barrier = threading.Barrier(2)

        def sweep(engine: Engine) -> int:
            barrier.wait()
            return engine.sweep()

        with ThreadPoolExecutor(2) as pool:
            return sum(pool.map(sweep, engines))

    aw.later(minutes=61)
    sweep_together()
    assert aw.notes("u-boss").count("催办：审批 · HT-9 等待您审批") == 1
    aw.later(minutes=60)
    sweep_together()
    view = aw.uc.get(ADMIN, instance["id"])
    assert view["current_step"]["users"] == ["u-gm"]  # u-boss's manager
    assert [e["type"] for e in view["timeline"]].count("escalated") == 1
    assert [e["type"] for e in view["timeline"]].count("reminded") == 1
    assert aw.notes("u-gm") == ["超时升级：审批 · HT-9 转由您审批"]
    aw.later(hours=5)
    sweep_together()  # the escalated task is reminded, never escalated again
    assert aw.uc.get(ADMIN, instance["id"])["current_step"]["users"] == ["u-gm"]
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"


# ---------------------------------------------------------------- who sees and acts


def test_other_tenants_and_outsiders_see_nothing_and_only_the_assignee_or_an_admin_acts(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    task = aw.task_of("u-boss")
    stranger = user(SALES[3])
    intruder = user("u-boss", "admin", tenant="t-other")
    for who in (stranger, intruder):
        with pytest.raises(NotFound):
            aw.uc.get(who, instance["id"])
        with pytest.raises(NotFound):
            aw.uc.approve(who, task)
        with pytest.raises(NotFound):
            aw.uc.withdraw(who, instance["id"])
        with pytest.raises(NotFound):
            aw.uc.comment(who, instance["id"], "看看")
    with pytest.raises(Forbidden):
        aw.uc.approve(user(REP), task)  # the submitter sees it, the task is not theirs
    assert aw.uc.get(user(REP), instance["id"])["my_tasks"] == []
    assert aw.uc.get(user("u-boss"), instance["id"])["my_tasks"] == [task]
    assert aw.uc.approve(ADMIN, task)["state"] == "approved"  # an admin may act for the assignee
    with pytest.raises(Forbidden):
        aw.uc.create_process(user("u-boss", "manager"), CONTRACT_PROCESS)
    assert aw.uc.list_processes(intruder) == []


def test_the_inbox_pages_each_box_newest_first(aw: AW) -> None:
    copy_cfo = {"id": "cc", "type": "cc", "users": [{"type": "user", "id": "u-cfo"}], "next": "one"}
    aw.uc.create_process(ADMIN, simple([copy_cfo, approver("one", ["u-boss"])]))
    ids = []
    for _ in range(3):
        ids.append(aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))["id"])
        aw.later(seconds=1)
    first, cursor = aw.uc.inbox(user("u-boss"), "todo", size=2)
    rest, last = aw.uc.inbox(user("u-boss"), "todo", cursor, 2)
    assert [i["approval"]["id"] for i in first + rest] == ids[::-1] and last == ""
    aw.uc.approve(user("u-boss"), first[0]["task_id"])
    done, _ = aw.uc.inbox(user("u-boss"), "done")
    assert [(i["approval"]["id"], i["approval"]["state"], i["action"]) for i in done] == [
        (ids[2], "approved", "approve")
    ]
    cc, _ = aw.uc.inbox(user("u-cfo"), "cc")
    assert len(cc) == 3 and aw.notes("u-cfo")[0].startswith("抄送：")
    mine, _ = aw.uc.inbox(user(REP), "submitted", size=10)
    assert [i["approval"]["id"] for i in mine] == ids[::-1]
    assert aw.uc.get(user("u-cfo"), ids[0])["cc"] == ["u-cfo"]  # a CC'd user sees the instance
    with pytest.raises(ValidationFailed):
        aw.uc.inbox(user(REP), "archive")
    with pytest.raises(ValidationFailed):
        aw.uc.inbox(user(REP), "todo", "not-a-cursor!")


# ---------------------------------------------------------------- processes, versions, automations, template


def test_an_instance_keeps_the_version_it_started_with(aw: AW) -> None:
    process = aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    old = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    changed = aw.uc.update_process(ADMIN, process["id"], {"nodes": [approver("one", ["u-gm"]), END]}, 1)
    assert changed["version"] == 2
    with pytest.raises(Conflict):
        aw.uc.update_process(ADMIN, process["id"], {"enabled": False}, 1)
    new = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    assert (aw.store.instance(old["id"]) or {})["process_version"] == 1 and new["process_version"] == 2
    assert new["current_step"]["users"] == ["u-gm"]
    assert aw.uc.approve(user("u-boss"), aw.task_of("u-boss"))["state"] == "approved"  # the old one runs on v1
    aw.uc.delete_process(ADMIN, process["id"], 2)
    with pytest.raises(NotFound):
        aw.uc.get_process(ADMIN, process["id"])
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"


def test_the_start_approval_action_submits_the_record_once_as_its_owner(aw: AW) -> None:
    aw.uc.create_process(ADMIN, CONTRACT_PROCESS)
    with pytest.raises(ValidationFailed) as exc:
        aw.wuc.create(ADMIN, {"name": "x", "form": "contract", "trigger": {"type": "record_created"},
                              "actions": [{"type": "start_approval", "process": "ghost"}]})  # fmt: skip
    assert exc.value.errors[0].field == "actions[0].process"
    aw.wuc.create(
        ADMIN,
        {
            "name": "新合同自动提交审批",
            "form": "contract",
            "trigger": {"type": "record_created"},
            "actions": [{"type": "start_approval", "process": "contract_approval"}],
        },
    )
    created = aw.records.add(TENANT, "contract", {"amount": "1.00"}, owner_id=SALES[2])
    aw.records.events.clear()
    for _ in range(2):
        aw.world.engine.handle_event(created)
    [item] = aw.todo("u-boss")
    assert item["approval"]["submitted_by"] == SALES[2]
    assert aw.records.records[created["data"]["record_id"]]["lock"]["id"] == item["approval"]["id"]


def test_the_crm_template_installs_its_processes_once(aw: AW) -> None:
    from workflow_service.server import load_template

    def templates(name: str) -> dict[str, Any] | None:
        return load_template(name) if name.endswith("_approvals") else {"automations": []}

    wuc = WorkflowUseCases(
        aw.world.store, aw.world.forms, aw.world.engine, clock=aw.world.clock, templates=templates, approvals=aw.uc
    )
    bindings = {"users": {"gm": "u-gm", "sales_manager": "u-boss", "cfo": "u-cfo"}}
    assert wuc.install_template(ADMIN, "crm", bindings) == (3, 0)
    assert wuc.install_template(ADMIN, "crm", bindings) == (0, 3)
    keys = sorted(p["key"] for p in aw.uc.list_processes(ADMIN))
    assert keys == ["contract_approval", "opportunity_negotiation", "quotation_approval"]
    guard_owner = f"approval:{aw.uc.get_process(ADMIN, 'opportunity_negotiation')['id']}"
    assert aw.records.guards[("f-opp", guard_owner)][0]["field"] == "stage"

    # 报价单: a discount above 20 % needs the sales and finance directors both; below, it passes at once
    big = aw.uc.submit(user(REP), aw.record("quotation", {"quote_no": "BJ-1", "discount_rate": 25}))
    assert sorted(big["current_step"]["users"]) == ["u-cfo", "u-sd"]
    small = aw.uc.submit(user(REP), aw.record("quotation", {"quote_no": "BJ-2", "discount_rate": 10}))
    assert small["state"] == "approved" and small["decided_by"] == "system"
    # a tenant without the users the template names: those processes are installed switched off, with a note
    other_admin = Principal(tenant_id="t-2", user_id="u-a2", role="admin", roles=("admin",))
    assert wuc.install_template(other_admin, "crm", {}) == (3, 0)
    states = {p["key"]: (p["enabled"], p["description"][:20]) for p in aw.uc.list_processes(other_admin)}
    assert states["contract_approval"] == (False, "missing organisation")
    assert states["quotation_approval"][0] is True


def test_the_grpc_server_serves_the_approval_rpcs(server: StoreProcess, aw: AW) -> None:
    from workflow_service.server import build_wiring, build_workflow_server
    from workflow_service.settings import Settings

    settings = Settings(mongo_url=server.url, amqp_url="amqp://x", grpc_port=0, http_port=0, log_level="INFO")
    wiring = build_wiring(aw.world.store.db, settings, records=aw.records, forms=FakeForms())
    api = build_workflow_server(wiring, aw.world.store.db, port=0)
    api.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{api.bundle.port}") as channel:
            stub = workflow_pb2_grpc.WorkflowServiceStub(channel)
            created = stub.CreateApprovalProcess(
                workflow_pb2.CreateApprovalProcessRequest(process_json='{"name": "审批", "form": "contract", '
                    '"nodes": [{"id": "a", "type": "approver", "approvers": [{"type": "user", "id": "u-boss"}], '
                    '"next": "end"}, {"id": "end", "type": "end"}]}'),
                metadata=ADMIN.to_metadata(),
            )  # fmt: skip
            assert '"version": 1' in created.process_json
            record_id = aw.record("contract", {"amount": "1.00"})
            submitted = stub.SubmitApproval(
                workflow_pb2.SubmitApprovalRequest(record_id=record_id), metadata=user(REP).to_metadata()
            )
            assert '"state": "pending"' in submitted.approval_json
            inbox = stub.ListApprovalInbox(
                workflow_pb2.ListApprovalInboxRequest(), metadata=user("u-boss").to_metadata()
            )
            assert len(inbox.items_json) == 1
            with pytest.raises(grpc.RpcError) as exc:
                stub.GetApproval(workflow_pb2.GetApprovalRequest(instance_id="nope"), metadata=user(REP).to_metadata())
            assert exc.value.code() == grpc.StatusCode.NOT_FOUND
            # the automations' RPCs are still WorkflowServicer's
            assert stub.ListAutomations(workflow_pb2.ListAutomationsRequest(), metadata=ADMIN.to_metadata())
    finally:
        api.stop(0)


def test_a_handover_transfers_the_leaving_approvers_pending_tasks(aw: AW) -> None:
    from workflow_service.domain.handover import Handover

    aw.uc.create_process(ADMIN, simple([approver("one", ["u-boss"])]))
    instance = aw.uc.submit(user(REP), aw.record("contract", {"amount": "1.00"}))
    handover = Handover(
        aw.world.store, aw.records, aw.world.forms, aw.world.store, clock=aw.world.clock,
        transfer_tasks=aw.approvals.transfer_tasks,
    )  # fmt: skip
    aw.world.engine.handover = handover
    job = handover.start(ADMIN, "u-boss", "u-gm", "")
    aw.world.engine.sweep()

    done = handover.get(ADMIN, job["id"])
    assert done["state"] == "done" and done["progress"]["approval_tasks"] == 1
    assert aw.todo("u-boss") == [] and len(aw.todo("u-gm")) == 1
    assert aw.uc.approve(user("u-gm"), aw.task_of("u-gm"))["state"] == "approved"
    assert (aw.store.instance(instance["id"]) or {})["state"] == "approved"
