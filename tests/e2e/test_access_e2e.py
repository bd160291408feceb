"""End-to-end access control (docs/security.md) through the REST gateway of the running platform.

Data scope by the owner's department (sales: own, manager: department tree,
admin: all), hidden fields, sharing, revoked sessions, role CRUD, the
permission check, the operation log, and form rights. One department tree and
one set of users per module:

    华东<m>            manager_hd
    └── 上海<m>        sales_a, sales_b
    华南<m>            sales_c

The workflow's routes (automations, runs, dead letters, notifications) are
checked here too: tenant isolation against the admin of a second tenant, made
as an operator makes one, and the admin-only routes against sales users.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from crm_runtime.testing import free_port
from tests.e2e.conftest import Client, create_tenant
from tests.support.launcher import Platform

pytestmark = pytest.mark.e2e

PASSWORD = "Passw0rd-e2e-access"


def _uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _once_known(call: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`call()` (a requests.Response), retried while it says the user named is unknown.

    A user created a moment ago reaches the record service's directory through
    the gateway's outbox, relay and RabbitMQ (well under a second when idle);
    until then naming them as owner or share target is a 422.
    """
    deadline = time.monotonic() + timeout
    while True:
        resp = call()
        rules = {e.get("rule") for e in (resp.json().get("errors") or [])} if resp.status_code == 422 else set()
        if not rules & {"owner_invalid", "share_target_invalid"} or time.monotonic() > deadline:
            assert resp.status_code < 300, f"{resp.status_code} {resp.text}"
            return resp.json()
        time.sleep(0.3)


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Retry `check` until it returns a truthy value (events between services are asynchronous)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    return last


def _items(body: Any) -> list[dict[str, Any]]:
    return list(body["items"] if isinstance(body, dict) else body)


class World:
    """The departments, users, their clients and one customer record per sales user."""

    def __init__(self, platform: Platform, admin: Client) -> None:
        self.platform = platform
        self.admin = admin
        self.mark = _uniq("权限")
        east = admin.ok("POST", "/departments", json={"name": f"华东{self.mark}"})
        shanghai = admin.ok("POST", "/departments", json={"name": f"上海{self.mark}", "parent_id": east["id"]})
        south = admin.ok("POST", "/departments", json={"name": f"华南{self.mark}"})
        self.departments = {"east": east["id"], "shanghai": shanghai["id"], "south": south["id"]}
        self.users: dict[str, dict[str, Any]] = {}
        self.clients: dict[str, Client] = {}
        for name, role, dept in (
            ("manager_hd", "manager", "east"),
            ("sales_a", "sales", "shanghai"),
            ("sales_b", "sales", "shanghai"),
            ("sales_c", "sales", "south"),
        ):
            self.add_user(name, [role], self.departments[dept])
        self.records = {}
        for name in ("sales_a", "sales_b", "sales_c"):
            data = {"customer_name": f"{self.mark}-{name}", "level": "A"}
            self.records[name] = self.clients[name].ok("POST", "/forms/customer/records", json={"data": data})

    def add_user(self, name: str, roles: list[str], department_id: str | None = None) -> Client:
        username = f"{name}_{self.mark[-8:]}"
        body: dict[str, Any] = {"username": username, "password": PASSWORD, "name": name, "roles": roles}
        if department_id:
            body["department_id"] = department_id
        self.users[name] = self.admin.ok("POST", "/users", json=body)
        client = Client(self.platform.base_url)
        client.login(username, PASSWORD)
        self.clients[name] = client
        return client

    def visible_ids(self, name: str) -> set[str]:
        """Ids of this module's customer records the user gets in a filtered list."""
        flt = {"field": "customer_name", "op": "starts_with", "value": self.mark}
        body = self.clients[name].ok("POST", "/forms/customer/records/query", json={"filter": flt, "page_size": 50})
        return {r["id"] for r in body["items"]}

    def ids(self, *names: str) -> set[str]:
        return {self.records[n]["id"] for n in names}


