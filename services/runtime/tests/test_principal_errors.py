"""Unit tests: principal metadata and error problems."""

from __future__ import annotations

import time

import pytest

from crm_runtime import Conflict, FieldError, ValidationFailed, make_envelope
from crm_runtime.principal import Principal, PrincipalCodec, current_principal, principal_context


def test_principal_round_trips_through_a_signed_token() -> None:
    codec = PrincipalCodec("s" * 32)
    p = Principal(
        tenant_id="t1",
        user_id="u1",
        role="manager",
        roles=("manager", "finance"),
        department_id="d1",
        scope_departments=("d1", "d2"),
        locale="en",
        request_id="r1",
        user_name="张三",
        session_id="sess",
    )
    back = codec.from_metadata(codec.metadata(p))
    assert back is not None
    assert (back.tenant_id, back.user_id, back.role, back.roles, back.scope_departments) == (
        "t1",
        "u1",
        "manager",
        ("manager", "finance"),
        ("d1", "d2"),
    )
    assert (back.locale, back.request_id, back.user_name, back.session_id) == ("en", "r1", "张三", "sess")
    assert back.policy == p.policy


def test_plain_metadata_claims_are_not_a_principal() -> None:
    codec = PrincipalCodec("s" * 32)
    assert codec.from_metadata([("x-tenant-id", "default"), ("x-role", "admin")]) is None


def test_forged_expired_and_alg_none_tokens_are_refused() -> None:
    import jwt

    codec = PrincipalCodec("s" * 32)
    other = PrincipalCodec("o" * 32)
    p = Principal(tenant_id="t1", user_id="u1")
    assert codec.verify(other.sign(p)) is None
    old = codec.sign(p, now=time.time() - 3600)
    assert codec.verify(old) is None
    claims = jwt.decode(codec.sign(p), options={"verify_signature": False})
    unsigned = jwt.encode({**claims, "r": "admin"}, key=None, algorithm="none")
    assert codec.verify(unsigned) is None
    tampered = jwt.encode({**claims, "tid": "other"}, "x" * 32, algorithm="HS256")
    assert codec.verify(tampered) is None
    assert codec.verify("not-a-token") is None


def test_short_secret_fails_fast() -> None:
    from crm_runtime.config import ConfigError

    with pytest.raises(ConfigError):
        PrincipalCodec("short")


def test_service_identity_has_full_rights_and_says_so() -> None:
    p = Principal.service("t1", "workflow", on_behalf="automation:42")
    codec = PrincipalCodec("s" * 32)
    back = codec.verify(codec.sign(p))
    assert back is not None and back.kind == "service" and back.on_behalf == "automation:42"
    assert back.is_admin and back.user_id == "service:workflow"


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
