"""Pure parts of identity: which roles a request names, user attributes, localized role texts."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.errors import ValidationFailed
from gateway.roles import localized, parse_permissions, user_role_keys
from gateway.users import directory_user, parse_attributes, requested_roles


@pytest.mark.parametrize(
    ("spec", "default", "expected"),
    [
        ({}, ["sales"], ["sales"]),
        ({}, None, None),
        ({"role": "manager"}, None, ["manager"]),
        ({"roles": ["a", "b", "a"]}, None, ["a", "b"]),
        ({"roles": ["a", "b"], "role": "b"}, None, ["b", "a"]),
        ({"roles": ["a"], "role": "c"}, None, ["c", "a"]),
    ],
)
def test_requested_roles(spec: dict[str, Any], default: list[str] | None, expected: list[str] | None) -> None:
    assert requested_roles(spec, default) == expected


def test_requested_roles_refuses_none_and_too_many() -> None:
    with pytest.raises(ValidationFailed) as empty:
        requested_roles({"roles": []}, None)
    assert empty.value.errors[0].rule == "length"
    with pytest.raises(ValidationFailed):
        requested_roles({"roles": [f"r{i}" for i in range(21)]}, None)


def test_attributes_are_short_named_strings() -> None:
    assert parse_attributes(None) == {}
    assert parse_attributes({"region": "华东", "level_2": ""}) == {"region": "华东", "level_2": ""}
    for bad, field in [({"a b": "x"}, "attributes.a b"), ({"n": 3}, "attributes.n"), ([1], "attributes")]:
        with pytest.raises(ValidationFailed) as exc:
            parse_attributes(bad)
        assert exc.value.errors[0].field == field
    with pytest.raises(ValidationFailed):
        parse_attributes({f"k{i}": "v" for i in range(33)})


def test_role_keys_of_old_and_new_documents_and_the_directory_view() -> None:
    assert user_role_keys({"role": "manager"}) == ["manager"]
    assert user_role_keys({"role": "sales", "roles": ["admin", "sales"]}) == ["admin", "sales"]
    doc = {"_id": "u1", "tenant_id": "t", "username": "u", "email": "e@x", "phone": "1", "roles": ["sales"]}
    assert directory_user(doc) == {
        "id": "u1",
        "username": "u",
        "name": "u",
        "department_id": None,
        "active": True,
        "roles": ["sales"],
    }


def test_localized_texts_and_permission_errors_name_the_member() -> None:
    assert localized({"zh-CN": "销售", "en": "Sales"}, "en") == "Sales"
    assert localized({"en": "Sales"}, "zh-CN") == "Sales"
    assert localized("固定") == "固定"
    with pytest.raises(ValidationFailed) as exc:
        parse_permissions("x", {"forms": {"deal": {"scope": "galaxy"}}})
    error = exc.value.errors[0].to_dict()
    assert (error["field"], error["rule"], error["params"]) == (
        "permissions.forms.deal.scope",
        "option",
        {"detail": "galaxy"},
    )
    assert "galaxy" in error["message"]