@pytest.fixture(scope="module")
def world(platform: Platform, admin: Client) -> World:
    return World(platform, admin)


# ----------------------------------------------------------------------------- data scope


def test_sales_see_only_the_records_they_own(world: World) -> None:
    assert _eventually(lambda: world.visible_ids("sales_a") == world.ids("sales_a"))
    assert world.visible_ids("sales_c") == world.ids("sales_c")
    other = world.records["sales_b"]["id"]
    resp = world.clients["sales_a"].request("GET", f"/records/{other}")
    assert resp.status_code in (403, 404), resp.status_code
    patch = world.clients["sales_a"].request("PATCH", f"/records/{other}", json={"data": {"level": "B"}, "version": 1})
    assert patch.status_code in (403, 404), patch.status_code
    assert world.admin.ok("GET", f"/records/{other}")["data"]["level"] == "A"


def test_a_manager_sees_the_department_tree_and_an_admin_everything(world: World) -> None:
    assert _eventually(lambda: world.visible_ids("manager_hd") == world.ids("sales_a", "sales_b"))
    flt = {"field": "customer_name", "op": "starts_with", "value": world.mark}
    body = world.admin.ok("POST", "/forms/customer/records/query", json={"filter": flt, "page_size": 50})
    assert {r["id"] for r in body["items"]} >= world.ids("sales_a", "sales_b", "sales_c")
    resp = world.clients["manager_hd"].request("GET", f"/records/{world.records['sales_c']['id']}")
    assert resp.status_code in (403, 404)


def test_counts_and_keyword_search_agree_with_the_scope(world: World) -> None:
    client = world.clients["sales_a"]
    body = client.ok("GET", "/forms/customer/records", params={"q": world.mark, "count": "exact", "page_size": 50})
    assert {r["id"] for r in body["items"]} == world.ids("sales_a")
    assert body["total"] == 1


def test_scope_follows_the_owner_when_a_record_is_assigned(world: World) -> None:
    rec = world.clients["sales_b"].ok(
        "POST", "/forms/customer/records", json={"data": {"customer_name": f"{world.mark}-moved"}}
    )
    _once_known(
        lambda: world.admin.request(
            "PATCH", f"/records/{rec['id']}", json={"owner_id": world.users["sales_c"]["id"], "version": 1}
        )
    )
    assert _eventually(lambda: rec["id"] in world.visible_ids("sales_c"))
    assert rec["id"] not in world.visible_ids("sales_b")
    assert rec["id"] not in world.visible_ids("manager_hd")


# ----------------------------------------------------------------------------- hidden fields


def test_hidden_fields_are_absent_unfilterable_and_unwritable(world: World) -> None:
    key = _uniq("nolevel_")
    world.admin.ok(
        "POST",
        "/roles",
        json={
            "key": key,
            "name": "看不到等级",
            "permissions": {
                "default": {"actions": ["view", "create", "edit"], "scope": "all"},
                "forms": {
                    "customer": {"actions": ["view", "create", "edit"], "scope": "all", "fields": {"level": "hidden"}}
                },
            },
        },
    )
    client = world.add_user("hider", [key])
    rec = client.ok("GET", f"/records/{world.records['sales_a']['id']}")
    assert "level" not in rec["data"] and rec["data"]["customer_name"] == f"{world.mark}-sales_a"
    listed = client.ok("GET", "/forms/customer/records", params={"q": world.mark, "page_size": 50})["items"]
    assert listed and all("level" not in r["data"] for r in listed)
    history = client.ok("GET", f"/records/{world.records['sales_a']['id']}/history")
    assert "level" not in str(history)
    flt = {"field": "level", "op": "eq", "value": "A"}
    resp = client.request("POST", "/forms/customer/records/query", json={"filter": flt})
    assert resp.status_code in (400, 403, 422), resp.status_code
    resp = client.request("GET", "/forms/customer/records", params={"sort": "level"})
    assert resp.status_code in (400, 403, 422), resp.status_code
    resp = client.request(
        "PATCH", f"/records/{world.records['sales_a']['id']}", json={"data": {"level": "C"}, "version": 1}
    )
    assert resp.status_code in (403, 422), resp.status_code
    assert world.admin.ok("GET", f"/records/{world.records['sales_a']['id']}")["data"]["level"] == "A"


