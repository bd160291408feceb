"""An approval process is checked at save: a bad graph is refused with the path of the part that is wrong,
in the user's language; a good one is normalised. The CRM template's processes are valid on the real forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crm_runtime.errors import ValidationFailed
from services.workflow.tests.unit.forms import Lookup
from workflow_service.clients import form_info
from workflow_service.domain.approval_definitions import parse_process
from workflow_service.domain.definitions import FormInfo, parse_automation
from workflow_service.domain.service import _bind

ROOT = Path(__file__).resolve().parents[4]


def contract(**parts: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "合同审批",
        "form": "contract",
        "nodes": [
            {"id": "manager", "type": "approver", "approvers": [{"type": "submitter_manager"}], "next": "amount"},
            {
                "id": "amount",
                "type": "condition",
                "branches": [{"when": {"field": "amount", "op": "gt", "value": "100000"}, "next": "gm"}],
                "default": "end",
            },
            {"id": "gm", "type": "approver", "approvers": [{"type": "user", "id": "u-gm"}], "next": "end"},
            {"id": "end", "type": "end"},
        ],
    }
    spec.update(parts)
    return spec


def nodes(*changes: tuple[int, dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(n) for n in contract()["nodes"]]
    for index, change in changes:
        out[index] = {**out[index], **change}
    return out


def errors(spec: Any, locale: str = "zh-CN") -> dict[str, tuple[str, str]]:
    with pytest.raises(ValidationFailed) as exc:
        parse_process(spec, Lookup(), locale=locale)
    return {e.field: (e.rule, e.message) for e in exc.value.errors}


def test_a_good_process_is_normalised() -> None:
    out = parse_process(
        contract(
            key="contract_approval",
            nodes=nodes((0, {"mode": "sequence", "timeouts": {"remind_after": "24h", "escalate_after": "2d"}})),
        ),
        Lookup(),
    )
    assert out["form_id"] == "f-contract" and out["form_key"] == "contract" and out["key"] == "contract_approval"
    assert out["name"] == {"zh-CN": "合同审批", "en": "合同审批"} and out["start"] == "manager"
    first = out["nodes"][0]
    assert first["mode"] == "sequence" and first["if_empty"] == "admin"
    assert first["timeouts"] == {"remind_after": 86400, "escalate_after": 172800, "escalate_to": "manager"}
    assert first["name"] == {"zh-CN": "审批", "en": "Approval"}
    assert out["guard"] is None and out["channels"] == ["in_app"]
    # what is stored parses again to itself (a patch is applied over it)
    again = parse_process(
        {k: v for k, v in out.items() if k not in ("form_id", "form_key")} | {"form": "contract"}, Lookup()
    )
    assert again["nodes"] == out["nodes"]


@pytest.mark.parametrize(
    ("spec_nodes", "where", "rule"),
    [
        (nodes((0, {"next": "nowhere"})), "nodes[0].next", "unknown_node"),
        (nodes((2, {"next": ""})), "nodes[2].next", "no_next"),
        (nodes((1, {"default": None})), "nodes[1].default", "no_next"),
        (
            nodes((1, {"branches": [{"when": {"field": "amount", "op": "gt", "value": "1"}, "next": "ghost"}]})),
            "nodes[1].branches[0].next",
            "unknown_node",
        ),  # fmt: skip
        (nodes((2, {"next": "manager"})), "nodes[2].next", "cycle"),
        (
            nodes((1, {"branches": [{"when": {"field": "amount", "op": "gt", "value": "1"}, "next": "end"}]})),
            "nodes[2]",
            "unreachable_node",
        ),  # fmt: skip
        (
            [*nodes()[:3], {"id": "end", "type": "approver", "approvers": [{"type": "user", "id": "u"}]}],
            "nodes",
            "no_end",
        ),  # fmt: skip
        (nodes((0, {"approvers": []})), "nodes[0].approvers", "empty_approvers"),
        (nodes((0, {"approvers": [{"type": "department"}]})), "nodes[0].approvers[0].type", "unknown_approver"),
        (nodes((0, {"approvers": [{"type": "user"}]})), "nodes[0].approvers[0].id", "required"),
        (nodes((0, {"type": "robot"})), "nodes[0].type", "unknown_node_type"),
        (nodes((3, {"id": "gm"})), "nodes[3].id", "duplicate_node"),
        (nodes((0, {"mode": "majority"})), "nodes[0].mode", "unknown_choice"),
        (nodes((3, {"next": "gm"})), "nodes[3].next", "end_has_next"),
        (
            nodes((0, {"timeouts": {"remind_after": "2d", "escalate_after": "1d"}})),
            "nodes[0].timeouts.escalate_after",
            "escalate_before_remind",
        ),  # fmt: skip
        (nodes((0, {"timeouts": {"remind_after": "soon"}})), "nodes[0].timeouts.remind_after", "bad_duration"),
        (
            nodes((1, {"branches": [{"when": {"field": "price", "op": "gt", "value": "1"}, "next": "gm"}]})),
            "nodes[1].branches[0].when.field",
            "unknown_field",
        ),  # fmt: skip
        (nodes((0, {"colour": "red"})), "nodes[0].colour", "unknown_key"),
        ([{"id": "end", "type": "end"}], "nodes", "no_approver_node"),
    ],
)
def test_a_bad_graph_is_refused_naming_the_part(spec_nodes: list[dict[str, Any]], where: str, rule: str) -> None:
    found = errors(contract(nodes=spec_nodes))
    assert where in found, found
    assert found[where][0] == rule


def test_messages_are_in_the_users_language() -> None:
    spec = contract(nodes=nodes((2, {"next": "manager"})))
    assert errors(spec)["nodes[2].next"][1] == "节点“gm”又指回了“manager”：审批流程中不能有环"
    assert (
        errors(spec, "en")["nodes[2].next"][1]
        == "“gm” leads back to “manager”: an approval process cannot go round in a cycle"
    )
    unknown = contract(nodes=nodes((0, {"next": "nowhere"})))
    assert errors(unknown)["nodes[0].next"][1] == "节点“nowhere”不存在"
    assert errors(unknown, "en")["nodes[0].next"][1] == "There is no node “nowhere”"
    empty = contract(nodes=nodes((0, {"approvers": []})))
    assert errors(empty, "en")["nodes[0].approvers"][1] == "The approver node “manager” names no approver"
    bad_field = contract(
        nodes=nodes((1, {"branches": [{"when": {"field": "price", "op": "gt", "value": "1"}, "next": "gm"}]}))
    )
    assert "price" in errors(bad_field, "en")["nodes[1].branches[0].when.field"][1]


def test_a_guard_names_a_field_that_can_wait_and_a_record_condition() -> None:
    ok = parse_process(
        {
            "name": "进入商务谈判",
            "form": "opportunity",
            "guard": {"field": "销售阶段", "condition": {"field": "stage", "op": "eq", "value": "商务谈判"}},
            "nodes": [
                {"id": "m", "type": "approver", "approvers": [{"type": "user", "id": "u-m"}], "next": "end"},
                {"id": "end", "type": "end"},
            ],
        },
        Lookup(),
    )
    assert ok["guard"]["field"] == "stage"
    assert errors(contract(guard={"field": "nope"}))["guard.field"][0] == "unknown_field"
    assert errors(contract(guard={"field": "approval_status"}), "en")["guard.field"] == (
        "guard_field",
        "The field “Approval status” is a system or computed field: its changes cannot wait for approval",
    )
    changed = errors(contract(guard={"field": "amount", "condition": {"field": "amount", "op": "changed"}}))
    assert "guard.condition" in changed


def test_form_key_and_top_level_parts() -> None:
    assert errors(contract(form="nope"))["form"][0] == "form_not_found"
    assert errors(contract(key="Bad Key"))["key"][0] == "bad_key"
    assert errors(contract(name=""))["name"][0] == "required"
    assert errors(contract(start="ghost"))["start"][0] == "unknown_node"
    assert errors(contract(channels=["pigeon"]))["channels[0]"][0] == "unknown_choice"
    assert errors([1, 2])["process_json"][0] == "not_object"


def test_a_patch_keeps_the_form_and_applies_over_the_stored_definition() -> None:
    stored = parse_process(contract(), Lookup())
    patched = parse_process({"enabled": False}, Lookup(), partial_of={**stored})
    assert patched["enabled"] is False and patched["nodes"] == stored["nodes"]
    assert errors_of_patch({"form": "customer"}, stored)["form"][0] == "unknown_key"


def errors_of_patch(patch: dict[str, Any], stored: dict[str, Any]) -> dict[str, tuple[str, str]]:
    with pytest.raises(ValidationFailed) as exc:
        parse_process(patch, Lookup(), partial_of=stored)
    return {e.field: (e.rule, e.message) for e in exc.value.errors}


class _WithProcesses(Lookup):
    """A lookup that also finds approval processes (as the API's does)."""

    def __init__(self, processes: dict[str, dict[str, Any]]) -> None:
        self.processes = processes

    def approval_process(self, ref: str) -> dict[str, Any] | None:
        return self.processes.get(ref)


def test_the_start_approval_action_names_a_process_of_the_form() -> None:
    automation = {
        "name": "大合同自动提交审批",
        "form": "contract",
        "trigger": {"type": "record_created"},
        "actions": [{"type": "start_approval", "process": "contract_approval"}],
    }
    lookup = _WithProcesses({"contract_approval": {"id": "p1", "form_id": "f-contract", "name": {"zh-CN": "合同审批"}}})
    out = parse_automation(automation, lookup)
    assert out["actions"][0] == {"type": "start_approval", "process": "contract_approval", "process_id": "p1"}
    with pytest.raises(ValidationFailed) as exc:
        parse_automation(
            {**automation, "actions": [{"type": "start_approval", "process": "ghost"}]}, lookup, locale="en"
        )
    assert [(e.field, e.message) for e in exc.value.errors] == [
        ("actions[0].process", "There is no approval process “ghost”")
    ]
    other_form = _WithProcesses({"p": {"id": "p2", "form_id": "f-opp", "name": {"zh-CN": "商机"}}})
    with pytest.raises(ValidationFailed) as exc:
        parse_automation({**automation, "actions": [{"type": "start_approval", "process": "p"}]}, other_form)
    assert exc.value.errors[0].rule == "approval_process_form"
    with pytest.raises(ValidationFailed) as exc:
        parse_automation({**automation, "actions": [{"type": "start_approval"}]}, lookup)
    assert exc.value.errors[0].field == "actions[0].process"


def _crm_forms() -> dict[str, FormInfo]:
    template = json.loads((ROOT / "services/form/src/form_service/templates/crm.json").read_text(encoding="utf-8"))
    infos = [form_info({**f, "form_id": f"f-{f['key']}"}, 1) for f in template["forms"]]
    return {f.key: f for f in infos} | {f.id: f for f in infos}


class _CrmForms:
    def __init__(self) -> None:
        self.forms = _crm_forms()

    def published(self, ref: str) -> FormInfo | None:
        return self.forms.get(ref)


def test_the_crm_templates_processes_are_valid_on_the_real_forms() -> None:
    path = ROOT / "services/workflow/src/workflow_service/templates/crm_approvals.json"
    template = json.loads(path.read_text(encoding="utf-8"))
    bindings = {"users": {"gm": "u-gm", "sales_manager": "u-sm", "cfo": "u-cfo"}}
    keys = []
    for item in template["approval_processes"]:
        missing: list[str] = []
        spec = _bind({k: v for k, v in item.items() if k not in ("key", "process_key")}, bindings, missing)
        assert not missing
        out = parse_process({**spec, "key": item["process_key"]}, _CrmForms())
        keys.append((out["form_key"], out["key"], bool(out["guard"])))
    assert keys == [
        ("contract", "contract_approval", False),
        ("quotation", "quotation_approval", False),
        ("opportunity", "opportunity_negotiation", True),
    ]
