"""Users of the tenant.

Reading is open to every signed-in user (owner pickers) but shows others only
id, username, name, department_id, active and roles; e-mail, phone and
attributes only to tenant admins and to the user themself. Changes are for
tenant admins (`principal.is_admin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apiflask import APIBlueprint
from flask import Response

from gateway.audit import audited
from gateway.auth import TENANT_ADMIN, current_principal, require_admin
from gateway.auth import auth as token_auth
from gateway.context import gateway
from gateway.passwords import check_password
from gateway.responses import json_response
from gateway.schemas import UserIn, UserListOut, UserOut, UserPatch, UserQuery
from gateway.users import directory_user, public_user

bp = APIBlueprint("users", __name__, tag={"name": "Users", "description": "Users of the tenant (changes: admin only)"})


def _visible(doc: Mapping[str, Any]) -> dict[str, Any]:
    principal = current_principal()
    if principal.is_admin or doc["_id"] == principal.user_id:
        return public_user(doc)
    return directory_user(doc)


@bp.get("/users")
@bp.auth_required(token_auth)
@bp.input(UserQuery, location="query", arg_name="query")
@bp.output(UserListOut)
@bp.doc(summary="List users", description="Non-admins see id, username, name, department_id, active, roles.")
def list_users(query: dict[str, Any]) -> Response:
    """Users of the tenant, optionally of one department."""
    docs = gateway().users.list(current_principal().tenant_id, query.get("department_id"))
    return json_response({"items": [_visible(d) for d in docs]})


@bp.post("/users")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.input(UserIn, arg_name="body")
@bp.output(UserOut, status_code=201)
@bp.doc(summary="Create a user (tenant admin)", responses=[201, 401, 403, 409, 422])
@audited("user.create", "user")
def create_user(body: dict[str, Any]) -> Response:
    """A new user (`roles`, or the older single `role`; default sales)."""
    principal = require_admin()
    check_password(body["password"], body["username"])  # the password policy (gateway.passwords)
    doc = gateway().users.create(principal.tenant_id, body, actor=principal.user_id)
    return json_response(public_user(doc), 201)


@bp.get("/users/<user_id>")
@bp.auth_required(token_auth)
@bp.output(UserOut)
@bp.doc(summary="Get a user", responses=[200, 401, 404])
def get_user(user_id: str) -> Response:
    """One user."""
    return json_response(_visible(gateway().users.get(current_principal().tenant_id, user_id)))


@bp.patch("/users/<user_id>")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.input(UserPatch, arg_name="body")
@bp.output(UserOut)
@bp.doc(
    summary="Update a user (tenant admin)",
    description="Deactivating or a new password ends their sessions; a role change ends their access tokens. "
    "Demoting or deactivating the last active tenant admin is 409.",
    responses=[200, 401, 403, 404, 409, 422],
)
@audited("user.update", "user", id_arg="user_id")
def update_user(user_id: str, body: dict[str, Any]) -> Response:
    """Change a user."""
    principal = require_admin()
    if body.get("password"):  # the password policy (gateway.passwords), against the user's username
        check_password(body["password"], gateway().users.get(principal.tenant_id, user_id)["username"])
    doc = gateway().users.update(principal.tenant_id, user_id, body, actor=principal.user_id)
    return json_response(public_user(doc))


@bp.delete("/users/<user_id>")
@bp.auth_required(token_auth, roles=[TENANT_ADMIN])
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a user (tenant admin)", responses=[204, 401, 403, 404, 409])
@audited("user.delete", "user", id_arg="user_id")
def delete_user(user_id: str) -> Response:
    """Delete a user."""
    principal = require_admin()
    gateway().users.delete(principal.tenant_id, user_id, principal.user_id)
    return Response(status=204)