# ----------------------------------------------------------------------------- sharing


def test_a_shared_record_is_readable_by_the_share_target_until_unshared(world: World) -> None:
    rec = world.records["sales_a"]["id"]
    target = world.users["sales_c"]["id"]
    c = world.clients["sales_c"]
    assert c.request("GET", f"/records/{rec}").status_code in (403, 404)
    _once_known(
        lambda: world.clients["sales_a"].request(
            "POST", f"/records/{rec}/shares", json={"target_kind": "user", "target_id": target, "access": "read"}
        )
    )
    assert c.ok("GET", f"/records/{rec}")["id"] == rec
    assert rec in world.visible_ids("sales_c")
    edit = c.request("PATCH", f"/records/{rec}", json={"data": {"customer_name": "x"}, "version": 1})
    assert edit.status_code in (403, 404), edit.status_code
    world.clients["sales_a"].ok("DELETE", f"/records/{rec}/shares/user/{target}")
    assert c.request("GET", f"/records/{rec}").status_code in (403, 404)


# ----------------------------------------------------------------------------- sessions


def test_logout_logout_everywhere_and_deactivation_take_effect_on_the_next_request(world: World) -> None:
    first = world.add_user("sessions", ["sales"])
    second = Client(world.platform.base_url)
    second.login(f"sessions_{world.mark[-8:]}", PASSWORD)
    assert first.request("GET", "/me").status_code == 200
    first.ok("POST", "/auth/logout", json={})
    assert first.request("GET", "/me").status_code == 401
    assert second.request("GET", "/me").status_code == 200
    third = Client(world.platform.base_url)
    third.login(f"sessions_{world.mark[-8:]}", PASSWORD)
    second.ok("POST", "/auth/logout-all")
    assert second.request("GET", "/me").status_code == 401
    assert third.request("GET", "/me").status_code == 401
    fourth = Client(world.platform.base_url)
    fourth.login(f"sessions_{world.mark[-8:]}", PASSWORD)
    world.admin.ok("PATCH", f"/users/{world.users['sessions']['id']}", json={"active": False})
    assert fourth.request("GET", "/me").status_code == 401


def test_a_role_change_ends_the_old_tokens_rights(world: World) -> None:
    client = world.add_user("promoted", ["sales"])
    assert client.request("GET", "/me").status_code == 200
    world.admin.ok("PATCH", f"/users/{world.users['promoted']['id']}", json={"roles": ["manager"]})
    assert client.request("GET", "/me").status_code == 401


def test_a_validly_signed_token_naming_another_tenant_is_refused(world: World, platform: Platform) -> None:
    claims = jwt.decode(str(world.admin.token), options={"verify_signature": False})
    token = jwt.encode({**claims, "tenant": "other-tenant"}, platform.env["JWT_SECRET"], algorithm="HS256")
    assert Client(platform.base_url, token).request("GET", "/apps").status_code == 401
    assert world.admin.request("GET", "/apps").status_code == 200


# ----------------------------------------------------------------------------- roles


