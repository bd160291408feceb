"""End-to-end security: the controls of docs/security.md, probed from outside the running platform.

Every test here has a positive control next to its attack (the same call done
right succeeds), so a wrong port or a broken fixture cannot make it pass.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import requests

from crm.form.v1 import form_pb2, form_pb2_grpc
from crm.record.v1 import record_pb2, record_pb2_grpc
from crm.workflow.v1 import workflow_pb2, workflow_pb2_grpc
from crm_runtime.principal import HEADER_TOKEN, Principal, PrincipalCodec
from tests.e2e.conftest import Client
from tests.support.launcher import Platform

pytestmark = pytest.mark.e2e

OTHER_SECRET = "not-the-installation-secret-" + "x" * 40


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(token: str) -> str:
    """The token's claims re-sent unsigned with `alg: none`."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."


def _tampered(token: str, **changes: Any) -> str:
    """The token with claims changed and the original signature kept."""
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"{header}.{_b64({**claims, **changes})}.{signature}"


def _uniq(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------- internal gRPC


@pytest.fixture(scope="module")
def grpc_stubs(platform: Platform) -> Iterator[dict[str, Any]]:
    """Direct stubs of the internal form, record and workflow services, bypassing the gateway."""
    form_ch = grpc.insecure_channel(platform.env["FORM_GRPC_ADDR"])
    record_ch = grpc.insecure_channel(platform.env["RECORD_GRPC_ADDR"])
    workflow_ch = grpc.insecure_channel(platform.env["WORKFLOW_GRPC_ADDR"])
    yield {
        "form": lambda md: form_pb2_grpc.FormServiceStub(form_ch).ListApps(
            form_pb2.ListAppsRequest(), metadata=md, timeout=20
        ),
        "record": lambda md: record_pb2_grpc.RecordServiceStub(record_ch).ListRecords(
            record_pb2.ListRecordsRequest(form_id="customer", page_size=5), metadata=md, timeout=20
        ),
        "workflow": lambda md: workflow_pb2_grpc.WorkflowServiceStub(workflow_ch).ListAutomations(
            workflow_pb2.ListAutomationsRequest(), metadata=md, timeout=20
        ),
    }
    form_ch.close()
    record_ch.close()
    workflow_ch.close()


def _refused(call: Any, metadata: list[tuple[str, str]]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call(metadata)
    return err.value.code()  # type: ignore[no-any-return]


def _admin_principal() -> Principal:
    return Principal(tenant_id="default", user_id="u-e2e-admin", role="admin", roles=("admin",))


def test_internal_grpc_calls_without_a_valid_principal_token_are_unauthenticated(
    platform: Platform, grpc_stubs: dict[str, Any]
) -> None:
    real_secret = platform.env["CRM_INTERNAL_SECRET"]
    real = PrincipalCodec(real_secret)
    good = real.sign(_admin_principal())
    attacks = {
        "no metadata": [],
        "claimed tenant and role": [("x-tenant-id", "default"), ("x-role", "admin"), ("x-user-id", "u1")],
        "other secret": [(HEADER_TOKEN, PrincipalCodec(OTHER_SECRET).sign(_admin_principal()))],
        "alg none": [(HEADER_TOKEN, _alg_none(good))],
        # a fresh codec: the signing cache of `real` would hand back the valid token
        "expired": [(HEADER_TOKEN, PrincipalCodec(real_secret).sign(_admin_principal(), now=time.time() - 3600))],
        "tampered tenant": [(HEADER_TOKEN, _tampered(good, tid="other-tenant"))],
        "garbage": [(HEADER_TOKEN, "not.a.token")],
    }
    for service, call in grpc_stubs.items():
        for name, metadata in attacks.items():
            code = _refused(call, metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (service, name, code)
        # positive control: the same call with a valid token is served
        assert call([(HEADER_TOKEN, good), ("x-locale", "en")]) is not None, service


def _listening(path: Path) -> list[tuple[str, int, str]]:
    """(local address hex, port, socket inode) of every LISTEN socket in /proc/net/tcp[6]."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) > 9 and parts[3] == "0A":  # TCP_LISTEN
            address, port = parts[1].rsplit(":", 1)
            out.append((address, int(port, 16), parts[9]))
    return out


def _process_tree(pid: int) -> set[int]:
    """`pid` and all its descendants (gunicorn workers, gRPC server threads' processes)."""
    seen, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            todo.extend(int(c) for c in children)
    return seen


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


# 127.0.0.1, ::1 and ::ffff:127.0.0.1 as /proc/net prints them (0.0.0.0 / :: would be every interface)
LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def test_internal_ports_listen_on_loopback_only(platform: Platform) -> None:
    ports = {
        "form grpc": int(platform.env["FORM_GRPC_ADDR"].rsplit(":", 1)[1]),
        "record grpc": int(platform.env["RECORD_GRPC_ADDR"].rsplit(":", 1)[1]),
        "form side": int(platform.units["form"].env["HTTP_PORT"]),
        "record side": int(platform.units["record"].env["HTTP_PORT"]),
        "relay side": int(platform.units["relay"].env["RELAY_HTTP_PORT"]),
        "workflow grpc": int(platform.env["WORKFLOW_GRPC_ADDR"].rsplit(":", 1)[1]),
        "workflow side": int(platform.units["workflow"].env["HTTP_PORT"]),
        "workflow worker side": int(platform.units["workflow-worker"].env["WORKER_HTTP_PORT"]),
    }
    sockets = _listening(Path("/proc/net/tcp")) + _listening(Path("/proc/net/tcp6"))
    for name, port in ports.items():
        bound = {address for address, p, _ in sockets if p == port}
        assert bound, f"{name} ({port}) is not listening"
        assert bound <= LOOPBACK, f"{name} ({port}) listens on {bound}, not only on loopback"
    # and any other port a unit opens (a future side port), the gateway's public port excepted
    pids: set[int] = set()
    for unit in platform.units.values():
        assert unit.process is not None and unit.process.poll() is None, unit.name
        pids |= _process_tree(unit.process.pid)
    inodes = _socket_inodes(pids)
    owned = [(address, port) for address, port, inode in sockets if inode in inodes]
    assert {port for _, port in owned} >= set(ports.values())
    exposed = sorted({port for address, port in owned if address not in LOOPBACK and port != platform.gateway_port})
    assert exposed == [], f"platform ports listening beyond loopback: {exposed}"


# ----------------------------------------------------------------------------- gateway tokens


def test_gateway_refuses_expired_forged_unsigned_and_tampered_tokens(platform: Platform, admin: Client) -> None:
    good = str(admin.token)
    claims = jwt.decode(good, options={"verify_signature": False})
    secret = platform.env["JWT_SECRET"]
    now = int(time.time())
    attacks = {
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, secret, algorithm="HS256"),
        "forged": jwt.encode(claims, OTHER_SECRET, algorithm="HS256"),
        "alg none": _alg_none(good),
        "other tenant (tampered)": _tampered(good, tenant="other-tenant"),
        "other role (tampered)": _tampered(good, role="admin", sub="someone-else"),
        "garbage": "abc.def.ghi",
    }
    for name, token in attacks.items():
        resp = Client(platform.base_url, token).request("GET", "/apps")
        assert resp.status_code == 401, (name, resp.status_code, resp.text[:300])
        assert resp.headers["Content-Type"].startswith("application/problem+json"), name
    no_token = Client(platform.base_url).request("GET", "/apps")
    assert no_token.status_code == 401
    # positive control
    assert Client(platform.base_url, good).request("GET", "/apps").status_code == 200


WORKFLOW_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/automations", {}),
    ("POST", "/automations", {"json": {"name": "x", "form": "customer", "trigger": {"type": "record_created"}}}),
    ("GET", "/automations/{automation_id}", {}),
    ("PATCH", "/automations/{automation_id}", {"json": {"enabled": False, "expected_version": 1}}),
    ("DELETE", "/automations/{automation_id}", {"params": {"expected_version": 1}}),
    ("GET", "/automations/{automation_id}/runs", {}),
    ("GET", "/records/{record_id}/automation-runs", {}),
    ("POST", "/records/{record_id}/automations/{automation_id}/run", {"json": {}}),
    ("GET", "/workflow/dead-letters", {}),
    ("POST", "/workflow/dead-letters/{dead_letter_id}/replay", {}),
    ("GET", "/notifications", {}),
    ("POST", "/notifications/read", {"json": {"ids": ["no-such-notification"]}}),
]
"""Every operation of the workflow's routes (gateway/routes/workflow.py), with a body that passes its schema."""
WORKFLOW_TAGS = {"Automations", "Notifications"}


def test_every_workflow_route_refuses_no_token_forged_and_revoked_sessions(platform: Platform, admin: Client) -> None:
    # the list above is every operation the live document tags as the workflow's (a new route must join it)
    spec = requests.get(f"{platform.base_url}/api/v1/openapi.json", timeout=30).json()
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and WORKFLOW_TAGS & set(operation.get("tags") or [])
    }
    assert documented == {(method, path) for method, path, _ in WORKFLOW_ROUTES}
    ids = {"automation_id": _uniq("a"), "record_id": "0" * 24, "dead_letter_id": _uniq("dl:")}
    revoked = Client(platform.base_url)
    revoked.login("admin", platform.admin_password)
    revoked_token = str(revoked.token)
    revoked.ok("POST", "/auth/logout", json={})
    claims = jwt.decode(str(admin.token), options={"verify_signature": False})
    tokens = {
        "no token": None,
        "revoked session": revoked_token,
        "forged": jwt.encode(claims, OTHER_SECRET, algorithm="HS256"),
        "alg none": _alg_none(str(admin.token)),
    }
    for method, template, kw in WORKFLOW_ROUTES:
        path = template.format(**ids)
        for name, token in tokens.items():
            resp = Client(platform.base_url, token).request(method, path, **kw)
            assert resp.status_code == 401, (name, method, path, resp.status_code, resp.text[:300])
            assert resp.headers["Content-Type"].startswith("application/problem+json"), (name, method, path)
        # positive control: a valid session reaches the workflow service (an answer of its own, never 401)
        answer = admin.request(method, path, **kw)
        assert answer.status_code in (200, 404, 409, 422), (method, path, answer.status_code, answer.text[:300])


# ----------------------------------------------------------------------------- limits


def _is_problem(resp: Any, *statuses: int) -> dict[str, Any]:
    assert resp.status_code in statuses, (resp.status_code, resp.text[:500])
    assert resp.headers["Content-Type"].startswith("application/problem+json"), resp.headers["Content-Type"]
    body: dict[str, Any] = resp.json()
    assert body["status"] == resp.status_code
    return body


def _nested(depth: int) -> str:
    """A filter tree `depth` levels deep, as JSON text (json.dumps itself gives up at ~1000 levels)."""
    return '{"and": [' * depth + '{"field": "customer_name", "op": "eq", "value": "x"}' + "]}" * depth


JSON = {"Content-Type": "application/json"}


def test_page_size_body_size_and_filter_depth_limits_are_4xx_problems(admin: Client) -> None:
    assert admin.request("GET", "/forms/customer/records", params={"page_size": 200}).status_code == 200
    for size in (201, 10**9, 0, -1):
        _is_problem(admin.request("GET", "/forms/customer/records", params={"page_size": size}), 400, 422)
    _is_problem(admin.request("POST", "/forms/customer/records/query", json={"page_size": 100_000}), 400, 422)

    big = {"data": {"customer_name": "x" * (2 * 1024 * 1024)}}
    _is_problem(admin.request("POST", "/forms/customer/records", json=big), 413)
    huge_bulk = b'{"records": [' + b'{"customer_name": "' + b"y" * (40 * 1024 * 1024) + b'"}]}'
    _is_problem(
        admin.request(
            "POST",
            "/forms/customer/records/bulk",
            data=huge_bulk,
            headers={"Content-Type": "application/json"},
        ),
        413,
    )

    assert admin.request("GET", "/forms/customer/records", params={"filter": _nested(2)}).ok
    _is_problem(admin.request("GET", "/forms/customer/records", params={"filter": _nested(40)}), 400, 422)
    # a URL this long is refused by the HTTP server itself (414, its own body), before the app
    too_long = admin.request("GET", "/forms/customer/records", params={"filter": _nested(3000)})
    assert 400 <= too_long.status_code < 500, too_long.status_code
    for depth in (40, 3000, 50_000):  # 50,000 levels: ~0.5 MiB, under the body limit
        body = '{"filter": ' + _nested(depth) + "}"
        _is_problem(admin.request("POST", "/forms/customer/records/query", data=body, headers=JSON), 400, 422)
    wide = {"or": [{"field": "customer_name", "op": "eq", "value": str(i)} for i in range(5000)]}
    _is_problem(admin.request("POST", "/forms/customer/records/query", json={"filter": wide}), 400, 422)
    deep_value = '{"data": {"customer_name": "x", "remark": ' + _nested(3000) + "}}"
    _is_problem(admin.request("POST", "/forms/customer/records", data=deep_value, headers=JSON), 400, 422)


# ----------------------------------------------------------------------------- injection


@pytest.fixture(scope="module")
def marked(admin: Client) -> dict[str, Any]:
    """Three customers sharing a unique marker, so 'all records' is never an empty answer."""
    marker = _uniq("注入测试")
    ids = []
    for level in ("A", "B", "C"):
        rec = admin.ok("POST", "/forms/customer/records", json={"data": {"customer_name": f"{marker}{level}"}})
        ids.append(rec["id"])
    return {"marker": marker, "ids": ids}


def _items_or_422(resp: Any) -> list[dict[str, Any]] | None:
    """The items of a normal answer, or None for a 400/422 problem; anything else fails."""
    if resp.status_code in (400, 422):
        _is_problem(resp, 400, 422)
        return None
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    return list(resp.json()["items"])


OPERATOR_VALUES: list[Any] = [
    {"$ne": None},
    {"$gt": ""},
    {"$where": "sleep(5000) || true"},
    {"$regex": ".*"},
    {"$exists": True},
    [{"$ne": None}],
]


def test_mongodb_operators_in_filter_values_match_nothing_or_are_refused(admin: Client, marked: dict[str, Any]) -> None:
    # positive control: the marker finds exactly our three records
    control = {"field": "customer_name", "op": "starts_with", "value": marked["marker"]}
    found = admin.ok("POST", "/forms/customer/records/query", json={"filter": control, "page_size": 50})["items"]
    assert sorted(r["id"] for r in found) == sorted(marked["ids"])
    for value in OPERATOR_VALUES:
        for op in ("eq", "ne", "contains", "in"):
            leaf = {"field": "customer_name", "op": op, "value": value}
            tree = {"and": [control, leaf]} if op == "ne" else leaf
            started = time.monotonic()
            items = _items_or_422(admin.request("POST", "/forms/customer/records/query", json={"filter": tree}))
            assert time.monotonic() - started < 4, ("slow: $where may have run", value)
            if items is not None and op != "ne":
                assert items == [], (op, value, [r["id"] for r in items][:5])
    # operators as field names and as the filter itself
    for tree in (
        {"$where": "true"},
        {"field": "$where", "op": "eq", "value": "true"},
        {"field": "customer_name.$ne", "op": "eq", "value": None},
        {"field": "data", "op": "ne", "value": None},
        {"$or": [{"field": "customer_name", "op": "eq", "value": "x"}]},
    ):
        items = _items_or_422(admin.request("POST", "/forms/customer/records/query", json={"filter": tree}))
        assert items is None or items == [], (tree, len(items or []))


def test_mongodb_operators_in_record_values_are_data_or_refused(admin: Client, marked: dict[str, Any]) -> None:
    for data in (
        {"customer_name": {"$ne": None}},
        {"customer_name": {"$where": "sleep(5000)"}},
        {"customer_name": "x", "$where": "sleep(5000)"},
        {"customer_name": "x", "$set": {"tenant_id": "other"}},
        {"customer_name": "x", "a.b": 1},
    ):
        resp = admin.request("POST", "/forms/customer/records", json={"data": data})
        assert resp.status_code in (201, 400, 422), (data, resp.status_code, resp.text[:300])
        if resp.status_code == 201:
            stored = admin.ok("GET", f"/records/{resp.json()['id']}")
            assert not any(k.startswith("$") or "." in k for k in stored["data"]), stored["data"]
            assert stored["data"]["customer_name"] == "x"
        else:
            _is_problem(resp, 400, 422)
    # operator-looking text is stored and returned verbatim
    text = f"{marked['marker']}" + '{"$where": "1"} $ne .* ^(a|b)'
    rec = admin.ok("POST", "/forms/customer/records", json={"data": {"customer_name": text}})
    assert admin.ok("GET", f"/records/{rec['id']}")["data"]["customer_name"] == text
    # an update with operator values cannot rewrite anything either
    resp = admin.request(
        "PATCH", f"/records/{rec['id']}", json={"data": {"customer_name": {"$set": "y"}}, "version": 1}
    )
    assert resp.status_code in (400, 409, 422), resp.status_code
    assert admin.ok("GET", f"/records/{rec['id']}")["data"]["customer_name"] == text


REGEX_KEYWORDS = [".*", ".+", "^", "$", "(", "[", "\\", "a|b|c|", "(a+)+$", "[^x]*", "*", "?", "{1,}", "%", "_"]


def test_regex_metacharacters_in_keyword_search_are_literal(admin: Client, marked: dict[str, Any]) -> None:
    # positive control: the marker finds our records by keyword
    hits = admin.ok("GET", "/forms/customer/records", params={"q": marked["marker"], "page_size": 50})["items"]
    assert set(marked["ids"]) <= {r["id"] for r in hits}
    for q in REGEX_KEYWORDS:
        for keyword in (q, f"{marked['marker']}{q}", f"{q}{marked['marker']}"):
            started = time.monotonic()
            resp = admin.request("GET", "/forms/customer/records", params={"q": keyword, "page_size": 50})
            assert time.monotonic() - started < 10, ("catastrophic backtracking?", keyword)
            items = _items_or_422(resp)
            if keyword == q and items is not None:
                # a bare metacharacter is no wildcard: none of our records contains it
                assert not set(marked["ids"]) & {r["id"] for r in items}, keyword
    # contains/starts_with filters with metacharacters are literal too
    for op in ("contains", "starts_with"):
        for q in (".*", "^", "(a+)+$", "[", "\\"):
            leaf = {"field": "customer_name", "op": op, "value": q}
            items = _items_or_422(admin.request("POST", "/forms/customer/records/query", json={"filter": leaf}))
            assert items is None or not set(marked["ids"]) & {r["id"] for r in items}, (op, q)
