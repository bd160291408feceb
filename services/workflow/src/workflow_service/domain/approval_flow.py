"""The approval state machine, as pure functions: where an instance goes next, and what a step's tasks decide.

An instance waits on one approver node at a time. Entering a node is a *visit*
(numbered); each approver resolved for the visit holds a *slot* (its obligation),
and a slot is a chain of tasks ordered by task id: a task handed on makes the
next task of its chain (ids `<task>.t` transferred or escalated, `<task>.b` the
approver added before me and `<task>.r` me again after them, `<task>.a` the approver
added after me), so the chain's order is the ids' order (`.` sorts below letters,
`b` below `r`). A slot is approved when its last task approved; any rejection in a
visit rejects the step. Then, by the node's mode:

    any (或签)        the first approved slot completes the step; the other tasks are cancelled
    all (会签)        every slot approved completes it
    sequence (依次)   slots in order: the next one's first task is queued until the one before is approved

`route` walks from a node through condition nodes (the automations' condition
trees on the record), CC nodes (collected) and approver nodes that resolve to
nobody (passed or given to the admins, per `if_empty`) to the next approver
node with people, or to the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflow_service.domain.conditions import Condition, parse_condition
from workflow_service.domain.ports import DirectoryPort, Doc

OPEN = ("pending", "queued")
MAX_CHAIN = 20  # hand-offs of one slot (transfers, added approvers, escalations)
FOLLOWER = {"transfer": (".t",), "escalate": (".t",), "add_before": (".b", ".r"), "add_after": (".a",)}


# ---------------------------------------------------------------- who approves


def resolve(
    tenant_id: str, specs: Sequence[Mapping[str, Any]], submitter_id: str, directory: DirectoryPort
) -> list[str]:
    """The active users an approver (or CC) list names, each once, in the order named."""
    out: list[str] = []

    def add(user_id: str) -> None:
        if not user_id or user_id in out or user_id.startswith("service:"):
            return
        user = directory.user(tenant_id, user_id)
        if user is not None and user.active:
            out.append(user_id)

    def manager_of(user_id: str) -> str:
        user = directory.user(tenant_id, user_id) if user_id else None
        return user.manager_id if user is not None else ""

    for spec in specs:
        kind = spec.get("type")
        if kind == "user":
            add(str(spec.get("id") or ""))
        elif kind == "role":
            for user in directory.members(tenant_id, role=str(spec.get("role") or "")):
                add(user.user_id)
        elif kind == "submitter_manager":
            add(manager_of(submitter_id))
        elif kind == "manager_of_manager":
            add(manager_of(manager_of(submitter_id)))
    return out


def admins(tenant_id: str, directory: DirectoryPort) -> list[str]:
    """The tenant's active administrators (who approve a step that found nobody, and escalations)."""
    return [u.user_id for u in directory.members(tenant_id, role="admin") if u.active]


# ---------------------------------------------------------------- where next


@dataclass
class Step:
    """Where a walk through the graph stopped: an approver node with its people, or the end (node None)."""

    node: dict[str, Any] | None
    users: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    passed: list[Doc] = field(default_factory=list)  # what happened on the way (branches, CC, empty steps)


_CONDITIONS: dict[str, Condition | None] = {}


def _condition(tree: Any, fields: Mapping[str, Mapping[str, Any]]) -> Condition | None:
    key = json.dumps([tree, sorted(fields)], sort_keys=True, ensure_ascii=False, default=str)
    if key not in _CONDITIONS:
        if len(_CONDITIONS) > 2048:
            _CONDITIONS.clear()
        _CONDITIONS[key] = parse_condition(tree, fields)
    return _CONDITIONS[key]


def route(
    nodes: Mapping[str, Mapping[str, Any]],
    from_id: str,
    record: Mapping[str, Any],
    fields: Mapping[str, Mapping[str, Any]],
    people: Callable[[Sequence[Mapping[str, Any]]], list[str]],
    fallback: Callable[[], list[str]],
) -> Step:
    """Walk from node `from_id` (itself included) to the next approver node with people, or the end."""
    step = Step(None)
    current = from_id
    for _hop in range(len(nodes) + 1):
        node = nodes.get(current)
        if node is None or node.get("type") == "end":
            return step
        kind = node.get("type")
        if kind == "condition":
            target = str(node.get("default") or "")
            chosen = -1
            for index, branch in enumerate(node.get("branches") or []):
                condition = _condition(branch.get("when"), fields)
                if condition is None or condition.matches(record):
                    target, chosen = str(branch.get("next") or ""), index
                    break
            step.passed.append({"type": "branch", "node_id": current, "branch": chosen, "to": target})
            current = target
            continue
        if kind == "cc":
            users = [u for u in people(node.get("users") or []) if u not in step.cc]
            step.cc.extend(users)
            step.passed.append({"type": "cc", "node_id": current, "users": users})
            current = str(node.get("next") or "")
            continue
        users = people(node.get("approvers") or [])
        if not users and node.get("if_empty", "admin") == "admin":
            users = fallback()
            if users:
                step.passed.append({"type": "to_admins", "node_id": current, "users": users})
        if not users:
            step.passed.append({"type": "skipped", "node_id": current})
            current = str(node.get("next") or "")
            continue
        step.node = dict(node)
        step.users = users
        return step
    return step  # unreachable for a checked graph (no cycles)


# ---------------------------------------------------------------- what a visit's tasks decide