def test_role_crud_is_for_tenant_admins_and_validated(world: World) -> None:
    key = _uniq("viewer_")
    perms = {"default": {"actions": ["view"], "scope": "department"}}
    created = world.admin.request("POST", "/roles", json={"key": key, "name": "只读", "permissions": perms})
    assert created.status_code == 201, created.text
    assert created.json()["key"] == key
    got = world.admin.ok("GET", f"/roles/{key}")
    assert got["permissions"]["default"]["scope"] == "department"
    updated = world.admin.ok(
        "PATCH", f"/roles/{key}", json={"permissions": {"default": {"actions": ["view", "export"], "scope": "all"}}}
    )
    assert updated["version"] > got["version"]
    assert world.admin.request("POST", "/roles", json={"key": key, "permissions": perms}).status_code == 409
    bad = world.admin.request(
        "POST", "/roles", json={"key": _uniq("bad_"), "permissions": {"default": {"actions": ["fly"]}}}
    )
    assert bad.status_code == 422
    assert any(e["field"].startswith("permissions.default.actions") for e in bad.json()["errors"])
    sales = world.clients["sales_a"]
    assert sales.request("POST", "/roles", json={"key": _uniq("x_"), "permissions": perms}).status_code == 403
    assert sales.request("DELETE", f"/roles/{key}").status_code == 403
    world.add_user("holder", [key])
    assert world.admin.request("DELETE", f"/roles/{key}").status_code == 409
    world.admin.ok("PATCH", f"/users/{world.users['holder']['id']}", json={"roles": ["sales"]})
    assert world.admin.request("DELETE", f"/roles/{key}").status_code == 204
    assert world.admin.request("GET", f"/roles/{key}").status_code == 404


# ----------------------------------------------------------------------------- permission check


def test_the_permission_check_explains_scope_and_is_admin_only(world: World) -> None:
    user = world.users["sales_a"]["id"]
    base = {"user_id": user, "form": "customer"}
    own = world.admin.ok(
        "GET", "/permissions/check", params={**base, "action": "edit", "record_id": world.records["sales_a"]["id"]}
    )
    assert own["allowed"] is True
    other = world.admin.ok(
        "GET", "/permissions/check", params={**base, "action": "view", "record_id": world.records["sales_c"]["id"]}
    )
    assert other["allowed"] is False
    assert any(r["code"] == "out_of_scope" for r in other["reasons"])
    manage = world.admin.ok("GET", "/permissions/check", params={**base, "action": "manage"})
    assert manage["allowed"] is False
    assert world.admin.request("GET", "/permissions/check", params={**base, "action": "fly"}).status_code == 422
    denied = world.clients["sales_a"].request("GET", "/permissions/check", params={**base, "action": "view"})
    assert denied.status_code == 403


# ----------------------------------------------------------------------------- operation log


def test_the_operation_log_records_admin_changes_and_is_admin_only(world: World) -> None:
    key = _uniq("audited_")
    world.admin.ok("POST", "/roles", json={"key": key, "permissions": {"default": {"actions": ["view"]}}})

    def entries() -> list[dict[str, Any]]:
        return [e for e in _items(world.admin.ok("GET", "/audit", params={"page_size": 100})) if key in str(e)]

    found = _eventually(entries)
    assert found, "no audit entry names the new role"
    assert found[0]["actor_id"] == world.admin.ok("GET", "/me")["id"]
    assert world.clients["sales_a"].request("GET", "/audit").status_code == 403
    verify = world.admin.request("GET", "/audit/verify")
    assert verify.status_code == 200


# ----------------------------------------------------------------------------- form rights


def test_form_drafts_follow_view_and_manage_rights(world: World) -> None:
    key = _uniq("nocontract_")
    world.admin.ok(
        "POST",
        "/roles",
        json={
            "key": key,
            "permissions": {
                "default": {"actions": ["view"], "scope": "own"},
                "forms": {"contract": {"actions": [], "scope": "own"}, "task": {"actions": ["manage"], "scope": "own"}},
            },
        },
    )
    client = world.add_user("formuser", [key])
    crm = next(a for a in _items(client.ok("GET", "/apps")) if a["key"] == "crm")
    keys = {f["key"] for f in _items(client.ok("GET", f"/apps/{crm['id']}/forms"))}
    assert "customer" in keys and "task" in keys and "contract" not in keys
    assert client.request("GET", "/forms/contract").status_code == 404
    assert client.ok("GET", "/forms/contract/published")["key"] == "contract"
    assert client.request("PATCH", "/forms/customer", json={"name": {"zh-CN": "x"}}).status_code == 403
    task = client.ok("GET", "/forms/task")
    renamed = client.ok("PATCH", "/forms/task", json={"name": task["name"], "expected_revision": task["revision"]})
    assert renamed["revision"] == task["revision"] + 1
    assert world.clients["sales_a"].request("PATCH", "/forms/task", json={"name": task["name"]}).status_code == 403
    assert client.request("POST", "/apps", json={"name": "x"}).status_code == 403


