"""Unit tests of domain/access.py: role conditions through the planner's parser, input checks, FormAccess."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from crm_runtime.access import RoleDefinition, compile_policy
from crm_runtime.principal import Principal
from record_service.domain.access import ConditionMatcher, FormAccess, input_errors, visible_changes
from record_service.domain.forms import FormSchema

FORM = FormSchema(
    id="f1",
    key="customer",
    tenant_id="t1",
    version=1,
    title_field="name",
    fields=(
        {"key": "name", "type": "text", "label": {"zh-CN": "名称", "en": "Name"}},
        {"key": "level", "type": "select", "label": {"zh-CN": "分级", "en": "Level"}},
        {"key": "amount", "type": "money", "label": {"zh-CN": "金额", "en": "Amount"}},
    ),
)


@dataclass
class Ctx:
    locale: str = "en"
    tz: Any = ZoneInfo("Asia/Shanghai")
    now: datetime = datetime(2024, 5, 14, tzinfo=UTC)


def identity(field: dict[str, Any], op: str, value: Any) -> Any:
    return value


def matcher() -> ConditionMatcher:
    return ConditionMatcher(FORM, Ctx(), identity)


def principal(default: dict[str, Any], user: str = "u1") -> Principal:
    policy = compile_policy([RoleDefinition.parse("r", {"default": default})])
    return Principal(tenant_id="t1", user_id=user, department_id="d1", policy_override=policy)


def test_conditions_match_like_filters_and_a_broken_one_matches_nothing() -> None:
    m = matcher()
    cond = {"field": "level", "op": "eq", "value": "A"}
    assert m(cond, {"data": {"level": "A"}}) and not m(cond, {"data": {"level": "B"}})
    assert m.paths(cond) == {"data.level"}
    assert m({"field": "owner_id", "op": "eq", "value": "u1"}, {"owner_id": "u1"})
    for broken in ({"field": "nope", "op": "eq", "value": 1}, {"field": "level", "op": "$where"}, {"and": "x"}):
        assert not m(broken, {"data": {"level": "A"}, "nope": 1}) and m.paths(broken) == set()


def test_form_access_exact_rule_pushdown_and_hidden_title() -> None:
    own = FormAccess.of(principal({"actions": ["view"], "scope": "own"}), FORM, matcher())
    assert own.pushdown is not None and "u:u1" in own.pushdown and own.exact
    assert own.allows({"acl": ["u:u1"]}) and not own.allows({"acl": ["u:u2"]})
    assert own.allows({"acl": ["ru:u1"]})  # shared with them for reading
    cond = FormAccess.of(
        principal({"actions": ["view"], "scope": "all", "condition": {"field": "level", "op": "eq", "value": "A"}}),
        FORM,
        matcher(),
    )
    assert cond.pushdown is None and not cond.exact and "data.level" in cond.paths()
    assert cond.allows({"acl": [], "data": {"level": "A"}}) and not cond.allows({"acl": [], "data": {"level": "B"}})
    everything = FormAccess.of(principal({"actions": ["view"], "scope": "all"}), FORM, matcher())
    assert everything.unrestricted and everything.pushdown is None
    secret = FormAccess.of(
        principal({"actions": ["view"], "scope": "all", "fields": {"name": "hidden"}}), FORM, matcher()
    )
    assert secret.title_of({"data": {"name": "甲"}}, "rid") == "rid"
    assert everything.title_of({"data": {"name": "甲"}}, "rid") == "甲"
    assert secret.strip({"name": "甲", "level": "A"}) == {"level": "A"}


def test_input_errors_name_hidden_fields_as_unknown_and_refuse_read_only_and_system_keys() -> None:
    fa = FormAccess.of(
        principal({"actions": ["view", "edit"], "scope": "all", "fields": {"amount": "hidden", "level": "readonly"}}),
        FORM,
        matcher(),
    )
    errors, rest = input_errors(
        FORM, fa, {"name": "x", "amount": 1, "level": "A", "acl": [], "nope": 2}, "en", prefix="rows[0]."
    )
    assert rest == {"name": "x", "nope": 2}  # unknown keys are crm_schema's to refuse
    assert [(e.field, e.rule) for e in errors] == [
        ("rows[0].amount", "unknown_field"),
        ("rows[0].level", "read_only"),
        ("rows[0].acl", "system_field"),
    ]
    assert errors[0].message == "amount is not a field of this form" and "Level" in errors[1].message


def test_visible_changes_drop_hidden_fields() -> None:
    changes = [{"field": "amount", "old": 1, "new": 2}, {"field": "name", "old": "a", "new": "b"}]
    assert visible_changes(changes, frozenset({"amount"})) == [{"field": "name", "old": "a", "new": "b"}]
