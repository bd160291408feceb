"""Users of the tenant. Reading is open to every signed-in user (owner pickers); changes are admin-only."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response

from gateway.auth import auth as token_auth
from gateway.auth import current_claims
from gateway.context import gateway
from gateway.responses import json_response
from gateway.schemas import UserIn, UserListOut, UserOut, UserPatch, UserQuery
from gateway.users import public_user

bp = APIBlueprint("users", __name__, tag={"name": "Users", "description": "Users of the tenant (changes: admin only)"})


@bp.get("/users")
@bp.auth_required(token_auth)
@bp.input(UserQuery, location="query", arg_name="query")
@bp.output(UserListOut)
@bp.doc(summary="List users")
def list_users(query: dict[str, Any]) -> Response:
    """Users of the tenant, optionally of one department."""
    claims = current_claims()
    docs = gateway().users.list(claims.tenant_id, query.get("department_id"))
    return json_response({"items": [public_user(d) for d in docs]})


@bp.post("/users")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(UserIn, arg_name="body")
@bp.output(UserOut, status_code=201)
@bp.doc(summary="Create a user (admin)", responses=[201, 401, 403, 409, 422])
def create_user(body: dict[str, Any]) -> Response:
    """A new user."""
    doc = gateway().users.create(current_claims().tenant_id, body)
    return json_response(public_user(doc), 201)


@bp.get("/users/<user_id>")
@bp.auth_required(token_auth)
@bp.output(UserOut)
@bp.doc(summary="Get a user", responses=[200, 401, 404])
def get_user(user_id: str) -> Response:
    """One user."""
    return json_response(public_user(gateway().users.get(current_claims().tenant_id, user_id)))


@bp.patch("/users/<user_id>")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(UserPatch, arg_name="body")
@bp.output(UserOut)
@bp.doc(summary="Update a user (admin)", description="Deactivating, re-roling or a new password ends their sessions.")
def update_user(user_id: str, body: dict[str, Any]) -> Response:
    """Change a user."""
    return json_response(public_user(gateway().users.update(current_claims().tenant_id, user_id, body)))


@bp.delete("/users/<user_id>")
@bp.auth_required(token_auth, roles=["admin"])
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a user (admin)", responses=[204, 401, 403, 404, 409])
def delete_user(user_id: str) -> Response:
    """Delete a user."""
    claims = current_claims()
    gateway().users.delete(claims.tenant_id, user_id, claims.user_id)
    return Response(status=204)
