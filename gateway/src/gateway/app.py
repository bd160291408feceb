"""The application factory.

`create_app(config)` builds a fresh app. Everything it depends on can be passed
in `config` (an in-process end-to-end run or a unit test passes its own):

    GATEWAY_SETTINGS   gateway.settings.Settings (default: Settings.from_env())
    GATEWAY_SERVICES   gateway.clients.Services (default: gRPC clients for the settings' addresses)
    GATEWAY_STORE      gateway.store.GatewayStore (default: connect to MONGO_URL / GATEWAY_DB)
    GATEWAY_ENSURE_INDEXES  create the indexes at start (default True)

Any other key is passed to Flask's config.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask
from flask import Response, g, request

from crm_runtime.logging import get_logger
from gateway.clients import Services
from gateway.context import Gateway
from gateway.errors import problem, register_error_handlers
from gateway.i18n import t
from gateway.metrics import Metrics
from gateway.openapi import register_spec_processor
from gateway.ratelimit import RateLimiter, client_key
from gateway.request_body import check_body
from gateway.schemas import ProblemOut
from gateway.settings import Settings
from gateway.store import GatewayStore

log = get_logger("crm.gateway")

API_PREFIX = "/api/v1"


def _route_limits(settings: Settings) -> dict[str, int]:
    # MAX_CONTENT_LENGTH (1 MiB) holds for every JSON body; these endpoints need more
    return {
        "records.bulk_create": settings.max_bulk_bytes,
        "attachments.upload": settings.max_upload_bytes,
    }


def create_app(config: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the gateway app; see the module docstring for injectable dependencies."""
    config = dict(config or {})
    settings: Settings = config.pop("GATEWAY_SETTINGS", None) or Settings.from_env()
    services: Services = config.pop("GATEWAY_SERVICES", None) or Services.grpc(
        settings.form_grpc_addr,
        settings.record_grpc_addr,
        settings.workflow_grpc_addr,
        timeout=settings.grpc_timeout,
    )
    store: GatewayStore = config.pop("GATEWAY_STORE", None) or GatewayStore.connect(
        settings.mongo_url, settings.gateway_db
    )
    ensure_indexes = bool(config.pop("GATEWAY_ENSURE_INDEXES", True))

    app = APIFlask(
        "gateway",
        title="CRM platform API",
        version="1.0.0",
        spec_path=f"{API_PREFIX}/openapi.json",
        docs_path=f"{API_PREFIX}/docs",
    )
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_json_bytes,
        HTTP_ERROR_SCHEMA=ProblemOut,
        VALIDATION_ERROR_SCHEMA=ProblemOut,
        VALIDATION_ERROR_DESCRIPTION="Validation failed (problem+json with `errors`)",
        INFO={
            "description": (
                "REST API of the no-code CRM platform. Errors are application/problem+json with messages "
                "in zh-CN (default) or en, chosen by Accept-Language."
            )
        },
        SERVERS=[{"url": "/", "description": "this gateway"}],
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    if ensure_indexes:
        try:
            store.ensure_indexes()
        except Exception as exc:  # noqa: BLE001 - the store may come up later; /readyz tells
            log.warning("ensure_indexes_failed", error=str(exc))

    metrics = Metrics()
    app.extensions["crm_gateway"] = Gateway.build(settings, store, services, metrics)
    register_error_handlers(app)
    limits = _route_limits(settings)
    limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        limit = limits.get(request.endpoint or "")
        if limit:
            request.max_content_length = limit
        if request.path.startswith(API_PREFIX + "/"):
            wait = limiter.check(client_key(request.headers.get("Authorization", ""), request.remote_addr or ""))
            if wait:
                return problem(429, "too_many_requests", t("too_many_requests"), headers={"Retry-After": str(wait)})
        check_body(request, request.max_content_length or settings.max_json_bytes)
        return None

    @app.after_request
    def _finish(resp: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        started = g.get("started")
        if started is not None:
            metrics.observe(request.method, rule, resp.status_code, time.perf_counter() - started)
        resp.headers["X-Request-Id"] = g.get("request_id", "")
        resp.headers["X-Content-Type-Options"] = "nosniff"  # no response is ever content-sniffed
        return resp

    from gateway.routes import register_blueprints

    register_blueprints(app)
    from gateway.routes import audit as audit_routes

    app.register_blueprint(audit_routes.bp, url_prefix=API_PREFIX)
    register_spec_processor(app)  # the document's problem+json responses (gateway.openapi)
    return app
