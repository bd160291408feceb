"""Who may read and change apps and forms: the rights of crm_runtime.access applied by the form engine."""

from __future__ import annotations

from typing import Any

import pytest

from crm_runtime.access import RoleDefinition, compile_policy
from crm_runtime.errors import Forbidden, NotFound
from crm_runtime.principal import Principal
from form_service.domain.service import FormEngine

FIELDS = [{"key": "name", "type": "text", "label": "名称"}]


def _user(permissions: dict[str, Any], user_id: str = "u-custom", tenant: str = "t1") -> Principal:
    """A user principal whose only role is the given permission document."""
    policy = compile_policy([RoleDefinition.parse("custom", permissions)])
    return Principal(tenant_id=tenant, user_id=user_id, role="custom", roles=("custom",), policy_override=policy)


# sees every form except `contract`, manages `lead`, sees nothing of `secret`
MIXED = {
    "default": {"actions": ["view", "create"], "scope": "own"},
    "forms": {
        "contract": {"actions": [], "scope": "own"},
        "lead": {"actions": ["manage"], "scope": "own"},
        "secret": {"actions": ["create"], "scope": "all"},
    },
}


@pytest.fixture()
def forms(engine: FormEngine, admin: Principal) -> dict[str, str]:
    """An app `sales` with forms customer, contract, lead, secret: key -> id."""
    app = engine.create_app(admin, "销售", key="sales")
    out = {}
    for key in ("customer", "contract", "lead", "secret"):
        out[key] = engine.create_form(admin, app.id, {"key": key, "name": key, "fields": FIELDS}).id
    return out


def test_lists_and_drafts_show_only_forms_the_user_may_view_or_manage(
    engine: FormEngine, forms: dict[str, str]
) -> None:
    user = _user(MIXED)
    assert sorted(f.key for f in engine.list_forms(user)) == ["customer", "lead"]
    assert sorted(f.key for f in engine.list_forms(user, "sales")) == ["customer", "lead"]
    assert engine.get_form(user, "customer").id == forms["customer"]
    assert engine.get_form(user, forms["lead"]).key == "lead"
    for ref in ("contract", forms["contract"], "secret", forms["secret"]):
        with pytest.raises(NotFound):
            engine.get_form(user, ref)


def test_a_user_without_any_form_right_sees_no_draft(engine: FormEngine, forms: dict[str, str]) -> None:
    nobody = _user({"default": {"actions": [], "scope": "own"}})
    assert engine.list_forms(nobody) == []
    with pytest.raises(NotFound):
        engine.get_form(nobody, "customer")
    # the app list, the published versions and the field types are for every valid principal
    assert [a.key for a in engine.list_apps(nobody)] == ["sales"]


def test_published_versions_need_only_a_valid_principal(
    engine: FormEngine, admin: Principal, forms: dict[str, str]
) -> None:
    engine.publish_form(admin, "contract")
    nobody = _user({"default": {"actions": [], "scope": "own"}})
    assert engine.get_published(nobody, "contract").version == 1
    assert engine.get_published(_user(MIXED), forms["contract"]).key == "contract"


def test_manage_on_a_form_allows_changing_and_publishing_only_that_form(
    engine: FormEngine, forms: dict[str, str]
) -> None:
    user = _user(MIXED, user_id="u-lead-owner")
    updated = engine.update_form(user, "lead", {"name": {"zh-CN": "线索"}})
    assert updated.name["zh-CN"] == "线索" and updated.updated_by == "u-lead-owner"
    version = engine.publish_form(user, "lead")
    assert (version.version, version.published_by) == (1, "u-lead-owner")
    # viewing is not managing: 403
    with pytest.raises(Forbidden):
        engine.update_form(user, "customer", {"name": "x"})
    with pytest.raises(Forbidden):
        engine.publish_form(user, "customer")
    # a form it cannot even see stays hidden: 404
    for ref in ("contract", "secret"):
        with pytest.raises(NotFound):
            engine.update_form(user, ref, {"name": "x"})
        with pytest.raises(NotFound):
            engine.publish_form(user, ref)
    assert engine.get_form(_user(MIXED), "customer").revision == 1


def test_manage_on_a_form_does_not_allow_creating_apps_forms_or_templates(
    engine: FormEngine, forms: dict[str, str]
) -> None:
    user = _user({"default": {"actions": ["view", "manage"], "scope": "all"}})
    engine.update_form(user, "customer", {"name": "客户"})
    with pytest.raises(Forbidden):
        engine.create_app(user, "x")
    with pytest.raises(Forbidden):
        engine.create_form(user, "sales", {"name": "x"})
    with pytest.raises(Forbidden):
        engine.install_template(user, {"app": {"key": "crm", "name": "x"}, "forms": []})


def test_tenant_admin_flag_alone_manages_every_form(engine: FormEngine, forms: dict[str, str]) -> None:
    admin_only = _user({"tenant_admin": True, "default": {"actions": [], "scope": "own"}})
    assert len(engine.list_forms(admin_only)) == 4
    assert engine.update_form(admin_only, "secret", {"name": "机密"}).revision == 2
    assert engine.create_app(admin_only, "另一个", key="other").key == "other"


def test_service_principals_read_every_draft_of_their_tenant_only(engine: FormEngine, forms: dict[str, str]) -> None:
    service = Principal.service("t1", "record")
    assert sorted(f.key for f in engine.list_forms(service)) == ["contract", "customer", "lead", "secret"]
    assert engine.get_form(service, "secret").id == forms["secret"]
    other = Principal.service("t2", "record")
    assert engine.list_forms(other) == []
    with pytest.raises(NotFound):
        engine.get_form(other, "secret")


def test_the_builtin_manager_and_sales_roles_view_drafts_but_do_not_manage(
    engine: FormEngine, forms: dict[str, str]
) -> None:
    for role in ("manager", "sales"):
        user = Principal(tenant_id="t1", user_id=f"u-{role}", role=role)
        assert len(engine.list_forms(user)) == 4
        with pytest.raises(Forbidden):
            engine.update_form(user, "customer", {"name": "x"})
