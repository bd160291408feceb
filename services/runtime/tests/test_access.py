"""Unit tests of crm_runtime.access: role parsing, uniting roles, visibility, fields, assignment, explain."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.access import (
    PolicyError,
    RoleDefinition,
    Subject,
    can,
    compile_policy,
    explain,
    hidden_fields,
    may_assign_to,
    readonly_fields,
    record_acl,
    user_variables,
    visibility,
)

ME = Subject("u1", "east", ("east", "east-1"))


def role(key: str, **raw: Any) -> RoleDefinition:
    return RoleDefinition.parse(key, raw)


def region_is(doc: Any) -> Any:
    return None


def matcher(cond: Any, doc: Any) -> bool:
    # conditions here are single eq leaves on data fields
    return bool(doc.get("data", {}).get(cond["field"]) == cond["value"])


def test_bad_role_documents_name_the_member() -> None:
    with pytest.raises(PolicyError) as err:
        role("x", default={"actions": ["fly"]})
    assert err.value.field == "default.actions" and err.value.rule == "option"
    with pytest.raises(PolicyError) as err:
        role("x", forms={"contract": {"fields": {"amount": "secret"}}})
    assert err.value.field == "forms.contract.fields.amount"
    with pytest.raises(PolicyError):
        role("x", default={"scope": "galaxy"})


def test_own_scope_sees_own_and_shared_records_only() -> None:
    policy = compile_policy([role("sales", default={"actions": ["view", "edit"], "scope": "own"})])
    vis = visibility(policy, "customer", ME)
    assert not vis.unrestricted
    assert vis.allows({"acl": record_acl("u1", "west")}, matcher)
    assert not vis.allows({"acl": record_acl("u2", "east")}, matcher)
    shared = {"acl": record_acl("u2", "west", [{"kind": "user", "id": "u1", "access": "read"}])}
    assert vis.allows(shared, matcher)
    assert "u:u1" in (vis.pushdown or ()) and "ru:u1" in (vis.pushdown or ())
    # a read share does not allow editing; an edit share does
    assert not visibility(policy, "customer", ME, edit=True).allows(shared, matcher)
    edit_share = {"acl": record_acl("u2", "west", [{"kind": "department", "id": "east", "access": "edit"}])}
    assert visibility(policy, "customer", ME, edit=True).allows(edit_share, matcher)


def test_department_tree_follows_the_owners_department() -> None:
    policy = compile_policy([role("mgr", default={"actions": ["view"], "scope": "department_tree"})])
    vis = visibility(policy, "customer", ME)
    assert vis.allows({"acl": record_acl("u9", "east-1")}, matcher)
    assert not vis.allows({"acl": record_acl("u9", "west")}, matcher)
    dept = compile_policy([role("d", default={"actions": ["view"], "scope": "department"})])
    assert not visibility(dept, "customer", ME).allows({"acl": record_acl("u9", "east-1")}, matcher)
    assert visibility(dept, "customer", ME).allows({"acl": record_acl("u9", "east")}, matcher)


def test_all_is_unrestricted_and_all_with_a_condition_is_not() -> None:
    assert visibility(compile_policy([role("a", default={"actions": ["view"], "scope": "all"})]), "f", ME).unrestricted
    cond = {"field": "region", "op": "eq", "value": {"$user": "attr.region"}}
    policy = compile_policy(
        [role("r", default={"actions": ["view"], "scope": "all", "condition": cond})],
        user_variables("u1", "east", {"region": "华东"}),
    )
    vis = visibility(policy, "f", ME)
    assert not vis.unrestricted and vis.pushdown is None
    assert vis.allows({"acl": ["u:u7"], "data": {"region": "华东"}}, matcher)
    assert not vis.allows({"acl": ["u:u7"], "data": {"region": "华北"}}, matcher)


def test_roles_unite_actions_scopes_and_fields() -> None:
    sales = role(
        "sales",
        default={"actions": ["view", "create"], "scope": "own"},
        forms={"contract": {"actions": ["view"], "scope": "own", "fields": {"amount": "hidden", "note": "readonly"}}},
    )
    finance = role("finance", forms={"contract": {"actions": ["view", "export"], "scope": "all"}})
    service = role("service", forms={"contract": {"actions": ["view"], "scope": "own", "fields": {"amount": "hidden"}}})
    only_sales = compile_policy([sales])
    assert hidden_fields(only_sales, "contract") == {"amount"}
    assert readonly_fields(only_sales, "contract") == {"amount", "note"}
    assert not can(only_sales, "contract", "export")
    both = compile_policy([sales, finance])
    assert hidden_fields(both, "contract") == frozenset()  # finance sees the amount
    assert can(both, "contract", "export") and can(both, "customer", "create")
    assert visibility(both, "contract", ME).unrestricted
    assert hidden_fields(compile_policy([sales, service]), "contract") == {"amount"}
    # a form the role does not name falls back to the default rule
    assert can(only_sales, "opportunity", "create") and not can(only_sales, "opportunity", "delete")


def test_no_view_means_only_shares() -> None:
    policy = compile_policy([role("none", default={"actions": []})])
    vis = visibility(policy, "f", ME)
    assert not vis.allows({"acl": record_acl("u1", "east")}, matcher)
    assert vis.allows({"acl": record_acl("u2", "x", [{"kind": "user", "id": "u1"}])}, matcher)


def test_assignment_needs_the_right_and_the_target_in_scope() -> None:
    own = compile_policy([role("s", default={"actions": ["view", "assign"], "scope": "own"})])
    assert may_assign_to(own, "f", ME, "u1", "east")  # oneself, always
    assert not may_assign_to(own, "f", ME, "u2", "east")
    tree = compile_policy([role("m", default={"actions": ["view", "assign"], "scope": "department_tree"})])
    assert may_assign_to(tree, "f", ME, "u2", "east-1")
    assert not may_assign_to(tree, "f", ME, "u3", "west")
    no_right = compile_policy([role("m", default={"actions": ["view"], "scope": "all"})])
    assert not may_assign_to(no_right, "f", ME, "u2", "east")


def test_explain_says_why() -> None:
    policy = compile_policy([role("s", default={"actions": ["view"], "scope": "own"})])
    out = explain(policy, "f", ME, "view", {"acl": record_acl("u2", "west")}, matcher)
    assert out["allowed"] is False and out["reasons"][-1]["code"] == "out_of_scope"
    out = explain(policy, "f", ME, "delete", None, matcher)
    assert out == {"allowed": False, "reasons": [{"code": "action_not_granted", "action": "delete", "form": "f"}]}
    out = explain(policy, "f", ME, "view", {"acl": record_acl("u1", "west")}, matcher)
    assert out["allowed"] and out["reasons"][-1]["code"] == "in_scope"


def test_policy_round_trips_through_json() -> None:
    from crm_runtime.access import Policy

    cond = {"field": "region", "op": "eq", "value": "华东"}
    policy = compile_policy(
        [
            role(
                "x",
                default={"actions": ["view"], "scope": "own"},
                forms={"c": {"actions": ["view"], "condition": cond}},
            )
        ]
    )
    assert Policy.from_json(policy.to_json()) == policy