# ----------------------------------------------------------------------------- workflow


@pytest.fixture(scope="module")
def other_tenant(platform: Platform) -> Client:
    """The admin of a second tenant (with the CRM forms), logged in."""
    key = "wf-" + secrets.token_hex(4)
    password = "Wf-" + secrets.token_urlsafe(12)
    create_tenant(platform, key, password, name="Workflow isolation")
    client = Client(platform.base_url)
    client.login("admin", password, tenant=key)
    return client


@pytest.fixture
def automation_of(world: World) -> Iterator[Callable[[Client, dict[str, Any]], dict[str, Any]]]:
    """Create automations (as the given admin); each is deleted at the end of the test."""
    made: list[tuple[Client, str]] = []

    def make(client: Client, spec: dict[str, Any]) -> dict[str, Any]:
        created = client.ok("POST", "/automations", json=spec)
        made.append((client, created["id"]))
        return created  # type: ignore[no-any-return]

    yield make
    for client, automation_id in made:
        resp = client.request("GET", f"/automations/{automation_id}")
        if resp.status_code == 200:
            client.request(
                "DELETE", f"/automations/{automation_id}", params={"expected_version": resp.json()["version"]}
            )


def _notify_owner_on_create(marker: str) -> dict[str, Any]:
    return {
        "name": "新客户 → 通知负责人",
        "form": "customer",
        "trigger": {"type": "record_created"},
        "condition": {"field": "customer_name", "op": "starts_with", "value": marker},
        "actions": [{"type": "notify", "recipients": [{"type": "owner"}], "title": "新客户 {客户名称}"}],
    }


def _notes_on(client: Client, record_id: str) -> list[dict[str, Any]]:
    return [
        n for n in _items(client.ok("GET", "/notifications", params={"page_size": 100})) if n["record_id"] == record_id
    ]


