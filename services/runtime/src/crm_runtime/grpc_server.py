"""gRPC server bootstrap shared by every service.

`build_server` returns a server with: the principal taken from metadata for
each call, domain errors mapped to status codes with a JSON problem in the
details, Prometheus request counts and latency per RPC, the standard health
service (NOT_SERVING until the readiness checks pass) and reflection.
`serve_forever` starts it plus the HTTP side port (`/healthz`, `/readyz`,
`/metrics`) and stops gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from crm_runtime.calls import call_deadline
from crm_runtime.errors import DomainError
from crm_runtime.logging import get_logger
from crm_runtime.principal import PrincipalCodec, default_codec, principal_context

log = get_logger("crm.grpc")

RPC_REQUESTS = Counter("crm_grpc_requests_total", "gRPC requests served", ["method", "code"])
RPC_LATENCY = Histogram(
    "crm_grpc_request_seconds",
    "gRPC request latency",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_CODES = {
    400: grpc.StatusCode.FAILED_PRECONDITION,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    423: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
KEEPALIVE_MS = 30_000  # clients' keepalive ping interval; servers accept it


def status_for(error: DomainError) -> grpc.StatusCode:
    """The gRPC status code of a domain error."""
    return _CODES.get(error.http_status, grpc.StatusCode.INTERNAL)


def _unauthenticated(context: grpc.ServicerContext, method: str) -> None:
    from crm_runtime.errors import Unauthenticated

    RPC_REQUESTS.labels(method, "UNAUTHENTICATED").inc()
    problem = Unauthenticated("no valid principal token in call metadata").to_problem()
    context.abort(grpc.StatusCode.UNAUTHENTICATED, json.dumps(problem, ensure_ascii=False))


def _wrap_unary(method: str, behavior: Callable[..., Any], codec: PrincipalCodec) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        principal = codec.from_metadata(context.invocation_metadata())  # type: ignore[arg-type]
        if principal is None:
            _unauthenticated(context, method)
        start = time.perf_counter()
        code = "OK"
        try:
            with principal_context(principal), call_deadline(context.time_remaining):
                return behavior(request, context)
        except DomainError as exc:
            code = status_for(exc).name
            context.abort(status_for(exc), problem_details(exc.to_problem()))
        except Exception:
            if context.code() is None:  # type: ignore[attr-defined]
                code = "INTERNAL"
                log.exception("rpc_failed", method=method)
            raise
        finally:
            RPC_REQUESTS.labels(method, code).inc()
            RPC_LATENCY.labels(method).observe(time.perf_counter() - start)

    return handler


MAX_DETAILS = 16 * 1024  # bytes of a problem in gRPC's status details (trailing metadata, capped near 320 KiB)
_LONG = 200  # characters a string of an oversized problem keeps


def _shorten(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= _LONG else value[:_LONG] + "…"
    if isinstance(value, dict):
        return {k: _shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shorten(v) for v in value[:100]]
    return value


def problem_details(problem: dict[str, Any]) -> str:
    """The problem as the status details of an aborted call, never larger than MAX_DETAILS.

    A problem echoing a huge input (a 100,000-character option value in its params) would exceed the
    metadata limit and reach the client as RESOURCE_EXHAUSTED instead of the validation error it is:
    long strings are shortened, errors beyond the first 100 dropped, and as a last resort only the
    problem's identity and its first error are kept.
    """
    text = json.dumps(problem, ensure_ascii=False, default=str)
    if len(text.encode()) <= MAX_DETAILS:
        return text
    text = json.dumps(_shorten(problem), ensure_ascii=False, default=str)
    if len(text.encode()) <= MAX_DETAILS:
        return text
    keep: dict[str, Any] = {
        k: _shorten(problem[k]) for k in ("type", "title", "status", "code", "field", "rule") if k in problem
    }
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        keep["errors"] = [{k: _shorten(v) for k, v in errors[0].items() if k in ("field", "rule", "message")}]
    return json.dumps(keep, ensure_ascii=False, default=str)


def _wrap_stream(method: str, behavior: Callable[..., Any], codec: PrincipalCodec) -> Callable[..., Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        principal = codec.from_metadata(context.invocation_metadata())  # type: ignore[arg-type]
        if principal is None:
            _unauthenticated(context, method)
        code = "OK"
        try:
            with principal_context(principal):
                yield from behavior(request, context)
        except DomainError as exc:
            code = status_for(exc).name
            context.abort(status_for(exc), problem_details(exc.to_problem()))
        finally:
            RPC_REQUESTS.labels(method, code).inc()

    return handler


class _ContextInterceptor(grpc.ServerInterceptor):
    """Principal verification, error mapping and metrics around every unary/stream handler."""

    def __init__(self, codec: PrincipalCodec) -> None:
        self._codec = codec

    def intercept_service(self, continuation: Callable[..., Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith("/grpc."):
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(method, handler.unary_unary, self._codec),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(method, handler.unary_stream, self._codec),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


@dataclass
class ServerBundle:
    """A built server with its health servicer and readiness checks."""

    server: grpc.Server
    health: health.HealthServicer
    port: int
    service_names: list[str]
    checks: list[Callable[[], bool]] = field(default_factory=list)

    def ready(self) -> bool:
        """True when every readiness check passes."""
        return all(check() for check in self.checks)

    def refresh_health(self) -> bool:
        """Set the health status from the readiness checks; returns readiness."""
        ok = self.ready()
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self.service_names]:
            self.health.set(name, status)
        return ok


def build_server(
    port: int,
    register: Iterable[Callable[[grpc.Server], None]],
    service_names: Sequence[str],
    *,
    codec: PrincipalCodec | None = None,
    checks: Sequence[Callable[[], bool]] = (),
    max_workers: int = 32,
    host: str | None = None,
) -> ServerBundle:
    """Build (not start) a gRPC server. `port=0` picks a free port (tests).

    Every call except health and reflection must carry a principal token that
    `codec` verifies (default: CRM_INTERNAL_SECRET's). `host` defaults to loopback (one machine); a container
    sets BIND_HOST=0.0.0.0 and relies on NetworkPolicies (see docs/security.md).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        interceptors=[_ContextInterceptor(codec or default_codec())],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Our clients ping every 30 s (crm_runtime.client). With gRPC's default
            # policy (one ping per 5 minutes, 2 strikes) a call that runs long, such
            # as a 10,000-record bulk create, was cut by GOAWAY "too_many_pings" and
            # came back UNAVAILABLE. The callers are our own services: accept them.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MS // 3),
            ("grpc.http2.max_ping_strikes", 0),
            # the principal token carries the compiled policy
            ("grpc.max_metadata_size", 256 * 1024),
        ],
    )
    for reg in register:
        reg(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host or bind_host()}:{port}")
    bundle = ServerBundle(server, health_servicer, bound, list(service_names), list(checks))
    for name in ["", *service_names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    return bundle


class Readiness(Protocol):
    """Anything that can say whether it is ready (a ServerBundle, a relay)."""

    def ready(self) -> bool:
        """True when the unit can do its work."""
        ...


class _SideHandler(BaseHTTPRequestHandler):
    bundle: Readiness

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path == "/healthz":
            self._send(200, b'{"status":"ok"}', "application/json")
        elif self.path == "/readyz":
            ok = self.bundle.ready()
            self._send(200 if ok else 503, json.dumps({"ready": ok}).encode(), "application/json")
        elif self.path == "/metrics":
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        else:
            self._send(404, b'{"error":"not found"}', "application/json")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
        return


def bind_host() -> str:
    """Where internal ports listen: BIND_HOST, default loopback (containers set 0.0.0.0)."""
    import os

    return os.environ.get("BIND_HOST") or "127.0.0.1"


def start_side_http(bundle: Readiness, port: int, host: str | None = None) -> ThreadingHTTPServer:
    """Serve `/healthz`, `/readyz`, `/metrics` for a gRPC unit in a thread."""
    host = host or bind_host()
    handler = type("SideHandler", (_SideHandler,), {"bundle": bundle})
    httpd = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=httpd.serve_forever, name="side-http", daemon=True).start()
    return httpd


def serve_forever(
    bundle: ServerBundle,
    http_port: int,
    *,
    grace: float = 10.0,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """Start the server and side port; block until SIGTERM/SIGINT, then stop gracefully."""
    stop = threading.Event()
    bundle.server.start()
    httpd = start_side_http(bundle, http_port)

    def _signal(signum: int, _frame: Any) -> None:
        log.info("shutdown_requested", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    log.info("serving", grpc_port=bundle.port, http_port=http_port)
    while not stop.is_set():
        bundle.refresh_health()
        stop.wait(2.0)
    bundle.health.enter_graceful_shutdown()
    if on_stop is not None:
        on_stop()
    bundle.server.stop(grace).wait()
    httpd.shutdown()
    log.info("stopped")
