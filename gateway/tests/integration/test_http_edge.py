"""The HTTP edge of a real gunicorn-served gateway: chunked bodies, request lines gunicorn refuses itself.

The Flask test client never goes through gunicorn's HTTP parser, so these run the
gateway's own gunicorn application (gateway.server.GatewayServer) in a child
process and talk to it over sockets.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crm_runtime.testing import free_port

pytestmark = pytest.mark.integration

_SERVE = (
    "from gateway.server import GatewayServer; from gateway.settings import Settings; "
    "GatewayServer(Settings.from_env()).run()"
)


@pytest.fixture(scope="module")
def gateway_port(store_url: str) -> Iterator[int]:
    """A gunicorn gateway (one gthread worker) over the test store; its gRPC backends are not running."""
    port = free_port()
    env = {
        **os.environ,
        "JWT_SECRET": "edge-secret-" + uuid.uuid4().hex,
        "MONGO_URL": store_url,
        "GATEWAY_DB": f"gw_edge_{uuid.uuid4().hex[:8]}",
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "1",
        "GATEWAY_THREADS": "4",
        "GATEWAY_RATE_LIMIT": "0",
        "FORM_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "RECORD_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen([sys.executable, "-c", _SERVE], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "the gateway exited"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _problem(resp: http.client.HTTPResponse, status: int) -> dict[str, Any]:
    raw = resp.read()
    assert resp.status == status, raw[:300]
    assert resp.getheader("Content-Type", "").startswith("application/problem+json"), resp.getheader("Content-Type")
    body: dict[str, Any] = json.loads(raw)
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "code", "errors"} <= set(body)
    return body


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON object of about `total` bytes, in chunks."""
    yield b'{"username": "a", "password": "'
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        yield b"x" * part
        sent += part
    yield b'"}'


def _raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes): (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            received += part
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def test_a_chunked_body_over_the_limit_is_413_every_time(gateway_port: int) -> None:
    for _ in range(5):  # the connection used to be reset now and then
        conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=30)
        conn.request(
            "POST",
            "/api/v1/auth/login",
            body=_chunks(2 * 1024 * 1024),
            headers={"Content-Type": "application/json", "Accept-Language": "en"},
            encode_chunked=True,
        )
        body = _problem(conn.getresponse(), 413)
        assert body["code"] == "payload_too_large"
        assert body["detail"] == "Request body too large (limit 1 MiB)"
        conn.close()


def test_a_chunked_body_just_over_the_limit_is_413(gateway_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=30)
    conn.request(
        "POST",
        "/api/v1/auth/login",
        body=_chunks(1024 * 1024),  # the JSON around the password makes it a few bytes over 1 MiB
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    body = _problem(conn.getresponse(), 413)
    assert body["detail"] == "请求体过大（上限 1 MiB）"


def test_a_chunked_body_within_the_limit_is_read_and_the_connection_stays_usable(gateway_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=30)
    for _ in range(2):  # two requests on one keep-alive connection
        conn.request(
            "POST",
            "/api/v1/auth/login",
            body=iter([b'{"username": "a", ', b'"password": "b", ', b'"colour": "red"}']),
            headers={"Content-Type": "application/json", "Accept-Language": "en"},
            encode_chunked=True,
        )
        body = _problem(conn.getresponse(), 422)
        # the body arrived whole: the unknown key in its last chunk was seen
        assert {"field": "colour", "rule": "unknown_field", "message": "Unknown field: colour", "location": "json"} in (
            body["errors"]
        )
    conn.close()


def test_a_request_line_over_gunicorns_limit_is_a_414_problem(gateway_port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
    conn.request("GET", "/api/v1/forms/customer/records?filter=" + "a" * 9000)
    body = _problem(conn.getresponse(), 414)
    assert body["code"] == "uri_too_long"
    assert body["title"] == "请求地址过长"
    assert body["detail"] == "请求地址（含查询参数）过长：上限 8190 字节；较大的筛选条件请用 POST …/records/query 提交"
    assert body["type"] == "urn:crm:problem:uri_too_long"


def test_raw_utf8_in_the_request_line_is_a_400_problem(gateway_port: int) -> None:
    status, headers, raw = _raw_exchange(gateway_port, "GET /api/v1/客户 HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    assert status == 400
    assert headers["content-type"].startswith("application/problem+json")
    assert int(headers["content-length"]) == len(raw)
    body = json.loads(raw)
    assert body["status"] == 400 and body["code"] == "malformed_request"
    assert body["detail"] == "请求格式错误：请求行或请求头不合法"
    assert body["errors"] == []


def test_oversized_headers_are_a_431_problem(gateway_port: int) -> None:
    request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + "".join(f"X-H{i}: v\r\n" for i in range(200)) + "\r\n"
    status, headers, raw = _raw_exchange(gateway_port, request.encode())
    assert status == 431
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(raw)["code"] == "headers_too_large"
