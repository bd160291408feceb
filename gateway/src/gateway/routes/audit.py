"""The operation log (操作日志): search, CSV export, chain verification and settings (tenant admins only).

The log is append-only: no endpoint here (or anywhere) changes or deletes an
entry. Entries are written by the hooks in `gateway.audit`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
from apiflask import APIBlueprint
from flask import Response, stream_with_context

from crm.form.v1 import form_pb2
from crm_runtime.errors import FieldError
from gateway.audit import EXPORT_MAX_ROWS, AuditQuery, log_event, public_entry
from gateway.auth import auth as token_auth
from gateway.auth import require_admin
from gateway.context import Gateway, gateway
from gateway.domain_errors import field_error, invalid
from gateway.errors import ApiError
from gateway.i18n import current_locale, t
from gateway.responses import json_response, parse
from gateway.routes._proxy import form_call
from gateway.schemas import AuditListOut, AuditSettingsIn, AuditSettingsOut, AuditVerifyOut
from gateway.schemas import AuditQuery as AuditQuerySchema

bp = APIBlueprint(
    "audit",
    __name__,
    tag={
        "name": "Audit",
        "description": (
            "The operation log (操作日志) of the tenant, for tenant administrators. Append-only and "
            "hash-chained: there is no endpoint that edits or deletes an entry (no PUT, PATCH or DELETE)."
        ),
    },
)

_COLUMNS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "action",
    "object_type",
    "object_id",
    "summary",
    "details",
    "address",
    "user_agent",
    "request_id",
    "hash",
)
_TITLES = {
    "zh-CN": (
        "序号",
        "时间(UTC)",
        "操作人ID",
        "操作人",
        "操作",
        "对象类型",
        "对象ID",
        "摘要",
        "详情",
        "IP地址",
        "客户端",
        "请求ID",
        "哈希",
    ),
    "en": (
        "Seq",
        "Time (UTC)",
        "Actor ID",
        "Actor",
        "Action",
        "Object type",
        "Object ID",
        "Summary",
        "Details",
        "Address",
        "User agent",
        "Request ID",
        "Hash",
    ),
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _invalid(field_name: str) -> ApiError:
    message = t("invalid_value", field=field_name)
    return ApiError(
        422,
        "validation_failed",
        errors=[{"field": field_name, "rule": "invalid", "message": message, "location": "query"}],
    )


def _tenant_zone(gw: Gateway, tenant_id: str) -> ZoneInfo:
    tenant = gw.store.tenants.find_one({"_id": tenant_id}, {"time_zone": 1}) or {}
    try:
        return ZoneInfo(str(tenant.get("time_zone") or gw.settings.tenant_tz))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _moment(text: str | None, name: str, zone: ZoneInfo) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _invalid(name) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _query(gw: Gateway, tenant_id: str, params: dict[str, Any]) -> AuditQuery:
    zone = _tenant_zone(gw, tenant_id)
    return AuditQuery(
        actor_id=params.get("actor_id") or "",
        action=params.get("action") or "",
        object_type=params.get("object_type") or "",
        object_id=params.get("object_id") or "",
        since=_moment(params.get("since"), "from", zone),
        until=_moment(params.get("until"), "to", zone),
    )


@bp.get("/audit")
@bp.auth_required(token_auth)
@bp.input(AuditQuerySchema, location="query", arg_name="query")
@bp.output(AuditListOut)
@bp.doc(
    summary="Search the operation log (admin)",
    description=(
        "Newest first. Filters are exact (`from` inclusive, `to` exclusive). A page may hold fewer than "
        "`page_size` entries while `next_cursor` is set (the scan of one request is bounded): follow the cursor."
    ),
    responses=[200, 401, 403, 422],
)
def search(query: dict[str, Any]) -> Response:
    """A page of entries."""
    principal = require_admin()
    gw = gateway()
    cursor: int | None = None
    if query.get("cursor"):
        try:
            cursor = int(query["cursor"])
        except ValueError:
            raise _invalid("cursor") from None
        if cursor < 1:
            raise _invalid("cursor")
    page = gw.audit.search(
        principal.tenant_id, _query(gw, principal.tenant_id, query), cursor=cursor, page_size=query["page_size"]
    )
    return json_response(
        {
            "items": [public_entry(d) for d in page.items],
            "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
        }
    )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a cell Excel would run as a formula
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_line(values: Any) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(values)
    return buf.getvalue()


CSV_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "text/csv", "content": {"text/csv": {}}},
    401: {},
    403: {},
    422: {},
}


@bp.get("/audit/export")
@bp.auth_required(token_auth)
@bp.input(AuditQuerySchema, location="query", arg_name="query")
@bp.doc(
    summary="Export the operation log as CSV (admin)",
    description=(
        f"The same filters as the search; newest first, at most {EXPORT_MAX_ROWS:,} rows; UTF-8 with a BOM "
        "(Excel opens Chinese correctly), streamed. The export itself is logged (`audit.export`)."
    ),
    responses=CSV_RESPONSES,
)
def export(query: dict[str, Any]) -> Response:
    """A CSV file of entries."""
    principal = require_admin()
    gw = gateway()
    audit_query = _query(gw, principal.tenant_id, query)
    titles = _TITLES.get(current_locale(), _TITLES["zh-CN"])
    entries = gw.audit.iter_entries(principal.tenant_id, audit_query, limit=EXPORT_MAX_ROWS)

    def generate() -> Iterator[bytes]:
        rows, complete = 0, False
        try:
            yield ("\ufeff" + _csv_line(titles)).encode("utf-8")
            chunk: list[str] = []
            for doc in entries:
                entry = public_entry(doc)
                entry["details"] = doc.get("details") or "{}"
                chunk.append(_csv_line([_cell(entry[c]) for c in _COLUMNS]))
                rows += 1
                if len(chunk) >= 500:
                    yield "".join(chunk).encode("utf-8")
                    chunk = []
            if chunk:
                yield "".join(chunk).encode("utf-8")
            complete = True
        finally:
            log_event(
                "audit.export",
                "audit_log",
                principal.tenant_id,
                summary=str(rows),
                details={
                    "rows": rows,
                    "complete": complete,
                    "capped": rows >= EXPORT_MAX_ROWS,
                    "filters": audit_query.to_json(),
                },
            )

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{principal.tenant_id}-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/audit/verify")
@bp.auth_required(token_auth)
@bp.output(AuditVerifyOut)
@bp.doc(
    summary="Verify the hash chain (admin)",
    description="Walks the tenant's log from seq 1; `first_broken_seq`: the first entry missing, re-linked or altered.",
    responses=[200, 401, 403],
)
def verify() -> Response:
    """Check the chain."""
    principal = require_admin()
    return json_response(gateway().audit.verify(principal.tenant_id).to_json())


@bp.get("/audit/settings")
@bp.auth_required(token_auth)
@bp.output(AuditSettingsOut)
@bp.doc(summary="Operation-log settings (admin)", responses=[200, 401, 403])
def get_settings() -> Response:
    """The sensitive forms (reads of their records are logged)."""
    principal = require_admin()
    return json_response(gateway().audit.settings(principal.tenant_id).to_json())


@bp.put("/audit/settings")
@bp.auth_required(token_auth)
@bp.input(AuditSettingsIn, arg_name="body")
@bp.output(AuditSettingsOut)
@bp.doc(
    summary="Change the operation-log settings (admin)",
    description="`sensitive_forms`: form keys (or ids) whose record reads (GET /records/{id}) are logged.",
    responses=[200, 401, 403, 404, 422],
)
def put_settings(body: dict[str, Any]) -> Response:
    """Replace the sensitive forms."""
    principal = require_admin()
    resolved: list[tuple[str, str]] = []
    errors: list[FieldError] = []
    for i, ref in enumerate(body["sensitive_forms"]):
        try:
            form = parse(form_call("GetForm", form_pb2.GetFormRequest(form_id=ref)).form_json) or {}
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                raise
            field_name = f"sensitive_forms.{i}"
            errors.append(field_error(field_name, "exists", t("invalid_value", field=field_name)))
            continue
        resolved.append((str(form.get("key") or ref), str(form.get("id") or ref)))
    if errors:
        raise invalid(errors)
    gw = gateway()
    before = gw.audit.settings(principal.tenant_id)
    after = gw.audit.set_sensitive_forms(principal.tenant_id, resolved, principal.user_id)
    log_event(
        "audit.settings_update",
        "audit_settings",
        principal.tenant_id,
        details={"before": list(before.sensitive_forms), "after": list(after.sensitive_forms)},
    )
    return json_response(after.to_json())
