"""`python -m gateway tenant create | list | install-template` against the real store and a fake form service."""

from __future__ import annotations

import io
from typing import Any

import grpc
import pytest

pytestmark = pytest.mark.integration


class Run:
    """One CLI invocation: exit code and what it printed."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(settings: Any, gw_store: Any, form_service: Any) -> Any:
    from gateway.tenants import tenant_main

    form_service.handlers["InstallTemplate"] = lambda req, principal: None

    def run(*argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = tenant_main(list(argv), settings=settings, store=gw_store, form=form_service, out=out, err=err)
        return Run(code, out.getvalue(), err.getvalue())

    return run


def test_create_builds_the_whole_tenant_and_prints_the_password_once(
    cli: Any, gw_store: Any, form_service: Any, client: Any, helpers: Any
) -> None:
    run = cli("create", "acme", "--name", "艾克米有限公司")
    assert run.code == 0, run.err
    password = next(line.split(": ", 1)[1] for line in run.out.splitlines() if line.startswith("admin password"))
    assert run.out.count(password) == 1

    tenant = gw_store.tenants.find_one({"_id": "acme"})
    assert tenant["name"] == "艾克米有限公司"
    assert tenant["time_zone"] == "Asia/Shanghai"
    roles = {d["key"]: d for d in gw_store.roles.find({"tenant_id": "acme"})}
    assert set(roles) == {"admin", "manager", "sales"}
    assert roles["admin"]["permissions"]["tenant_admin"] is True
    departments = list(gw_store.departments.find({"tenant_id": "acme"}))
    assert [(d["name"], d["parent_id"]) for d in departments] == [("艾克米有限公司", "")]
    admin = gw_store.users.find_one({"tenant_id": "acme", "username": "admin"})
    assert admin["roles"] == ["admin"]
    assert admin["department_id"] == departments[0]["_id"]
    assert password not in str(admin)  # only the hash is stored

    request, principal = form_service.last("InstallTemplate")
    assert request.template == "crm"
    assert (principal.tenant_id, principal.user_id, principal.is_admin) == ("acme", admin["_id"], True)

    # the new admin signs in to their tenant and administers it, not the default one
    token = helpers.login(client, "admin", password, tenant="acme").get_json()["access_token"]
    me = client.get("/api/v1/me", headers=helpers.bearer(token)).get_json()
    assert me["tenant"]["id"] == "acme"
    assert helpers.login(client, "admin", password).status_code == 401  # the default tenant's admin differs


def test_create_with_a_given_admin_and_list(cli: Any, gw_store: Any) -> None:
    run = cli("create", "beta-co", "--name", "Beta", "--admin-username", "boss", "--admin-password", "Kite-Runner-808")
    assert run.code == 0, run.err
    assert "admin password" not in run.out
    assert gw_store.users.find_one({"tenant_id": "beta-co", "username": "boss"}) is not None
    listed = cli("list")
    assert listed.code == 0
    lines = listed.out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["beta-co", "default"]
    assert "users=1" in lines[0]


def test_existing_key_invalid_input_and_weak_password_are_refused(cli: Any, gw_store: Any) -> None:
    assert cli("create", "default", "--name", "Again").code == 4
    assert gw_store.tenants.find_one({"_id": "default"})["name"] == "默认租户"
    cli("create", "gamma", "--name", "Gamma")
    again = cli("create", "gamma", "--name", "Gamma 2")
    assert again.code == 4
    assert "already exists" in again.err
    assert gw_store.users.count_documents({"tenant_id": "gamma"}) == 1
    for bad_key in ("Bad_Key", "x", "9lives", "a" * 41):
        assert cli("create", bad_key, "--name", "X").code == 1
    assert cli("create", "delta", "--name", "Delta", "--time-zone", "Mars/Olympus").code == 1
    weak = cli("create", "delta", "--name", "Delta", "--admin-password", "password123")
    assert weak.code == 1
    assert "breached" in weak.err
    assert gw_store.tenants.find_one({"_id": "delta"}) is None
    with pytest.raises(SystemExit):
        cli("create", "delta")  # --name is required


def test_unreachable_form_service_creates_nothing(cli: Any, gw_store: Any, form_service: Any) -> None:
    form_service.up = False
    run = cli("create", "epsilon", "--name", "Epsilon")
    assert run.code == 3
    assert "form service" in run.err
    assert gw_store.tenants.find_one({"_id": "epsilon"}) is None
    assert gw_store.users.count_documents({"tenant_id": "epsilon"}) == 0


def test_template_failure_keeps_the_tenant_and_install_template_retries(
    cli: Any, gw_store: Any, form_service: Any, helpers: Any
) -> None:
    def broken(req: Any, principal: Any) -> Any:
        raise helpers.FakeRpcError(grpc.StatusCode.INTERNAL, {"code": "boom"})

    form_service.handlers["InstallTemplate"] = broken
    run = cli("create", "zeta", "--name", "Zeta")
    assert run.code == 2
    assert "admin password (shown once)" in run.out  # shown even though the template failed
    assert "install-template zeta" in run.err
    assert gw_store.tenants.find_one({"_id": "zeta"}) is not None
    form_service.handlers["InstallTemplate"] = lambda req, principal: None
    retry = cli("install-template", "zeta")
    assert retry.code == 0, retry.err
    assert form_service.last("InstallTemplate")[1].tenant_id == "zeta"
    assert cli("install-template", "nope").code == 1


def test_main_dispatches_the_tenant_command(monkeypatch: Any) -> None:
    import gateway.tenants
    from gateway.__main__ import main

    seen: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        seen.append(list(argv))
        return 4

    monkeypatch.setattr(gateway.tenants, "tenant_main", fake)
    with pytest.raises(SystemExit) as exit_info:
        main(["tenant", "create", "k", "--name", "N"])
    assert exit_info.value.code == 4
    assert seen == [["create", "k", "--name", "N"]]
