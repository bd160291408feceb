"""The permission check for tenant admins: can user U do action A on form F (or record R), and why."""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint
from flask import Response

from crm.record.v1 import record_pb2
from crm_runtime.access import ACTIONS, explain
from gateway.auth import TENANT_ADMIN, build_principal, require_admin
from gateway.auth import auth as token_auth
from gateway.context import gateway
from gateway.domain_errors import field_error, invalid
from gateway.i18n import t
from gateway.responses import json_response
from gateway.schemas import PermissionCheckOut, PermissionCheckQuery

bp = APIBlueprint(
    "permissions", __name__, tag={"name": "Permissions", "description": "Explain a user's access (tenant admin)"}
)


def _no_condition_match(_condition: Any, _doc: Any) -> bool:
    # without a record nothing is matched against a condition
    return False


@bp.get("/permissions/check")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.input(PermissionCheckQuery, location="query", arg_name="query")
@bp.output(PermissionCheckOut)
@bp.doc(
    summary="Check a user's permission (tenant admin)",
    description="With `record_id` the record service explains against the stored record (scope, condition, "
    "shares); without it the answer covers the action on the form (`form` = form key).",
    responses=[200, 401, 403, 404, 422],
)
def check(query: dict[str, Any]) -> Response:
    """{allowed, reasons, hidden_fields, readonly_fields} for user U."""
    admin = require_admin()
    gw = gateway()
    action = query["action"]
    if action not in ACTIONS:
        raise invalid([field_error("action", "choice", t("unknown_action", action=action))])
    form = query.get("form") or ""
    record_id = query.get("record_id") or ""
    if not form and not record_id:
        raise invalid([field_error("form", "required", t("form_required"))])
    user = gw.users.get(admin.tenant_id, query["user_id"])
    principal = build_principal(gw, user, locale=admin.locale, request_id=admin.request_id)
    if record_id:
        resp = gw.services.record.unary(
            "ExplainAccess",
            record_pb2.ExplainAccessRequest(form_id=form, record_id=record_id, action=action),
            principal,
        )
        body = json.loads(resp.explanation_json or "{}")
        result = {
            "allowed": bool(resp.allowed),
            "reasons": list(body.get("reasons") or []),
            "hidden_fields": sorted(body.get("hidden_fields") or []),
            "readonly_fields": sorted(body.get("readonly_fields") or []),
        }
    else:
        answer = explain(principal.policy, form, principal.subject, action, None, _no_condition_match)
        fp = principal.policy.form(form)
        result = {
            "allowed": bool(answer["allowed"]),
            "reasons": list(answer["reasons"]),
            "hidden_fields": sorted(fp.hidden),
            "readonly_fields": sorted(fp.readonly),
        }
    if not user.get("active", True):
        result["allowed"] = False
        result["reasons"] = [{"code": "user_inactive"}, *list(result["reasons"])]  # type: ignore[call-overload]
    return json_response(result)
