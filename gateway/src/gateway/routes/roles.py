"""Roles of the tenant: data (`crm_gateway.roles`). Reading is open to every signed-in user; changes are admin-only."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response

from gateway.audit import audited
from gateway.auth import TENANT_ADMIN, current_principal, require_admin
from gateway.auth import auth as token_auth
from gateway.context import gateway
from gateway.responses import json_response
from gateway.roles import public_role
from gateway.schemas import RoleIn, RoleListOut, RoleOut, RolePatch

bp = APIBlueprint(
    "roles", __name__, tag={"name": "Roles", "description": "Roles: actions, data scope and field rules per form"}
)


@bp.get("/roles")
@bp.auth_required(token_auth)
@bp.output(RoleListOut)
@bp.doc(summary="List roles", description="Built-ins (admin, manager, sales) first, then by key.")
def list_roles() -> Response:
    """Every role of the tenant with its permission document."""
    docs = gateway().roles.list(current_principal().tenant_id)
    return json_response({"items": [public_role(d) for d in docs]})


@bp.post("/roles")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.input(RoleIn, arg_name="body")
@bp.output(RoleOut, status_code=201)
@bp.doc(summary="Create a role (tenant admin)", responses=[201, 401, 403, 409, 422])
@audited("role.create", "role")
def create_role(body: dict[str, Any]) -> Response:
    """A new role; the permission document is validated member by member."""
    doc = gateway().roles.create(require_admin().tenant_id, body)
    return json_response(public_role(doc), 201)


@bp.get("/roles/<key>")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.output(RoleOut)
@bp.doc(summary="Get a role (tenant admin)", responses=[200, 401, 403, 404])
def get_role(key: str) -> Response:
    """One role."""
    return json_response(public_role(gateway().roles.get(require_admin().tenant_id, key)))


@bp.patch("/roles/<key>")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.input(RolePatch, arg_name="body")
@bp.output(RoleOut)
@bp.doc(
    summary="Update a role (tenant admin)",
    description="Bumps `version`; holders' rights change on their next request. "
    "Taking tenant administration from the last active admin's role is 409.",
    responses=[200, 401, 403, 404, 409, 422],
)
@audited("role.update", "role", id_arg="key")
def update_role(key: str, body: dict[str, Any]) -> Response:
    """Change a role."""
    return json_response(public_role(gateway().roles.update(require_admin().tenant_id, key, body)))


@bp.delete("/roles/<key>")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete a role (tenant admin)",
    description="409 while a user holds it.",
    responses=[204, 401, 403, 404, 409],
)
@audited("role.delete", "role", id_arg="key")
def delete_role(key: str) -> Response:
    """Delete a role no user holds."""
    gateway().roles.delete(require_admin().tenant_id, key)
    return Response(status=204)