@dataclass(frozen=True)
class Decision:
    """What a visit's tasks decide now: wait (activating queued tasks), complete the step, or reject it."""

    outcome: str  # "wait", "complete", "reject"
    activate: tuple[str, ...] = ()
    rejected: Mapping[str, Any] | None = None


def slots_of(tasks: Sequence[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """A visit's approval tasks (not CC) by slot, each slot's chain in order."""
    slots: dict[int, list[Mapping[str, Any]]] = {}
    for task in tasks:
        if task.get("kind", "approve") != "approve":
            continue
        slots.setdefault(int(task.get("slot") or 0), []).append(task)
    for chain in slots.values():
        chain.sort(key=lambda t: str(t["_id"]))
    return dict(sorted(slots.items(), key=lambda kv: (int(kv[1][0].get("order") or 0), kv[0])))


def slot_approved(chain: Sequence[Mapping[str, Any]]) -> bool:
    """The slot's last task approved and nothing of it is open."""
    if any(t.get("state") in OPEN for t in chain):
        return False
    done = [t for t in chain if t.get("state") == "done"]
    return bool(done) and done[-1].get("action") == "approve"


def decide(mode: str, tasks: Sequence[Mapping[str, Any]]) -> Decision:
    """The decision of one visit's tasks under the node's mode (see the module docstring)."""
    slots = slots_of(tasks)
    rejections = [
        t for chain in slots.values() for t in chain if t.get("state") == "done" and t.get("action") == "reject"
    ]
    if rejections:
        rejections.sort(key=lambda t: (str(t.get("acted_at") or ""), str(t["_id"])))
        return Decision("reject", rejected=rejections[0])
    if not slots:
        return Decision("wait")
    approved = {slot: slot_approved(chain) for slot, chain in slots.items()}
    if mode == "any" and any(approved.values()):
        return Decision("complete")
    if all(approved.values()):
        return Decision("complete")
    waiting = [slot for slot in slots if not approved[slot]]
    if mode == "sequence":
        waiting = waiting[:1]
    activate = []
    for slot in waiting:
        head = next((t for t in slots[slot] if t.get("state") in OPEN), None)
        if head is not None and head.get("state") == "queued":
            activate.append(str(head["_id"]))
    return Decision("wait", activate=tuple(activate))


def followers(task: Mapping[str, Any], now: datetime) -> list[Doc]:
    """The tasks a handed-on task makes next in its chain (deterministic ids: inserting them twice is a no-op)."""
    action = str(task.get("action") or "")
    if task.get("state") != "done" or action not in FOLLOWER:
        return []
    base = {k: task.get(k) for k in ("tenant_id", "instance_id", "visit", "node_id", "slot", "order", "kind")}
    base.update(created_at=now, box_at=now, announced=False, comment="", action="")
    target = str(task.get("to_user") or "")
    me = str(task.get("user_id") or "")
    escalated = bool(task.get("escalated")) or action == "escalate"
    if action in ("transfer", "escalate"):
        return [{**base, "_id": f"{task['_id']}.t", "user_id": target, "state": "pending", "escalated": escalated,
                 "origin": {"task_id": task["_id"], "action": action}}]  # fmt: skip
    if action == "add_before":
        return [
            {**base, "_id": f"{task['_id']}.b", "user_id": target, "state": "pending", "escalated": escalated,
             "origin": {"task_id": task["_id"], "action": action}},
            {**base, "_id": f"{task['_id']}.r", "user_id": me, "state": "queued", "escalated": escalated,
             "origin": {"task_id": task["_id"], "action": "returned"}},
        ]  # fmt: skip
    return [{**base, "_id": f"{task['_id']}.a", "user_id": target, "state": "pending", "escalated": escalated,
             "origin": {"task_id": task["_id"], "action": action}}]  # fmt: skip


def chain_length(task_id: str) -> int:
    """How many hand-offs led to a task (the dots after its slot's first task id)."""
    return task_id.count(".")


def new_tasks(
    tenant_id: str, instance_id: str, visit: int, node: Mapping[str, Any], users: Sequence[str], now: datetime
) -> list[Doc]:
    """The first task of each slot of a new visit (a sequence queues all but the first)."""
    tasks = []
    sequence = node.get("mode") == "sequence"
    for index, user_id in enumerate(users):
        tasks.append(
            {
                "_id": f"{instance_id}-{visit}-{index}",
                "tenant_id": tenant_id,
                "instance_id": instance_id,
                "visit": visit,
                "node_id": node["id"],
                "slot": index,
                "order": index,
                "kind": "approve",
                "user_id": user_id,
                "state": "queued" if sequence and index > 0 else "pending",
                "action": "",
                "comment": "",
                "created_at": now,
                "box_at": now,
                "announced": False,
                "escalated": False,
            }
        )
    return tasks


def cc_tasks(
    tenant_id: str, instance_id: str, visit: int, node_id: str, users: Sequence[str], now: datetime
) -> list[Doc]:
    """The CC'd users' inbox items (state "cc")."""
    return [
        {
            "_id": f"{instance_id}-cc-{user_id}",
            "tenant_id": tenant_id,
            "instance_id": instance_id,
            "visit": visit,
            "node_id": node_id,
            "slot": -1,
            "order": -1,
            "kind": "cc",
            "user_id": user_id,
            "state": "cc",
            "action": "",
            "comment": "",
            "created_at": now,
            "box_at": now,
            "announced": False,
            "escalated": True,
        }
        for user_id in users
    ]
