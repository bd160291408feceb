"""Operations endpoints at the root: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response

from gateway.context import gateway
from gateway.errors import problem
from gateway.i18n import t
from gateway.responses import json_response

bp = APIBlueprint("ops", __name__, tag={"name": "Operations", "description": "Health, readiness and metrics"})


@bp.get("/healthz")
@bp.doc(summary="Liveness: the process is up", tags=["Operations"], responses=[200])
def healthz() -> Response:
    """Always 200 while the process serves."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
@bp.doc(summary="Readiness: store and both services reachable", tags=["Operations"], responses=[200, 503])
def readyz() -> Response:
    """200 when the store answers and the form and record services report SERVING; 503 otherwise."""
    gw = gateway()
    checks = {
        "store": gw.store.ping(),
        "form": gw.services.form.healthy(),
        "record": gw.services.record.healthy(),
    }
    if all(checks.values()):
        return json_response({"ready": True, "checks": checks})
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return problem(503, "not_ready", t("service_unavailable", service=down), ready=False, checks=checks)


_METRICS_RESPONSES: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {"description": "Prometheus exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}
}


@bp.get("/metrics")
@bp.doc(
    summary="Prometheus metrics",
    tags=["Operations"],
    responses=_METRICS_RESPONSES,
)
def metrics() -> Response:
    """Request counts and latency per route."""
    m = gateway().metrics
    return Response(m.render(), mimetype=m.content_type.split(";")[0], headers={"Content-Type": m.content_type})