def test_another_tenants_admin_sees_and_changes_none_of_the_workflow(
    world: World, other_tenant: Client, automation_of: Callable[[Client, dict[str, Any]], dict[str, Any]]
) -> None:
    admin, other = world.admin, other_tenant
    # the default tenant's: an automation, runs on a record, a dead letter (a webhook nobody answers)
    ours = next(a for a in _items(admin.ok("GET", "/automations")) if a.get("template_key") == "crm.new_customer_task")
    record = world.records["sales_a"]["id"]
    assert _eventually(lambda: _items(admin.ok("GET", f"/records/{record}/automation-runs")))
    dead_mark = _uniq("死信隔离")
    failing = automation_of(
        admin,
        {
            "name": "回调无人应答",
            "form": "customer",
            "trigger": {"type": "record_created"},
            "condition": {"field": "customer_name", "op": "starts_with", "value": dead_mark},
            "actions": [{"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/closed"}],
        },
    )
    admin.ok("POST", "/forms/customer/records", json={"data": {"customer_name": f"{dead_mark}有限公司"}})

    def our_letter() -> dict[str, Any] | None:
        letters = _items(admin.ok("GET", "/workflow/dead-letters", params={"page_size": 100}))
        return next((x for x in letters if x["automation_id"] == failing["id"]), None)

    letter = _eventually(our_letter, timeout=30)
    assert letter, "no dead letter for the unanswered webhook"

    # the other tenant's admin: their own automation and notification
    theirs = automation_of(other, _notify_owner_on_create("隔离"))
    assert theirs["tenant_id"] != "default"
    mine = other.ok("POST", "/forms/customer/records", json={"data": {"customer_name": "隔离测试有限公司"}})
    assert _eventually(lambda: _notes_on(other, mine["id"]))
    assert _notes_on(admin, mine["id"]) == []

    # sees only their own
    listed = _items(other.ok("GET", "/automations"))
    assert theirs["id"] in {a["id"] for a in listed}
    assert {a["tenant_id"] for a in listed} == {theirs["tenant_id"]}
    assert theirs["id"] not in {a["id"] for a in _items(admin.ok("GET", "/automations"))}
    assert admin.request("GET", f"/automations/{theirs['id']}").status_code == 404
    assert _items(other.ok("GET", "/workflow/dead-letters", params={"include_replayed": "true"})) == []
    # cannot read or change ours: 404 (or an empty list), and ours is unchanged
    assert other.request("GET", f"/automations/{ours['id']}").status_code == 404
    patch = {"enabled": False, "expected_version": ours["version"]}
    assert other.request("PATCH", f"/automations/{ours['id']}", json=patch).status_code == 404
    gone = other.request("DELETE", f"/automations/{ours['id']}", params={"expected_version": ours["version"]})
    assert gone.status_code == 404
    assert other.request("GET", f"/automations/{ours['id']}/runs").status_code == 404
    runs = other.request("GET", f"/records/{record}/automation-runs")
    assert runs.status_code == 404 or (runs.status_code == 200 and runs.json()["items"] == []), runs.text[:300]
    assert other.request("POST", f"/workflow/dead-letters/{letter['id']}/replay").status_code == 404
    assert admin.ok("GET", f"/automations/{ours['id']}") == ours
    assert our_letter() == letter  # still there, not replayed


def test_workflow_management_is_for_tenant_admins_and_notifications_are_each_users_own(
    world: World, automation_of: Callable[[Client, dict[str, Any]], dict[str, Any]]
) -> None:
    marker = _uniq(f"{world.mark}通知")
    automation = automation_of(world.admin, _notify_owner_on_create(marker))
    any_id = "0" * 24
    for name in ("sales_a", "manager_hd"):
        client = world.clients[name]
        for method, path, kw in (
            ("GET", "/automations", {}),
            ("POST", "/automations", {"json": _notify_owner_on_create("x")}),
            ("GET", f"/automations/{automation['id']}", {}),
            ("PATCH", f"/automations/{automation['id']}", {"json": {"enabled": False, "expected_version": 1}}),
            ("DELETE", f"/automations/{automation['id']}", {"params": {"expected_version": 1}}),
            ("GET", f"/automations/{automation['id']}/runs", {}),
            ("GET", f"/records/{world.records['sales_a']['id']}/automation-runs", {}),
            ("GET", "/workflow/dead-letters", {}),
            ("POST", f"/workflow/dead-letters/{any_id}/replay", {}),
        ):
            resp = client.request(method, path, **kw)
            assert resp.status_code == 403, (name, method, path, resp.status_code, resp.text[:300])
            assert resp.headers["Content-Type"].startswith("application/problem+json")
    assert world.admin.ok("GET", f"/automations/{automation['id']}")["version"] == 1

    # each user reads and marks only their own notifications
    a, b = world.clients["sales_a"], world.clients["sales_b"]
    record = a.ok("POST", "/forms/customer/records", json={"data": {"customer_name": f"{marker}有限公司"}})
    notes = _eventually(lambda: _notes_on(a, record["id"]))
    assert notes and notes[0]["user_id"] == world.users["sales_a"]["id"] and notes[0]["read"] is False
    assert a.ok("GET", "/notifications")["unread"] >= 1
    assert _notes_on(b, record["id"]) == []
    assert all(n["user_id"] == world.users["sales_b"]["id"] for n in _items(b.ok("GET", "/notifications")))
    b.ok("POST", "/notifications/read", json={"all": True})
    assert _notes_on(a, record["id"])[0]["read"] is False
