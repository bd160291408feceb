"""A definition is checked at save: every wrong part is refused with its path, in the user's language."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.errors import ValidationFailed
from services.workflow.tests.unit.forms import Lookup
from workflow_service.domain.definitions import parse_automation

TASK_ACTION = {
    "type": "create_record",
    "form": "task",
    "values": {"title": "【新客户跟进】{客户名称}", "assignee": "{owner_id}", "customer": "{id}", "due_at": "{now+3d}"},
}


def automation(**parts: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "新客户任务",
        "form": "customer",
        "trigger": {"type": "owner_assigned"},
        "actions": [TASK_ACTION],
    }
    spec.update(parts)
    return spec


def errors(spec: Any, locale: str = "zh-CN") -> dict[str, tuple[str, str]]:
    with pytest.raises(ValidationFailed) as exc:
        parse_automation(spec, Lookup(), locale=locale)
    return {e.field: (e.rule, e.message) for e in exc.value.errors}


def test_a_good_definition_is_normalised_to_ids_keys_and_seconds() -> None:
    spec = automation(
        trigger={"type": "record_updated", "fields": ["客户分级"], "to": "A"},
        condition={"field": "source", "op": "eq", "value": "官网"},
    )
    out = parse_automation(spec, Lookup())

    assert out["form_id"] == "f-customer" and out["form_key"] == "customer"
    assert out["name"] == {"zh-CN": "新客户任务", "en": "新客户任务"}
    assert out["trigger"] == {"type": "record_updated", "fields": ["level"], "to": "A"}
    assert out["actions"][0]["form_id"] == "f-task" and out["actions"][0]["owner"] == "{owner_id}"
    inactivity = parse_automation(
        automation(
            trigger={
                "type": "inactivity",
                "after": "24h",
                "since": "owner_assigned",
                "related_form": "follow_up",
                "related_field": "客户",
            }
        ),
        Lookup(),
    )
    assert inactivity["trigger"] == {
        "type": "inactivity",
        "after": 86400,
        "since": "owner_assigned",
        "on_related": "cancel",
        "related_form_id": "f-follow",
        "related_form_key": "follow_up",
        "related_field": "customer",
    }


@pytest.mark.parametrize(
    ("spec", "path", "rule"),
    [
        (automation(form="nope"), "form", "form_not_found"),
        (automation(trigger={"type": "record_exploded"}), "trigger.type", "unknown_trigger"),
        (automation(trigger={"type": "schedule", "cron": "every monday"}), "trigger.cron", "bad_cron"),
        (
            automation(trigger={"type": "schedule", "cron": "0 9 * * 1", "time_zone": "Mars/Olympus"}),
            "trigger.time_zone",
            "bad_time_zone",
        ),
        (
            automation(trigger={"type": "date_relative", "field": "客户名称", "offset": "-1h"}),
            "trigger.field",
            "field_type",
        ),
        (
            automation(trigger={"type": "date_relative", "field": "last_contacted_at", "offset": "soon"}),
            "trigger.offset",
            "bad_duration",
        ),
        (automation(trigger={"type": "inactivity", "after": "10s"}), "trigger.after", "bad_duration"),
        (
            automation(trigger={"type": "inactivity", "after": "1d", "related_form": "task", "related_field": "title"}),
            "trigger.related_field",
            "relation_field",
        ),
        (automation(trigger={"type": "record_updated", "fields": ["colour"]}), "trigger.fields[0]", "unknown_field"),
        (
            automation(trigger={"type": "record_updated", "fields": ["level", "source"], "to": "A"}),
            "trigger.to",
            "from_to_one_field",
        ),
        (automation(condition={"field": "colour", "op": "eq", "value": 1}), "condition.field", "unknown_field"),
        (automation(actions=[]), "actions", "required"),
        (automation(actions=[{"type": "launch_rocket"}]), "actions[0].type", "unknown_action"),
        (automation(actions=[{**TASK_ACTION, "form": "invoice"}]), "actions[0].form", "form_not_found"),
        (
            automation(actions=[{**TASK_ACTION, "values": {"title": "{客户电话}"}}]),
            "actions[0].values.title",
            "template_field",
        ),
        (
            automation(actions=[{**TASK_ACTION, "values": {"colour": "red"}}]),
            "actions[0].values.colour",
            "unknown_field",
        ),
        (
            automation(actions=[{**TASK_ACTION, "values": {"title": "unbalanced {"}}]),
            "actions[0].values.title",
            "template_syntax",
        ),
        (
            automation(actions=[{"type": "assign_owner", "strategy": "lottery", "users": ["u1"]}]),
            "actions[0].strategy",
            "unknown_strategy",
        ),
        (automation(actions=[{"type": "assign_owner", "strategy": "round_robin"}]), "actions[0]", "no_candidates"),
        (
            automation(actions=[{"type": "notify", "recipients": [{"type": "everyone"}], "title": "x"}]),
            "actions[0].recipients[0].type",
            "unknown_recipient",
        ),
        (
            automation(
                actions=[{"type": "notify", "recipients": [{"type": "owner"}], "channels": ["pigeon"], "title": "x"}]
            ),
            "actions[0].channels[0]",
            "unknown_channel",
        ),
        (
            automation(actions=[{"type": "update_record", "target": "customer_name", "values": {"x": "1"}}]),
            "actions[0].target",
            "relation_field",
        ),
        (automation(actions=[{"type": "webhook", "url": "ftp://erp.example.com"}]), "actions[0].url", "bad_url"),
        (
            {
                "name": "x",
                "form": "customer",
                "trigger": {"type": "record_created"},
                "actions": [TASK_ACTION],
                "colour": 1,
            },
            "colour",
            "unknown_key",
        ),
    ],
)
def test_a_bad_part_is_refused_with_its_path(spec: dict[str, Any], path: str, rule: str) -> None:
    found = errors(spec)
    assert path in found, found
    assert found[path][0] == rule


def test_scheduled_and_inactivity_conditions_cannot_use_change_operators() -> None:
    spec = automation(
        trigger={"type": "schedule", "cron": "0 9 * * *"},
        condition={"field": "level", "op": "changed"},
    )
    assert errors(spec)["condition"][0] == "event_only_condition"


def test_the_message_names_the_part_in_the_users_language() -> None:
    spec = automation(actions=[{**TASK_ACTION, "values": {"title": "{客户电话}"}}])
    zh = errors(spec, "zh-CN")["actions[0].values.title"][1]
    en = errors(spec, "en")["actions[0].values.title"][1]
    assert "客户电话" in zh and "不是表单" in zh
    assert "客户电话" in en and "is not a field of the form" in en
    assert "解析" in errors(automation(trigger={"type": "schedule", "cron": "nope"}))["trigger.cron"][1]
    assert "does not parse" in errors(automation(trigger={"type": "schedule", "cron": "nope"}), "en")["trigger.cron"][1]


def test_an_earlier_steps_record_may_be_named_but_not_a_later_one() -> None:
    follow = {"type": "create_record", "form": "task", "values": {"title": "跟进", "customer": "{steps.0.id}"}}
    assert parse_automation(automation(actions=[TASK_ACTION, follow]), Lookup())["actions"][1]["values"]["customer"]
    found = errors(automation(actions=[follow, TASK_ACTION]))
    assert found["actions[0].values.customer"][0] == "template_field"
