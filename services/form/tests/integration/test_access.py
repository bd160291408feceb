"""Form rights over gRPC: the compiled policy travels in the signed principal token and the server applies it."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from crm.form.v1 import form_pb2
from crm_runtime.access import RoleDefinition, compile_policy
from crm_runtime.principal import Principal

pytestmark = pytest.mark.integration

FIELDS = [{"key": "name", "type": "text", "label": "名称"}]
ROLE = {
    "default": {"actions": ["view"], "scope": "own"},
    "forms": {"contract": {"actions": [], "scope": "own"}, "lead": {"actions": ["manage"], "scope": "own"}},
}


def _status(call: Any) -> tuple[grpc.StatusCode, dict[str, Any]]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), json.loads(err.value.details())


@pytest.fixture()
def setup(as_admin: Any, make_caller: Any, tenant: str) -> tuple[Any, dict[str, str]]:
    """An app with forms customer, contract, lead, and a caller holding ROLE."""
    app = json.loads(as_admin("CreateApp", form_pb2.CreateAppRequest(name_json='"销售"', key="sales")).app_json)
    ids = {}
    for key in ("customer", "contract", "lead"):
        spec = json.dumps({"key": key, "name": key, "fields": FIELDS})
        ids[key] = json.loads(
            as_admin("CreateForm", form_pb2.CreateFormRequest(app_id=app["id"], form_json=spec)).form_json
        )["id"]
    as_admin("PublishForm", form_pb2.PublishFormRequest(form_id="contract"))
    policy = compile_policy([RoleDefinition.parse("custom", ROLE)])
    user = Principal(
        tenant_id=tenant, user_id="u-x", role="custom", roles=("custom",), policy_override=policy, locale="en"
    )
    return make_caller(user), ids


def test_drafts_are_listed_and_read_only_when_the_policy_lets_the_user_view_or_manage(
    setup: tuple[Any, dict[str, str]],
) -> None:
    caller, ids = setup
    listed = [json.loads(f)["key"] for f in caller("ListForms", form_pb2.ListFormsRequest()).forms_json]
    assert sorted(listed) == ["customer", "lead"]
    assert json.loads(caller("GetForm", form_pb2.GetFormRequest(form_id="lead")).form_json)["id"] == ids["lead"]
    for ref in ("contract", ids["contract"]):
        code, body = _status(lambda ref=ref: caller("GetForm", form_pb2.GetFormRequest(form_id=ref)))
        assert (code, body["status"]) == (grpc.StatusCode.NOT_FOUND, 404)
    # the published version is for every valid principal (records need their definitions)
    published = caller("GetPublishedForm", form_pb2.GetPublishedFormRequest(form_id="contract"))
    assert published.version == 1


def test_manage_allows_changing_and_publishing_that_form_only(setup: tuple[Any, dict[str, str]]) -> None:
    caller, ids = setup
    resp = caller("UpdateForm", form_pb2.UpdateFormRequest(form_id="lead", form_json='{"name": {"zh-CN": "线索"}}'))
    assert json.loads(resp.form_json)["updated_by"] == "u-x"
    assert caller("PublishForm", form_pb2.PublishFormRequest(form_id="lead")).version == 1
    code, body = _status(
        lambda: caller("UpdateForm", form_pb2.UpdateFormRequest(form_id="customer", form_json='{"name": "x"}'))
    )
    assert (code, body["status"]) == (grpc.StatusCode.PERMISSION_DENIED, 403)
    assert "manage the form" in body["detail"]
    code, _ = _status(lambda: caller("PublishForm", form_pb2.PublishFormRequest(form_id=ids["contract"])))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _status(lambda: caller("CreateApp", form_pb2.CreateAppRequest(name_json='"x"')))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_a_service_principal_reads_every_draft_of_its_tenant(
    setup: tuple[Any, dict[str, str]], make_caller: Any, tenant: str
) -> None:
    service = make_caller(Principal.service(tenant, "record"))
    listed = [json.loads(f)["key"] for f in service("ListForms", form_pb2.ListFormsRequest()).forms_json]
    assert sorted(listed) == ["contract", "customer", "lead"]
    other = make_caller(Principal.service(tenant + "-other", "record"))
    assert list(other("ListForms", form_pb2.ListFormsRequest()).forms_json) == []
