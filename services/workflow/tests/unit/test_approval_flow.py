"""The approval state machine as pure functions: who approves, where an instance goes, what a step's tasks
decide under 或签 / 会签 / sequence, and the chains of handed-on tasks (transfer, added approvers)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.workflow.tests.unit.forms import CONTRACT
from workflow_service.domain import approval_flow as flow
from workflow_service.domain.approval_definitions import node_map
from workflow_service.domain.ports import DirectoryUser

T = "t1"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Directory:
    """DirectoryPort over a dict."""

    def __init__(self, *users: DirectoryUser) -> None:
        self.users = {u.user_id: u for u in users}

    def user(self, tenant_id: str, user_id: str) -> DirectoryUser | None:
        found = self.users.get(user_id)
        return found if found is not None and found.tenant_id == tenant_id else None

    def members(self, tenant_id: str, *, department_id: str = "", role: str = "") -> list[DirectoryUser]:
        return sorted(
            (u for u in self.users.values() if u.tenant_id == tenant_id and u.active and role in u.roles),
            key=lambda u: u.user_id,
        )


DIRECTORY = Directory(
    DirectoryUser(T, "rep", manager_id="mgr"),
    DirectoryUser(T, "mgr", manager_id="gm", roles=("manager",)),
    DirectoryUser(T, "gm", roles=("manager",)),
    DirectoryUser(T, "cfo", manager_id="gm", roles=("finance_director",)),
    DirectoryUser(T, "gone", active=False, roles=("finance_director",)),
    DirectoryUser(T, "root", roles=("admin",)),
)


def test_approvers_resolve_to_active_users_once_in_the_order_named() -> None:
    specs = [
        {"type": "submitter_manager"},
        {"type": "manager_of_manager"},
        {"type": "role", "role": "finance_director"},
        {"type": "user", "id": "mgr"},
        {"type": "user", "id": "gone"},
        {"type": "user", "id": "service:workflow"},
    ]
    assert flow.resolve(T, specs, "rep", DIRECTORY) == ["mgr", "gm", "cfo"]
    assert flow.resolve(T, [{"type": "submitter_manager"}], "gm", DIRECTORY) == []  # nobody above the top
    assert flow.admins(T, DIRECTORY) == ["root"]


CONTRACT_NODES = node_map(
    {
        "nodes": [
            {"id": "mgr", "type": "approver", "approvers": [{"type": "submitter_manager"}], "next": "amount"},
            {
                "id": "amount",
                "type": "condition",
                "branches": [
                    {"when": {"field": "amount", "op": "gt", "value": "1000000"}, "next": "both"},
                    {"when": {"field": "amount", "op": "gt", "value": "100000"}, "next": "gm"},
                ],
                "default": "end",
            },
            {"id": "gm", "type": "approver", "approvers": [{"type": "user", "id": "gm"}], "next": "cc"},
            {
                "id": "both",
                "type": "approver",
                "mode": "all",
                "approvers": [{"type": "user", "id": "gm"}, {"type": "user", "id": "cfo"}],
                "next": "cc",
            },
            {"id": "cc", "type": "cc", "users": [{"type": "role", "role": "finance_director"}], "next": "end"},
            {"id": "nobody", "type": "approver", "approvers": [{"type": "user", "id": "gone"}], "next": "end"},
            {
                "id": "nobody_skip",
                "type": "approver",
                "if_empty": "skip",
                "approvers": [{"type": "user", "id": "gone"}],
                "next": "end",
            },
            {"id": "end", "type": "end"},
        ]
    }
)


def _route(from_id: str, amount: str) -> flow.Step:
    record = {"id": "r1", "data": {"amount": amount}}
    return flow.route(
        CONTRACT_NODES,
        from_id,
        record,
        CONTRACT.fields,
        lambda specs: flow.resolve(T, specs, "rep", DIRECTORY),
        lambda: flow.admins(T, DIRECTORY),
    )


def test_a_route_follows_the_condition_branch_and_collects_cc() -> None:
    first = _route("mgr", "50000.00")
    assert first.node is not None and first.node["id"] == "mgr" and first.users == ["mgr"]
    small = _route("amount", "50000.00")
    assert small.node is None and small.passed == [{"type": "branch", "node_id": "amount", "branch": -1, "to": "end"}]
    middle = _route("amount", "200000.00")
    assert middle.node is not None and middle.node["id"] == "gm" and middle.users == ["gm"]
    big = _route("amount", "2000000.00")
    assert big.node is not None and big.node["id"] == "both" and big.users == ["gm", "cfo"]
    after = _route("cc", "0")
    assert after.node is None and after.cc == ["cfo"]


def test_a_step_that_finds_nobody_goes_to_the_admins_or_is_passed() -> None:
    to_admins = _route("nobody", "0")
    assert to_admins.node is not None and to_admins.users == ["root"]
    assert to_admins.passed[0]["type"] == "to_admins"
    skipped = _route("nobody_skip", "0")
    assert skipped.node is None and skipped.passed == [{"type": "skipped", "node_id": "nobody_skip"}]


def task(task_id: str, slot: int, state: str = "pending", action: str = "", **extra: Any) -> dict[str, Any]:
    return {"_id": task_id, "slot": slot, "order": slot, "kind": "approve", "state": state, "action": action, **extra}


def test_any_first_approval_completes_all_needs_everyone_any_rejection_rejects() -> None:
    one_approved = [task("i-1-0", 0, "done", "approve"), task("i-1-1", 1)]
    assert flow.decide("any", one_approved).outcome == "complete"
    assert flow.decide("all", one_approved).outcome == "wait"
    both = [task("i-1-0", 0, "done", "approve"), task("i-1-1", 1, "done", "approve")]
    assert flow.decide("all", both).outcome == "complete"
    rejected = [task("i-1-0", 0, "done", "approve"), task("i-1-1", 1, "done", "reject", acted_at="t")]
    decision = flow.decide("any", rejected)
    assert decision.outcome == "reject" and decision.rejected is not None and decision.rejected["_id"] == "i-1-1"
    assert flow.decide("all", rejected).outcome == "reject"
    cc_only = [{"_id": "i-cc-x", "kind": "cc", "state": "cc", "slot": -1}]
    assert flow.decide("any", cc_only).outcome == "wait"


def test_a_sequence_activates_the_next_slot_only_after_the_one_before() -> None:
    tasks = [task("i-1-0", 0), task("i-1-1", 1, "queued"), task("i-1-2", 2, "queued")]
    assert flow.decide("sequence", tasks) == flow.Decision("wait")
    tasks[0] = task("i-1-0", 0, "done", "approve")
    assert flow.decide("sequence", tasks) == flow.Decision("wait", activate=("i-1-1",))
    tasks[1] = task("i-1-1", 1, "done", "approve")
    tasks[2] = task("i-1-2", 2, "done", "approve")
    assert flow.decide("sequence", tasks).outcome == "complete"


def test_handed_on_tasks_make_their_chain_and_the_chain_decides_the_slot() -> None:
    transferred = task("i-1-0", 0, "done", "transfer", to_user="b", user_id="a", tenant_id=T, instance_id="i", visit=1)
    [follower] = flow.followers(transferred, NOW)
    assert (follower["_id"], follower["user_id"], follower["state"]) == ("i-1-0.t", "b", "pending")
    assert flow.decide("any", [transferred, follower]).outcome == "wait"
    assert flow.decide("any", [transferred, {**follower, "state": "done", "action": "approve"}]).outcome == "complete"

    before = task("i-1-0", 0, "done", "add_before", to_user="c", user_id="a", tenant_id=T, instance_id="i", visit=1)
    added, back = flow.followers(before, NOW)
    assert (added["_id"], added["user_id"], added["state"]) == ("i-1-0.b", "c", "pending")
    assert (back["_id"], back["user_id"], back["state"]) == ("i-1-0.r", "a", "queued")
    # c approves: the task comes back to a (activated); a approves: the slot is approved
    chain = [before, {**added, "state": "done", "action": "approve"}, back]
    assert flow.decide("all", chain) == flow.Decision("wait", activate=("i-1-0.r",))
    chain[2] = {**back, "state": "done", "action": "approve"}
    assert flow.decide("all", chain).outcome == "complete"
    # c hands it on again before approving: c's own chain sorts before a's return
    again = {**added, "state": "done", "action": "add_before", "to_user": "d"}
    added2, back2 = flow.followers(again, NOW)
    order = sorted([before, again, added2, back2, back], key=lambda t: t["_id"])
    assert [t["_id"] for t in order] == ["i-1-0", "i-1-0.b", "i-1-0.b.b", "i-1-0.b.r", "i-1-0.r"]

    after = task("i-1-0", 0, "done", "add_after", to_user="e", user_id="a", tenant_id=T, instance_id="i", visit=1)
    [extra] = flow.followers(after, NOW)
    assert extra["_id"] == "i-1-0.a"
    other = task("i-1-1", 1)
    # 会签: a's approval with e added after counts only once e approves too
    assert flow.decide("all", [after, extra, {**other, "state": "done", "action": "approve"}]).outcome == "wait"
    done = [after, {**extra, "state": "done", "action": "approve"}, {**other, "state": "done", "action": "approve"}]
    assert flow.decide("all", done).outcome == "complete"
    assert flow.followers(task("x", 0, "done", "approve"), NOW) == []
    assert flow.chain_length("i-1-0.b.r") == 2


def test_new_tasks_of_a_sequence_queue_all_but_the_first() -> None:
    node = {"id": "n", "mode": "sequence"}
    tasks = flow.new_tasks(T, "i", 3, node, ["a", "b", "c"], NOW)
    assert [(t["_id"], t["user_id"], t["state"]) for t in tasks] == [
        ("i-3-0", "a", "pending"),
        ("i-3-1", "b", "queued"),
        ("i-3-2", "c", "queued"),
    ]
    assert all(t["state"] == "pending" for t in flow.new_tasks(T, "i", 1, {"id": "n", "mode": "all"}, ["a", "b"], NOW))
