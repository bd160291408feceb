"""Unit tests: principal metadata and error problems."""

from __future__ import annotations

from crm_runtime import Conflict, FieldError, ValidationFailed, make_envelope
from crm_runtime.principal import Principal, current_principal, principal_context


def test_principal_round_trips_through_metadata() -> None:
    p = Principal(
        tenant_id="t1",
        user_id="u1",
        role="manager",
        department_id="d1",
        scope_departments=("d1", "d2"),
        locale="en",
        request_id="r1",
        user_name="张三",
    )
    md = [(k, v) for k, v in p.to_metadata()]
    assert Principal.from_metadata(md) == p


def test_unknown_role_degrades_to_least_privilege() -> None:
    p = Principal.from_metadata([("x-tenant-id", "t"), ("x-role", "root")])
    assert p is not None and p.role == "sales"


def test_no_tenant_means_no_principal() -> None:
    assert Principal.from_metadata([("x-user-id", "u")]) is None


def test_current_principal_outside_a_call_is_unauthenticated() -> None:
    from crm_runtime.errors import Unauthenticated

    try:
        current_principal()
    except Unauthenticated:
        pass
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("expected Unauthenticated")
    with principal_context(Principal(tenant_id="t")):
        assert current_principal().tenant_id == "t"


def test_validation_problem_lists_field_errors() -> None:
    err = ValidationFailed([FieldError("mobile", "format", "「手机号」格式不正确")])
    problem = err.to_problem()
    assert problem["status"] == 422
    assert problem["errors"] == [{"field": "mobile", "rule": "format", "message": "「手机号」格式不正确"}]


def test_conflict_carries_extra_members() -> None:
    problem = Conflict("duplicate", existing_id="abc").to_problem()
    assert problem["status"] == 409 and problem["existing_id"] == "abc"


def test_envelope_shape() -> None:
    env = make_envelope("record.created", "t1", {"a": 1}, source="record", actor="u1")
    assert set(env) == {"id", "type", "tenant_id", "occurred_at", "source", "actor", "data"}
    assert env["occurred_at"].endswith("Z") and len(env["id"]) == 32
