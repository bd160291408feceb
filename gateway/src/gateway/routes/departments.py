"""The department tree. Reading is open to every signed-in user; changes are admin-only."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response

from gateway.audit import audited
from gateway.auth import auth as token_auth
from gateway.auth import current_claims
from gateway.context import gateway
from gateway.departments import build_tree, public_department
from gateway.responses import json_response
from gateway.schemas import DepartmentIn, DepartmentListOut, DepartmentMoveIn, DepartmentOut, DepartmentPatch

bp = APIBlueprint(
    "departments", __name__, tag={"name": "Departments", "description": "Department tree (materialised path)"}
)


@bp.get("/departments")
@bp.auth_required(token_auth)
@bp.output(DepartmentListOut)
@bp.doc(summary="List departments", description="Flat by path in `items`, nested in `tree`.")
def list_departments() -> Response:
    """Every department of the tenant."""
    items = [public_department(d) for d in gateway().departments.all(current_claims().tenant_id)]
    return json_response({"items": items, "tree": build_tree(items)})


@bp.post("/departments")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(DepartmentIn, arg_name="body")
@bp.output(DepartmentOut, status_code=201)
@bp.doc(summary="Create a department (admin)", responses=[201, 401, 403, 404, 422])
@audited("department.create", "department")
def create_department(body: dict[str, Any]) -> Response:
    """A new department."""
    doc = gateway().departments.create(current_claims().tenant_id, body["name"], body.get("parent_id"), body["sort"])
    return json_response(public_department(doc), 201)


@bp.get("/departments/<department_id>")
@bp.auth_required(token_auth)
@bp.output(DepartmentOut)
@bp.doc(summary="Get a department", responses=[200, 401, 404])
def get_department(department_id: str) -> Response:
    """One department."""
    return json_response(public_department(gateway().departments.get(current_claims().tenant_id, department_id)))


@bp.patch("/departments/<department_id>")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(DepartmentPatch, arg_name="body")
@bp.output(DepartmentOut)
@bp.doc(summary="Rename or move a department (admin)", responses=[200, 401, 403, 404, 409, 422])
@audited("department.update", "department", id_arg="department_id")
def update_department(department_id: str, body: dict[str, Any]) -> Response:
    """Rename, reorder, or move when `parent_id` is given."""
    doc = gateway().departments.update(
        current_claims().tenant_id,
        department_id,
        name=body.get("name"),
        sort=body.get("sort"),
        parent_id=body.get("parent_id"),
        move="parent_id" in body,
    )
    return json_response(public_department(doc))


@bp.post("/departments/<department_id>/move")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(DepartmentMoveIn, arg_name="body")
@bp.output(DepartmentOut)
@bp.doc(summary="Move a department (admin)", description="Refuses a move under itself or its subtree (409).")
@audited("department.move", "department", id_arg="department_id")
def move_department(department_id: str, body: dict[str, Any]) -> Response:
    """Move under another parent (null: to the root)."""
    doc = gateway().departments.update(
        current_claims().tenant_id, department_id, parent_id=body.get("parent_id"), move=True
    )
    return json_response(public_department(doc))


@bp.delete("/departments/<department_id>")
@bp.auth_required(token_auth, roles=["admin"])
@bp.output({}, status_code=204)
@bp.doc(summary="Delete an empty department (admin)", responses=[204, 401, 403, 404, 409])
@audited("department.delete", "department", id_arg="department_id")
def delete_department(department_id: str) -> Response:
    """Delete a department without users or children."""
    gateway().departments.delete(current_claims().tenant_id, department_id)
    return Response(status=204)
